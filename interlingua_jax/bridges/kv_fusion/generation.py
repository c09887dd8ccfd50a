"""Generation with a fused cache: the source LM prefills its prompt, its cache is brought to the target's prompt
slots, and the fusers rewrite the target's prompt cache once before the target decodes with models.generate.

The rewrite is generate's `cache_transform`, so it sees the cache of the target prompt's first T - 1 tokens and the
last prompt token runs on the fused cache: the first generated token reads it. Inference uses the hard 0/1 gate,
so a closed gate (or gates_off) is the target alone (bit for bit in the cache, the same greedy tokens).
"""
import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from interlingua_jax.bridges.kv_fusion import alignment, fuser
from interlingua_jax.models import CausalLM, GenerateOutput, KVCache, generate
from interlingua_jax.models.generate import prefill_prompt


def _static(**kwargs) -> Any:
  return dataclasses.field(metadata=dict(static=True), **kwargs)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FusedCacheTransform:
  """generate's cache_transform for KV fusion: (target cache) -> the cache with its prompt slots fused.

  A pytree rather than a closure, so generate's jit traces the fusers' weights and the source cache as inputs
  (not constants baked into the program) and reuses one program for every prompt batch of one shape; the
  fusers' graph, the layer map and the gate flags are static, part of the compile key.
  """
  state: nnx.State  # the fusers' variables
  source: KVCache  # the source cache at the target's prompt slots: k, v (Ls, B, T, Ks, Ds), valid (B, T)
  graphdef: Any = _static()
  layer_map: tuple[int | None, ...] = _static()
  gates_off: bool = _static(default=False)
  hard: bool = _static(default=True)

  def __call__(self, cache: KVCache) -> KVCache:
    """Fuses slots [0, T) (those valid in both caches); the slots after the prompt are left as they are."""
    length = self.source.valid.shape[1]
    if cache.k.shape[2] < length:
      raise ValueError(f"the target cache has {cache.k.shape[2]} slots for a prompt of {length}.")
    prompt = KVCache(k=cache.k[:, :, :length], v=cache.v[:, :, :length], valid=cache.valid[:, :length],
                     next_position=cache.next_position, index=cache.index)
    fused = fuser.fuse_kv_cache(nnx.merge(self.graphdef, self.state), list(self.layer_map), self.source, prompt,
                                gates_off=self.gates_off, hard=self.hard)
    return dataclasses.replace(cache, k=cache.k.at[:, :, :length].set(fused.k),
                               v=cache.v.at[:, :, :length].set(fused.v))


def slot_alignment(token_index: Sequence, target_mask, source_mask) -> np.ndarray:
  """(B, T) source slot per target slot of two left-padded batches; -1 where there is none.

  token_index: per row, token_alignment(source offsets, target offsets) of that row's unpadded tokens (one entry
  per real target token, values in [-1, real source tokens)). Padding shifts both sides: a target token's slot
  is its index plus the row's target padding, and the source token it reads sits at its index plus the row's
  source padding. Target padding reads nothing.
  """
  target_mask, source_mask = np.asarray(target_mask).astype(bool), np.asarray(source_mask).astype(bool)
  if target_mask.ndim != 2 or source_mask.ndim != 2 or target_mask.shape[0] != source_mask.shape[0]:
    raise ValueError(f"target_mask and source_mask must be (B, T) and (B, S) of one batch; got "
                     f"{target_mask.shape} and {source_mask.shape}.")
  if len(token_index) != target_mask.shape[0]:
    raise ValueError(f"token_index has {len(token_index)} rows for a batch of {target_mask.shape[0]}.")
  batch, length = target_mask.shape
  out = np.full((batch, length), -1, np.int32)
  for b, row in enumerate(token_index):
    row = np.asarray(row)
    n_target, n_source = int(target_mask[b].sum()), int(source_mask[b].sum())
    if row.shape != (n_target,) or not np.issubdtype(row.dtype, np.integer):
      raise ValueError(f"token_index[{b}] must be {n_target} integer source indices (one per real target token); "
                       f"got shape {row.shape}, dtype {row.dtype}.")
    if row.size and (row.min() < -1 or row.max() >= n_source):
      raise ValueError(f"token_index[{b}] holds {int(row.min())}..{int(row.max())}, outside [-1, {n_source}) "
                       f"for a row of {n_source} source tokens.")
    pad_source = source_mask.shape[1] - n_source
    out[b, length - n_target:] = np.where(row >= 0, row + pad_source, -1)
  return out


def align_source_cache(source: KVCache, index) -> KVCache:
  """The source cache at the target's slots: k, v (Ls, B, T, Ks, Ds) and valid (B, T) by
  alignment.gather_positions with index ((T,) or (B, T) source slots, -1: none, e.g. slot_alignment's)."""
  # The whole stack in one gather: slots second, as gather_positions wants them, then layers first again.
  k, valid = alignment.gather_positions(jnp.moveaxis(source.k, 0, 2), index)
  v, _ = alignment.gather_positions(jnp.moveaxis(source.v, 0, 2), index)
  source_valid, _ = alignment.gather_positions(source.valid, index)
  return KVCache(k=jnp.moveaxis(k, 2, 0), v=jnp.moveaxis(v, 2, 0), valid=source_valid & jnp.asarray(valid),
                 next_position=source.next_position, index=source.index)


def _mask(ids, mask, name: str) -> np.ndarray:
  ids = np.asarray(ids)
  if ids.ndim != 2:
    raise ValueError(f"{name}_ids must be (B, T) token ids; got shape {ids.shape}.")
  return np.ones(ids.shape, np.int32) if mask is None else np.asarray(mask)


def fused_cache_transform(source_lm: CausalLM, fusers: Sequence[fuser.Fuser], layer_map: Sequence[int | None], *,
                          target_ids, target_mask=None, source_ids, source_mask=None, alignment_index=None,
                          gates_off: bool = False, hard: bool = True) -> FusedCacheTransform:
  """The source's prompt cache, aligned to the target's prompt slots, and the fusers, as a cache_transform.

  alignment_index: (T,) or (B, T) source slot read by each target slot (slot_alignment turns per-row
  token_alignment results into it). None: the same tokenization, slot j reads slot j, which needs source and
  target prompts of one shape and one mask. hard=False: the noise-free soft gate sigmoid(logit).
  """
  target_mask, source_mask = _mask(target_ids, target_mask, "target"), _mask(source_ids, source_mask, "source")
  if alignment_index is None:
    if np.shape(source_ids) != np.shape(target_ids) or source_mask.shape != target_mask.shape or not np.array_equal(
        source_mask.astype(bool), target_mask.astype(bool)):
      raise ValueError(f"alignment_index=None reads source slot j at target slot j, which needs one tokenization: "
                       f"source prompts {np.shape(source_ids)} and target prompts {np.shape(target_ids)} with one "
                       "mask. Pass alignment_index (slot_alignment of token_alignment) for two tokenizers.")
    index = np.where(target_mask.astype(bool), np.arange(target_mask.shape[1]), -1).astype(np.int32)
  else:
    index = np.asarray(alignment_index)
    if index.ndim not in (1, 2) or index.shape[-1] != target_mask.shape[1]:
      raise ValueError(f"alignment_index must be (T,) or (B, T) with T = {target_mask.shape[1]} target slots; got "
                       f"shape {index.shape}.")
  _, source_cache = prefill_prompt(source_lm, input_ids=source_ids, attention_mask=source_mask)
  graphdef, state = nnx.split(fusers)
  return FusedCacheTransform(state=state, source=align_source_cache(source_cache, index), graphdef=graphdef,
                             layer_map=tuple(layer_map), gates_off=bool(gates_off), hard=bool(hard))


def fused_generate(target_lm: CausalLM, source_lm: CausalLM, fusers: Sequence[fuser.Fuser],
                   layer_map: Sequence[int | None], *, target_ids, target_mask=None, source_ids, source_mask=None,
                   alignment_index=None, gates_off: bool = False, hard: bool = True,
                   **generate_kwargs) -> GenerateOutput:
  """Greedy generation by the target from its prompt cache fused with the source's (fused_cache_transform);
  generate_kwargs go to models.generate (max_new_tokens, eos_token_id, stop, ...)."""
  if "cache_transform" in generate_kwargs:
    raise ValueError("fused_generate builds the cache_transform itself; call models.generate for another one.")
  transform = fused_cache_transform(source_lm, fusers, layer_map, target_ids=target_ids, target_mask=target_mask,
                                    source_ids=source_ids, source_mask=source_mask, alignment_index=alignment_index,
                                    gates_off=gates_off, hard=hard)
  return generate(target_lm, input_ids=target_ids, attention_mask=target_mask, cache_transform=transform,
                  **generate_kwargs)
