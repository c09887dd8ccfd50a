"""KV fusion's training loss: next-token cross-entropy of the answer, read from the target's fused prompt cache.

    source cache = prefill_source(prompt)                       frozen
    target cache = prefill_target(prompt without its last token) frozen
    fused        = fusers(source cache at the target's slots, target cache; Gumbel-sigmoid gates at temperature τ(step))
    loss         = CE(target([last prompt token, answer...] on the fused cache), [answer..., EOS])

Only the fusers train. The last prompt token runs on the fused cache, as in generation (`generate`'s
cache_transform), so the first answer token is predicted from what the fusers wrote.
"""
import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from interlingua_jax.bridges.kv_fusion import fuser
from interlingua_jax.models import DecoderConfig, KVCache
from interlingua_jax.models.cached_forward import forward_with_cache
from interlingua_jax.models.generate import prompt_cache
from interlingua_jax.nn import losses


@dataclasses.dataclass(frozen=True)
class LossSpec:
  source_config: DecoderConfig
  target_config: DecoderConfig
  layer_map: tuple[int | None, ...]  # the source layer fused into each target layer (alignment.terminal_layer_map)
  seed: int  # the gates' Gumbel noise: a key per step, folded from this
  temperature_start: float
  temperature_end: float
  anneal_steps: int
  remat: bool = False
  attention_impl: str | None = None


def source_at_target_slots(source: KVCache, token_index: jax.Array, source_mask: jax.Array) -> KVCache:
  """The source cache at the target's slots, traceable: k, v (Ls, B, T, Ks, Ds) and valid (B, T).

  token_index (B, T): the source token (0 = a row's first real token; -1 = none) each target slot reads, as
  `rows.prompt_alignment` gives it, left-padded with -1. The source rows are left-padded too, so token i of a
  row sits at slot i + (its padding).
  """
  width = source_mask.shape[1]
  slots = token_index + (width - jnp.sum(source_mask, axis=1))[:, None]
  has = token_index >= 0
  slots = jnp.where(has, slots, 0)
  rows = jnp.arange(slots.shape[0])[:, None]
  return KVCache(k=source.k[:, rows, slots], v=source.v[:, rows, slots], valid=has & source.valid[rows, slots],
                 next_position=source.next_position, index=source.index)


def gate_probabilities(fusers) -> jax.Array:
  """sigmoid(gate logit) per fused layer: the chance a training sample opens it (inference opens it if > 0.5)."""
  return jax.nn.sigmoid(jnp.stack([f.gate_logit[...] for f in fusers]))


def fused_answer_logits(fusers: nnx.List, frozen_params, batch, *, spec: LossSpec, temperature, key,
                        hard: bool) -> jax.Array:
  """(B, C, V) logits of the chunk [last prompt token, answer...] run on the target's fused prompt cache; hard=True
  is inference's 0/1 gate (what generation decodes from)."""
  source_params, target_params = frozen_params
  _, source = prompt_cache(source_params, spec.source_config, batch["source_mask"], input_ids=batch["source_ids"],
                           attention_impl=spec.attention_impl)
  _, target = prompt_cache(target_params, spec.target_config, batch["prefix_mask"], input_ids=batch["prefix_ids"],
                           attention_impl=spec.attention_impl)
  aligned = source_at_target_slots(source, batch["alignment"], batch["source_mask"])
  fused = fuser.fuse_kv_cache(fusers, list(spec.layer_map), aligned, target, temperature=temperature, key=key,
                              hard=hard)
  return forward_with_cache(target_params, spec.target_config, fused, input_ids=batch["chunk_ids"],
                            chunk_mask=batch["chunk_mask"], remat=spec.remat, attention_impl=spec.attention_impl).logits


def kv_fusion_loss(fusers: nnx.List, frozen_params, batch, step: jax.Array, *, spec: LossSpec):
  """(loss, metrics) of one batch; frozen_params: (source params, target params)."""
  temperature = fuser.anneal_temperature(step, spec.temperature_start, spec.temperature_end, spec.anneal_steps)
  key = jax.random.fold_in(jax.random.key(spec.seed), step)
  logits = fused_answer_logits(fusers, frozen_params, batch, spec=spec, temperature=temperature, key=key, hard=False)
  labels, mask = batch["labels"], batch["loss_mask"]
  ce = losses.answer_cross_entropy(logits, labels, mask)
  metrics = {"ce": ce, "token_accuracy": losses.answer_accuracy(logits, labels, mask),
             "gate_temperature": temperature, "gates_open_probability": jnp.mean(gate_probabilities(fusers))}
  return ce, metrics
