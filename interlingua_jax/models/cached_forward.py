"""A teacher-forced, differentiable forward of a chunk of new tokens on top of a (possibly rewritten) KV cache.

The training side of KV-cache fusion (bridges/kv_fusion): at inference `generate(..., cache_transform=...)`
prefills the prompt's first T - 1 tokens, rewrites that cache, then runs the last prompt token and every
generated token against it, one at a time. Training needs the same numbers in one pass, with gradients flowing
back into the cache (and so into whatever rewrote it): `forward_with_cache` runs the chunk [last prompt token,
answer tokens...] through every layer, each query attending to the cache's valid slots and causally to the
chunk's tokens before it. Nothing is written into the cache: per layer the cache's keys and values are
concatenated with the chunk's own, so the cache is an ordinary differentiable input.

The layer pieces (projections, bias, qk-norm, RoPE, GQA attention, MLP) and the mask rule (causal over slots,
key padding, sliding window) are the decoder's own, so the chunk sees what decode steps into the cache see.
"""
import dataclasses

import jax
import jax.numpy as jnp

from interlingua_jax.models.config import DecoderConfig
from interlingua_jax.models.decoder import (ATTENTION_IMPLS, Params, attend_and_mlp, default_positions,
                                            input_embeddings, layer_qkv, lm_head, make_attention_mask, rms_norm)
from interlingua_jax.models.generate import KVCache
from interlingua_jax.models.rope import rope_tables


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class ChunkOutput:
  logits: jax.Array | None  # (B, C, V) float32; None with compute_logits=False
  hidden: jax.Array | None  # (B, C, d) float32 after the final norm; None unless output_hidden=True


def chunk_positions(cache: KVCache, chunk_mask: jax.Array) -> jax.Array:
  """(B, C) position ids continuing each row's count: its valid cache slots, then the chunk's real tokens.

  Counted from `valid` rather than taken from `cache.next_position`: a row whose cached slots are all padding
  (a one-token prompt) has next_position 1 after generate's prefill but its next token is at position 0, which
  is what `generate`'s transformed start (and a plain forward of the whole sequence) gives it.
  """
  seen = jnp.sum(cache.valid.astype(jnp.int32), axis=1)
  return seen[:, None] + default_positions(chunk_mask)


def chunk_attention_mask(config: DecoderConfig, cache: KVCache, chunk_mask: jax.Array) -> jax.Array:
  """(B, 1, C, S + C) boolean mask over [the cache's S slots, the chunk's C tokens].

  The chunk sits at slots index .. index + C - 1 (where decode steps would write it), so the decoder's rule
  (make_attention_mask: causal over slots, key padding, sliding window) applies unchanged. Cache keys are
  additionally restricted to valid slots: that rule lets a query see its own slot, which in the cache is an
  empty slot, not the query itself (the query's own key is in the chunk part).
  """
  steps = chunk_mask.shape[1]
  valid = cache.valid.astype(bool)
  old = make_attention_mask(cache.index + jnp.arange(steps), valid, config.sliding_window)
  old = old & valid[:, None, None, :]
  new = make_attention_mask(jnp.arange(steps), chunk_mask, config.sliding_window)
  return jnp.concatenate([old, new], axis=-1)


def _check_cache(config: DecoderConfig, cache: KVCache, batch: int):
  layers, cache_batch, slots = cache.k.shape[:3]
  want = (config.num_layers, batch, slots, config.num_kv_heads, config.head_dim)
  if cache.k.shape != want or cache.v.shape != want:
    raise ValueError(f"cache k and v must be (layers, batch, slots, kv_heads, head_dim) = {want}; got "
                     f"{cache.k.shape} and {cache.v.shape}.")
  if cache.valid.shape != (batch, slots):
    raise ValueError(f"cache valid must be (batch, slots) = {(batch, slots)}; got {cache.valid.shape}.")


def forward_with_cache(params: Params, config: DecoderConfig, cache: KVCache, *, input_ids=None,
                       inputs_embeds=None, chunk_mask=None, positions=None, compute_logits: bool = True,
                       output_hidden: bool = False, remat: bool = False,
                       attention_impl: str | None = None) -> ChunkOutput:
  """Runs a chunk of C new tokens (ids (B, C) or embeddings (B, C, d)) right after the cache's tokens.

  Pure and differentiable in params, the chunk and the cache's k and v. Reads cache.k/v (L, B, S, K, hd),
  cache.valid (B, S) and cache.index (the chunk's first slot, e.g. T - 1 after prefilling T - 1 prompt
  tokens); next_position is not read (see chunk_positions). chunk_mask (B, C): 1 = real (default all real);
  a padded chunk token (e.g. right padding of the answers) is seen by no real token. positions (B, C)
  default to chunk_positions. remat=True recomputes each layer in the backward pass. Returns float32 logits
  and, with output_hidden, the final-norm hidden states in float32.
  """
  if attention_impl not in ATTENTION_IMPLS:
    raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}; got {attention_impl!r}.")
  h0 = input_embeddings(params, config, input_ids, inputs_embeds)
  batch, steps = h0.shape[:2]
  _check_cache(config, cache, batch)
  if chunk_mask is None:
    chunk_mask = jnp.ones((batch, steps), jnp.int32)
  if chunk_mask.shape != (batch, steps):
    raise ValueError(f"chunk_mask must have shape {(batch, steps)}; got {chunk_mask.shape}.")
  if positions is None:
    positions = chunk_positions(cache, chunk_mask)
  if positions.shape != (batch, steps):
    raise ValueError(f"positions must have shape {(batch, steps)}; got {positions.shape}.")
  mask = chunk_attention_mask(config, cache, chunk_mask)
  cos, sin = rope_tables(config, positions, h0.dtype)

  def layer(h, xs):  # xs: this layer's weights and its slice of the cache
    w, k_cache, v_cache = xs
    q, k, v = layer_qkv(config, w, h, cos, sin)
    # As a decode step: the chunk's keys/values in the cache's dtype, next to the cache's (then cast to q's).
    k = jnp.concatenate([k_cache, k.astype(k_cache.dtype)], axis=1)
    v = jnp.concatenate([v_cache, v.astype(v_cache.dtype)], axis=1)
    return attend_and_mlp(config, attention_impl, w, h, q, k, v, mask), None

  if remat:
    layer = jax.checkpoint(layer)
  h, _ = jax.lax.scan(layer, h0, (params["layers"], cache.k, cache.v))
  final = rms_norm(h, params["final_norm"], config.rms_norm_eps)
  logits = lm_head(params, config, final) if compute_logits else None
  return ChunkOutput(logits=logits, hidden=final.astype(jnp.float32) if output_hidden else None)
