"""One decoder for every family (Llama, Mistral, Qwen2, Qwen3): a params pytree plus pure functions.

Layer weights are stacked on a leading axis and run with `jax.lax.scan`, so a 32-layer model compiles as
fast as a 1-layer one. Dtype policy: activations in the weights' dtype; RMSNorm, softmax and logits in
float32.
"""
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from interlingua_jax.models import sharding
from interlingua_jax.models.config import DecoderConfig, ParamSpec, param_layout
from interlingua_jax.models.rope import apply_rope, rope_tables

Params = dict[str, Any]
ATTENTION_IMPLS = (None, "xla", "cudnn")


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class ModelOutput:
  logits: jax.Array | None  # (B, S, V) float32; None when only the first `upto_layer` layers ran
  hidden_states: jax.Array  # (layers_run + 1, B, S, d); 0 = embeddings, last = after the final norm (all layers)


def init_params(config: DecoderConfig, key: jax.Array, dtype=jnp.float32, mesh: Mesh | None = None) -> Params:
  """Random weights (normal, std 0.02; norms at 1), created already sharded when a mesh is given."""
  dtype = jnp.dtype(dtype)
  layout = param_layout(config)
  specs, treedef = jax.tree.flatten(layout, is_leaf=lambda x: isinstance(x, ParamSpec))

  def init(key):
    keys = jax.random.split(key, len(specs))
    leaves = [jnp.ones(s.shape, dtype) if s.init == "ones" else
              (0.02 * jax.random.normal(k, s.shape, jnp.float32)).astype(dtype) for s, k in zip(specs, keys)]
    return jax.tree.unflatten(treedef, leaves)

  out_shardings = None if mesh is None else sharding.param_shardings(config, mesh)
  return jax.jit(init, out_shardings=out_shardings)(key)


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
  """Normalises in float32, then scales in the activation dtype (as transformers' LlamaRMSNorm)."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return weight * y.astype(x.dtype)


def embed(params: Params, config: DecoderConfig, ids: jax.Array) -> jax.Array:
  """(B, S) token ids -> (B, S, d) input embeddings."""
  del config
  return jnp.take(params["embed"], ids, axis=0)


def lm_head(params: Params, config: DecoderConfig, hidden: jax.Array) -> jax.Array:
  """(..., d) final hidden states -> (..., V) float32 logits; tied heads reuse the embedding table."""
  if config.tie_word_embeddings:
    return jnp.einsum("...d,vd->...v", hidden, params["embed"], preferred_element_type=jnp.float32)
  return jnp.einsum("...d,dv->...v", hidden, params["lm_head"], preferred_element_type=jnp.float32)


def make_attention_mask(q_slots: jax.Array, kv_valid: jax.Array, sliding_window: int | None) -> jax.Array:
  """(B, 1, T, S) boolean mask: causal over slot indices & key padding & sliding window.

  q_slots (T,) are the query's slot indices among the S key slots. A query at a padded slot may attend to
  itself, so no row is fully masked (no NaN or undefined rows on any attention backend); real queries
  never see padded keys. The window keeps keys with q - k < sliding_window, as transformers does.
  """
  q = q_slots[:, None]
  k = jnp.arange(kv_valid.shape[-1])[None, :]
  allowed = k <= q
  if sliding_window is not None:
    allowed &= q - k < sliding_window
  mask = allowed[None] & kv_valid[:, None, :].astype(bool)
  return (mask | (k == q)[None])[:, None]


def _project(config: DecoderConfig, w: Params, x: jax.Array, name: str) -> jax.Array:
  """x (B, S, d) -> (B, S, heads, hd) through projection `name` plus the family's bias and per-head norm."""
  y = jnp.einsum("bsd,dnh->bsnh", x, w[name])
  if config.family.qkv_bias:
    y = y + w[f"{name}_bias"]
  if config.family.qk_norm and name != "v":
    y = rms_norm(y, w[f"{name}_norm"], config.rms_norm_eps)
  return y


def layer_qkv(config: DecoderConfig, w: Params, h: jax.Array, cos: jax.Array, sin: jax.Array):
  """Pre-norm, projections and RoPE: q (B, S, N, hd), k and v (B, S, K, hd)."""
  x = rms_norm(h, w["attn_norm"], config.rms_norm_eps)
  q = apply_rope(_project(config, w, x, "q"), cos, sin)
  k = apply_rope(_project(config, w, x, "k"), cos, sin)
  return q, k, _project(config, w, x, "v")


def attend_and_mlp(config: DecoderConfig, attention_impl: str | None, w: Params, h: jax.Array, q: jax.Array,
                    k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """The rest of the block: GQA attention (float32 softmax), output projection, SwiGLU MLP, residuals."""
  a = jax.nn.dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask=mask, implementation=attention_impl)
  h = h + jnp.einsum("bsnh,nhd->bsd", a, w["o"])
  x = rms_norm(h, w["mlp_norm"], config.rms_norm_eps)
  gate = jnp.einsum("bsd,df->bsf", x, w["gate"])
  up = jnp.einsum("bsd,df->bsf", x, w["up"])
  return h + jnp.einsum("bsf,fd->bsd", jax.nn.silu(gate) * up, w["down"])


def _layer_weights(layers: Params, i: jax.Array) -> Params:
  """Layer i's weights, indexed out of the stacks (no copy of the leading layers is made)."""
  return jax.tree.map(lambda a: a[i], layers)


def run_layers(params: Params, config: DecoderConfig, h: jax.Array, positions: jax.Array, mask: jax.Array, *,
               num_layers: int, attention_impl: str | None = None, collect: bool = True, remat: bool = False,
               cache: tuple[jax.Array, jax.Array] | None = None, write_index=0):
  """Runs the first `num_layers` layers; returns (h, per-layer outputs (n, B, S, d) or None, updated cache).

  One `jax.lax.scan` in one of three forms: all layers without a cache scan over the stacked weights
  themselves (the plain form); fewer layers scan over layer indices; with a cache (k, v), each
  (L, B, S_cache, K, hd), the cache rides in the carry, this step's keys/values are written in place at
  slot `write_index` and attention reads the layer's whole cache (the mask says which slots are real).
  collect=False emits no per-layer outputs (no (n, B, S, d) stack to store, nor its cotangent in a backward
  pass). remat=True recomputes each layer's activations in the backward pass instead of storing them.
  """
  cos, sin = rope_tables(config, positions, h.dtype)
  layers = params["layers"]

  def emit(h):  # the scan's per-layer output
    return h if collect else None

  def layer(w, h):
    q, k, v = layer_qkv(config, w, h, cos, sin)
    return attend_and_mlp(config, attention_impl, w, h, q, k, v, mask)

  if remat:
    layer = jax.checkpoint(layer)

  def over_weights(h, w):  # xs are the stacked weights: scan hands each layer its own slice
    h = layer(w, h)
    return h, emit(h)

  def over_indices(h, i):  # xs are layer indices 0..num_layers-1
    h = layer(_layer_weights(layers, i), h)
    return h, emit(h)

  def with_cache(carry, i):  # xs are layer indices; the whole cache rides in the carry
    h, (k_cache, v_cache) = carry
    w = _layer_weights(layers, i)
    q, k, v = layer_qkv(config, w, h, cos, sin)
    at = (i, 0, write_index, 0, 0)  # layer i, every row, this step's slots
    k_cache = jax.lax.dynamic_update_slice(k_cache, k[None].astype(k_cache.dtype), at)
    v_cache = jax.lax.dynamic_update_slice(v_cache, v[None].astype(v_cache.dtype), at)
    h = attend_and_mlp(config, attention_impl, w, h, q, k_cache[i], v_cache[i], mask)
    return (h, (k_cache, v_cache)), emit(h)

  if cache is not None:
    (h, cache), outs = jax.lax.scan(with_cache, (h, cache), jnp.arange(num_layers))
    return h, outs, cache
  if num_layers == config.num_layers:
    h, outs = jax.lax.scan(over_weights, h, layers)
  else:
    h, outs = jax.lax.scan(over_indices, h, jnp.arange(num_layers))
  return h, outs, None


def default_positions(attention_mask: jax.Array) -> jax.Array:
  """Positions count real tokens only: cumsum(mask) - 1, so left padding does not shift them (pads get 0)."""
  return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)


def input_embeddings(params: Params, config: DecoderConfig, input_ids, inputs_embeds) -> jax.Array:
  """Exactly one of ids (B, S) or embeddings (B, S, d); embeddings are cast to the weights' dtype."""
  if (input_ids is None) == (inputs_embeds is None):
    raise ValueError("pass exactly one of input_ids (B, S) or inputs_embeds (B, S, d).")
  if input_ids is not None:
    if input_ids.ndim != 2:
      raise ValueError(f"input_ids must be (batch, seq); got shape {input_ids.shape}.")
    return embed(params, config, input_ids)
  if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != config.hidden_size:
    raise ValueError(f"inputs_embeds must be (batch, seq, {config.hidden_size}); got shape {inputs_embeds.shape}.")
  return inputs_embeds.astype(params["embed"].dtype)


def forward(params: Params, config: DecoderConfig, *, input_ids=None, inputs_embeds=None, attention_mask=None,
            positions=None, upto_layer: int | None = None, compute_logits: bool = True,
            output_hidden_states: bool = True, remat: bool = False, attention_impl: str | None = None) -> ModelOutput:
  """Pure, differentiable forward pass over a (left- or right-) padded batch.

  attention_mask (B, S): 1 = real token. positions default to cumsum(mask) - 1. upto_layer=k runs only the
  first k layers (hidden_states then has k + 1 entries, the last one without the final norm, and logits
  are None). output_hidden_states=False keeps only the last entry (hidden_states has shape (1, B, S, d)):
  use it when only `hidden_states[-1]` is read, above all under a gradient. remat=True recomputes each
  layer in the backward pass (memory of one layer's activations instead of all). attention_impl:
  None/"xla"/"cudnn", passed to `jax.nn.dot_product_attention`.
  """
  if attention_impl not in ATTENTION_IMPLS:
    raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}; got {attention_impl!r}.")
  n = config.num_layers if upto_layer is None else upto_layer
  if not 0 <= n <= config.num_layers:
    raise ValueError(f"upto_layer must be in [0, {config.num_layers}]; got {upto_layer}.")
  h0 = input_embeddings(params, config, input_ids, inputs_embeds)
  batch, seq = h0.shape[:2]
  if attention_mask is None:
    attention_mask = jnp.ones((batch, seq), jnp.int32)
  if attention_mask.shape != (batch, seq):
    raise ValueError(f"attention_mask must have shape {(batch, seq)}; got {attention_mask.shape}.")
  if positions is None:
    positions = default_positions(attention_mask)
  mask = attention_mask_for(config, attention_mask)
  h, outs, _ = run_layers(params, config, h0, positions, mask, num_layers=n, attention_impl=attention_impl,
                          collect=output_hidden_states, remat=remat)
  if n < config.num_layers:
    hidden = jnp.concatenate([h0[None], outs], axis=0) if output_hidden_states else h[None]
    return ModelOutput(logits=None, hidden_states=hidden)
  final = rms_norm(h, params["final_norm"], config.rms_norm_eps)
  hidden = jnp.concatenate([h0[None], outs[:-1], final[None]], axis=0) if output_hidden_states else final[None]
  logits = lm_head(params, config, final) if compute_logits else None
  return ModelOutput(logits=logits, hidden_states=hidden)


def attention_mask_for(config: DecoderConfig, attention_mask: jax.Array) -> jax.Array:
  """The full-sequence (B, 1, S, S) mask of a forward pass without cache."""
  seq = attention_mask.shape[-1]
  return make_attention_mask(jnp.arange(seq), attention_mask, config.sliding_window)


@functools.partial(jax.jit, static_argnames=("config", "upto_layer", "compute_logits", "output_hidden_states",
                                             "attention_impl"))
def _jit_forward(params, config, input_ids, inputs_embeds, attention_mask, positions, upto_layer, compute_logits,
                 output_hidden_states, attention_impl):
  return forward(params, config, input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                 positions=positions, upto_layer=upto_layer, compute_logits=compute_logits,
                 output_hidden_states=output_hidden_states, attention_impl=attention_impl)


class CausalLM:
  """A frozen LM: config + params (+ the mesh they live on), called like a jitted function."""

  def __init__(self, config: DecoderConfig, params: Params, mesh: Mesh | None = None,
               attention_impl: str | None = None):
    if attention_impl not in ATTENTION_IMPLS:
      raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}; got {attention_impl!r}.")
    self.config, self.params, self.mesh, self.attention_impl = config, params, mesh, attention_impl

  def __call__(self, input_ids=None, inputs_embeds=None, attention_mask=None, positions=None,
               upto_layer: int | None = None, compute_logits: bool = True,
               output_hidden_states: bool = True) -> ModelOutput:
    return _jit_forward(self.params, self.config, input_ids, inputs_embeds, attention_mask, positions, upto_layer,
                        compute_logits, output_hidden_states, self.attention_impl)
