"""Frozen LLMs (Llama, Mistral, Qwen2/2.5, Qwen3: see families.py): config, params, forward, loading (HF directories,
.gguf files, the offline zoo: loading.py, gguf.py, zoo.py), generation."""
from interlingua_jax.models.config import CheckpointError, DecoderConfig, param_layout
from interlingua_jax.models.decoder import CausalLM, ModelOutput, embed, forward, init_params, lm_head
from interlingua_jax.models.generate import GenerateOutput, KVCache, generate
from interlingua_jax.models.loading import from_pretrained, save_pretrained

__all__ = [
    "CausalLM", "CheckpointError", "DecoderConfig", "GenerateOutput", "KVCache", "ModelOutput", "embed", "forward",
    "from_pretrained", "generate", "init_params", "lm_head", "param_layout", "save_pretrained",
]
