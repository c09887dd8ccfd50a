"""One Z for several frozen targets: the encoder and pooler are shared, each target reads Z through its adapter.

The loss of a target reuses the translator's bridge pieces: the target reads `[BOS][M soft tokens][prompt]
[answer][EOS]` (`layout.bridged_batch`), its own token embeddings with the adapter's output placed in the
soft slots, and the gradient flows through the frozen target into its adapter and the shared Z.
"""
import dataclasses

import jax
from flax import nnx

from interlingua_jax.bridges.interlingua.adapter import Adapter
from interlingua_jax.bridges.interlingua.encoder import ByteEncoder
from interlingua_jax.bridges.interlingua.losses import first_k_mask, interlingua_loss
from interlingua_jax.bridges.interlingua.pooler import LatentPooler
from interlingua_jax.bridges.interlingua.states_encoder import StatesEncoder
from interlingua_jax.data import layout
from interlingua_jax.models import DecoderConfig, forward
from interlingua_jax.models.frozen import source_states
from interlingua_jax.nn.losses import answer_accuracy


class SharedInterlingua(nnx.Module):
  """encoder inputs -> Z (B, M, d_z) -> {target name: (B, M, d_model of that target)}.

  The encoder is either kind: `ByteEncoder` (byte ids, mask) or `StatesEncoder` (frozen-LM states, mask);
  both return (B, T, d_z) states that the pooler reads under the same mask.
  """

  def __init__(self, *, encoder: ByteEncoder | StatesEncoder, target_dims: dict[str, int], num_soft_tokens: int,
               latent_dim: int, num_heads: int, target_embed_rms: dict[str, float] | None = None,
               rngs: nnx.Rngs):
    if not target_dims:
      raise ValueError("target_dims is empty: the interlingua needs at least one target {name: d_model}.")
    rms = target_embed_rms or {}
    if set(rms) - set(target_dims):
      raise ValueError(f"target_embed_rms names {sorted(set(rms) - set(target_dims))}, which are not targets "
                       f"{sorted(target_dims)}.")
    self.encoder = encoder
    self.pooler = LatentPooler(num_soft_tokens=num_soft_tokens, dim=latent_dim, num_heads=num_heads, rngs=rngs)
    self.adapters = nnx.Dict({name: Adapter(latent_dim=latent_dim, target_dim=dim, target_embed_rms=rms.get(name),
                                            rngs=rngs) for name, dim in target_dims.items()})

  def latents(self, inputs: jax.Array, mask: jax.Array) -> jax.Array:
    """The interlingua Z (B, M, d_z) of the encoder's inputs and their mask (B, T)."""
    return self.pooler(self.encoder(inputs, mask), mask)

  def __call__(self, inputs: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    z = self.latents(inputs, mask)
    return {name: adapter(z) for name, adapter in self.adapters.items()}


@dataclasses.dataclass(frozen=True)
class FrozenSource:
  """The frozen source LM a states encoder reads (static under jit): its config and which hidden state."""
  config: DecoderConfig
  layer: int  # HF hidden-state index in [0, num_layers]
  attention_impl: str | None = None


def encoder_inputs(source: FrozenSource | None, source_params, ids: jax.Array, mask: jax.Array) -> jax.Array:
  """What the encoder reads of right-padded ids: the ids themselves (bytes), or the frozen source's hidden
  states of `source.layer` (outside the gradient)."""
  if source is None:
    return ids
  return source_states(source_params, source.config, ids, mask, source.layer, source.attention_impl)


def target_loss(soft: jax.Array, params, config: DecoderConfig, batch: layout.BridgedBatch, *, k: int,
                first_token_weight: float, remat: bool = False,
                attention_impl: str | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """`interlingua_loss` of one frozen target reading `soft` (B, M, d_model) in the batch's soft slots,
  with the first answer token's accuracy among the terms (a metric: the first sign of a collapsed Z)."""
  embeds = layout.target_inputs(params, config, soft, batch.token_ids, batch.soft_index)
  logits = forward(params, config, inputs_embeds=embeds, attention_mask=batch.attention_mask,
                   positions=batch.positions, output_hidden_states=False, remat=remat,
                   attention_impl=attention_impl).logits
  loss, terms = interlingua_loss(logits, batch.labels, batch.loss_mask, k=k, first_token_weight=first_token_weight)
  terms["first_token_accuracy"] = answer_accuracy(logits, batch.labels, first_k_mask(batch.loss_mask, 1))
  return loss, terms
