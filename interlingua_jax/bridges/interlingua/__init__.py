"""The shared interlingua: the second bridge kind, `bridge.kind = "interlingua"` (stage.py runs it).

    text ─▶ bytes ─▶ ByteEncoder ─▶ LatentPooler ─▶ Z (B, M, d_z) ─▶ Adapter_t ─▶ target t's embeddings
    (or: source LM states ─▶ StatesEncoder ─▶ LatentPooler ─▶ Z ...)

One Z serves several frozen target LLMs, each through its own small adapter (LayerNorm + Linear), trained
with the answer's first-token cross-entropy (its own weight) plus K-token teacher forcing.
"""
from interlingua_jax.bridges.interlingua.adapter import Adapter
from interlingua_jax.bridges.interlingua.encoder import ByteEncoder, encode_bytes, sinusoidal_positions
from interlingua_jax.bridges.interlingua.losses import first_k_mask, interlingua_loss
from interlingua_jax.bridges.interlingua.pooler import LatentPooler
from interlingua_jax.bridges.interlingua.shared import SharedInterlingua, target_loss
from interlingua_jax.bridges.interlingua.states_encoder import StatesEncoder

__all__ = ["Adapter", "ByteEncoder", "LatentPooler", "SharedInterlingua", "StatesEncoder", "encode_bytes",
           "first_k_mask", "interlingua_loss", "sinusoidal_positions", "target_loss"]
