"""Cache-to-Cache fusion: a small network per target layer rewrites the frozen target LM's prefill KV cache
from the frozen source LM's.

Both LMs prefill the same prompt (each with its own tokens). The source cache is first brought to the target's
positions (alignment.token_alignment / gather_positions) and layers (alignment.terminal_layer_map); then each
fused target layer's `Fuser` adds a correction to the target's keys and values, once, and decoding runs on the
rewritten cache. The correction is a residual: target + g * sigmoid(w_h) * delta, with a per-layer gate g and a
per-head weight sigmoid(w_h), so a closed gate leaves the target model exactly as it was.

Dtype policy: float32 parameters and computation; the result is cast to the cache's dtype.
"""
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from interlingua_jax.models import DecoderConfig, KVCache


class GateParam(nnx.Param):
  """A fuser's per-layer gate logit. A type of its own so an optimizer can single the gates out (their own
  learning rate, no weight decay): `nnx.state(fusers, GateParam)` holds only the gates,
  `nnx.state(fusers, nnx.All(nnx.Param, nnx.Not(GateParam)))` everything else."""


def gate(logit: jax.Array, *, temperature: float | jax.Array, key: jax.Array | None, hard: bool) -> jax.Array:
  """The per-layer gate in [0, 1] from its logit.

  hard (inference): exactly 0 or 1, 1[logit > 0], so a layer is either fused or untouched. Otherwise
  (training) a Gumbel-sigmoid sample sigmoid((logit + logistic noise) / temperature): the noise makes the gate
  a random 0/1-ish switch whose probability of being on is sigmoid(logit) (the difference of two Gumbels is
  logistic), and a temperature annealed towards 0 (anneal_temperature) makes the samples nearly binary, so
  training ends close to the hard gate used at inference. key=None: the noise-free sigmoid(logit / temperature).
  """
  logit = jnp.asarray(logit, jnp.float32)
  if hard:
    return (logit > 0).astype(jnp.float32)
  if isinstance(temperature, (int, float)) and temperature <= 0:
    raise ValueError(f"gate temperature must be > 0; got {temperature}. Use hard=True for the 0/1 gate.")
  if key is not None:
    logit = logit + jax.random.logistic(key, logit.shape, jnp.float32)
  return jax.nn.sigmoid(logit / temperature)


def anneal_temperature(step: int | jax.Array, start: float, end: float, steps: int) -> jax.Array:
  """The gate temperature at `step`: exponential from `start` (step 0) to `end` (step `steps`), then `end`.

  Exponential rather than linear: the gate's samples change character with the temperature's order of magnitude
  (1 -> 0.1 -> 0.01), so each decade gets an equal share of training.
  """
  if not start > 0 or not end > 0:
    raise ValueError(f"anneal_temperature needs start > 0 and end > 0; got start={start}, end={end}.")
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
    raise ValueError(f"anneal_temperature steps must be an int >= 0; got {steps!r}.")
  if steps == 0:
    return jnp.float32(end)
  frac = jnp.clip(jnp.asarray(step, jnp.float32) / steps, 0.0, 1.0)
  return (start * (end / start) ** frac).astype(jnp.float32)


def _rms_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Scale-free features: the two models' keys and values have unrelated magnitudes, and neither should
  dominate the joint projection because of its scale alone."""
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)


class _Branch(nnx.Module):
  """(..., in) joined source and target features -> (..., out) correction: a projection, then a small MLP."""

  def __init__(self, in_features: int, hidden_size: int, out_features: int, output_init_scale: float,
               rngs: nnx.Rngs):
    kw = dict(dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)
    self.proj = nnx.Linear(in_features, hidden_size, **kw)
    self.hidden = nnx.Linear(hidden_size, hidden_size, **kw)
    # The output starts small (std output_init_scale / sqrt(hidden)), so an untrained fuser barely perturbs
    # the target, yet not zero, so the layers below it get gradients from the first step.
    self.out = nnx.Linear(hidden_size, out_features, kernel_init=nnx.initializers.normal(
        output_init_scale / hidden_size ** 0.5), **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = nnx.gelu(self.proj(x))
    return self.out(nnx.gelu(self.hidden(h)))


def _positive_int(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"Fuser {name} must be an int >= 1; got {value!r}.")
  return value


class Fuser(nnx.Module):
  """Rewrites one target layer's keys and values from the source layer mapped to it.

  For K (and separately for V): heads x head_dim of source and target are flattened, RMS-normalised and joined,
  and a projection plus a small MLP produce a (B, S, Ht, Dt) correction, added to the target's as
  target + g * sigmoid(w_h) * delta. Parameters, each easy to select by name or type:
    key_branch, value_branch: the correction networks (nnx.Param);
    key_head_logits, value_head_logits: w_h, (Ht,) each (nnx.Param);
    gate_logit: the layer's gate logit, () (GateParam, an nnx.Param subclass: its own learning rate).
  gate_init: the gate logit's start (> 0: open under the hard gate, <= 0: closed); head_init: w_h's start;
  output_init_scale: the output projection's initial scale (small: an untrained fuser perturbs little).
  """

  def __init__(self, *, source_heads: int, source_head_dim: int, target_heads: int, target_head_dim: int,
               hidden_size: int = 256, gate_init: float = 0.0, head_init: float = 0.0,
               output_init_scale: float = 1e-2, rngs: nnx.Rngs):
    self.source_shape = (_positive_int("source_heads", source_heads), _positive_int("source_head_dim",
                                                                                    source_head_dim))
    self.target_shape = (_positive_int("target_heads", target_heads), _positive_int("target_head_dim",
                                                                                    target_head_dim))
    _positive_int("hidden_size", hidden_size)
    joined = source_heads * source_head_dim + target_heads * target_head_dim
    out = target_heads * target_head_dim
    self.key_branch = _Branch(joined, hidden_size, out, output_init_scale, rngs)
    self.value_branch = _Branch(joined, hidden_size, out, output_init_scale, rngs)
    self.key_head_logits = nnx.Param(jnp.full((target_heads,), head_init, jnp.float32))
    self.value_head_logits = nnx.Param(jnp.full((target_heads,), head_init, jnp.float32))
    self.gate_logit = GateParam(jnp.asarray(gate_init, jnp.float32))

  def _check(self, name: str, x: jax.Array, heads_dim: tuple[int, int], batch_len: tuple[int, ...]):
    if x.ndim != 4 or tuple(x.shape[2:]) != heads_dim or tuple(x.shape[:2]) != batch_len:
      raise ValueError(f"Fuser {name} must be (B, S, heads, head_dim) = {(*batch_len, *heads_dim)}; got "
                       f"{tuple(x.shape)}. Align the source cache to the target's positions first "
                       "(alignment.gather_positions).")

  def _fuse(self, branch: _Branch, head_logits: nnx.Param, source: jax.Array, target: jax.Array, g: jax.Array,
            valid: jax.Array | None) -> jax.Array:
    batch, length = target.shape[:2]
    target32 = target.astype(jnp.float32)
    joined = jnp.concatenate([_rms_normalize(source.astype(jnp.float32).reshape(batch, length, -1)),
                              _rms_normalize(target32.reshape(batch, length, -1))], axis=-1)
    delta = branch(joined).reshape(target.shape)
    scale = (g * jax.nn.sigmoid(head_logits[...]))[:, None]  # (Ht, 1), broadcast over (B, S, Ht, Dt)
    fused = (target32 + scale * delta).astype(target.dtype)
    # Where nothing is added (gate or head weight exactly 0, or no valid source token) the target's own
    # values are kept bit for bit, whatever delta is.
    keep = jnp.broadcast_to(scale == 0, target.shape)
    if valid is not None:
      keep = keep | ~valid.astype(bool)[:, :, None, None]
    return jnp.where(keep, target, fused)

  def __call__(self, source_k: jax.Array, source_v: jax.Array, target_k: jax.Array, target_v: jax.Array, *,
               valid: jax.Array | None = None, temperature: float | jax.Array = 1.0, key: jax.Array | None = None,
               hard: bool = False) -> tuple[jax.Array, jax.Array]:
    """source_k/v (B, S, Hs, Ds), already at the target's positions; target_k/v (B, S, Ht, Dt); valid (B, S)
    bool: the slot has both a source and a target token (elsewhere the target is kept). temperature, key and
    hard go to `gate`. Returns the fused (k, v), each (B, S, Ht, Dt) in the target's dtype."""
    batch_len = tuple(target_k.shape[:2])
    self._check("target_k", target_k, self.target_shape, batch_len)
    self._check("target_v", target_v, self.target_shape, batch_len)
    self._check("source_k", source_k, self.source_shape, batch_len)
    self._check("source_v", source_v, self.source_shape, batch_len)
    if valid is not None and tuple(valid.shape) != batch_len:
      raise ValueError(f"Fuser valid must be (B, S) = {batch_len}; got {tuple(valid.shape)}.")
    g = gate(self.gate_logit[...], temperature=temperature, key=key, hard=hard)
    return (self._fuse(self.key_branch, self.key_head_logits, source_k, target_k, g, valid),
            self._fuse(self.value_branch, self.value_head_logits, source_v, target_v, g, valid))


def make_fusers(layer_map: Sequence[int | None], source: DecoderConfig, target: DecoderConfig, *,
                hidden_size: int = 256, gate_init: float = 0.0, head_init: float = 0.0,
                output_init_scale: float = 1e-2, rngs: nnx.Rngs) -> nnx.List:
  """One Fuser per fused target layer (layer_map[t] is not None), in target-layer order."""
  fused_layers = _check_map(layer_map, source.num_layers, target.num_layers)
  return nnx.List([Fuser(source_heads=source.num_kv_heads, source_head_dim=source.head_dim,
                         target_heads=target.num_kv_heads, target_head_dim=target.head_dim,
                         hidden_size=hidden_size, gate_init=gate_init, head_init=head_init,
                         output_init_scale=output_init_scale, rngs=rngs)
                   for _ in fused_layers])


def _check_map(layer_map: Sequence[int | None], num_source_layers: int, num_target_layers: int) -> list[int]:
  """The fused target layers; checks the map against both depths."""
  if len(layer_map) != num_target_layers:
    raise ValueError(f"layer_map has {len(layer_map)} entries for a target of {num_target_layers} layers; "
                     "build it with alignment.terminal_layer_map(source layers, target layers).")
  for t, s in enumerate(layer_map):
    if s is not None and not 0 <= s < num_source_layers:
      raise ValueError(f"layer_map[{t}] = {s} is not a layer of the {num_source_layers}-layer source; "
                       "build it with alignment.terminal_layer_map(source layers, target layers).")
  return [t for t, s in enumerate(layer_map) if s is not None]


def fuse_cache(fusers: Sequence[Fuser], layer_map: Sequence[int | None], source_cache_k: jax.Array,
               source_cache_v: jax.Array, target_cache_k: jax.Array, target_cache_v: jax.Array, *,
               valid: jax.Array | None = None, gates_off: bool = False, temperature: float | jax.Array = 1.0,
               key: jax.Array | None = None, hard: bool = False) -> tuple[jax.Array, jax.Array]:
  """Rewrites a whole target cache: (L, B, S, Ht, Dt) k and v.

  source_cache_k/v: (Ls, B, S, Hs, Ds), already at the target's S positions; fusers: one per fused target layer
  (layer_map[t] is not None) in target-layer order (make_fusers); layers mapped to None are returned unchanged.
  valid: (B, S) bool, the slots where both caches hold a token. gates_off: the target cache itself, bit for bit
  (the no-fusion baseline through the same code path). key: split into one gate sample per fused layer.
  """
  fused_layers = _check_map(layer_map, source_cache_k.shape[0], target_cache_k.shape[0])
  if len(fusers) != len(fused_layers):
    raise ValueError(f"{len(fusers)} fusers for {len(fused_layers)} fused layers (layer_map entries that are "
                     "not None); build them with make_fusers(layer_map, ...).")
  if source_cache_k.shape != source_cache_v.shape or target_cache_k.shape != target_cache_v.shape:
    raise ValueError(f"k and v must have one shape per cache; got source {source_cache_k.shape} / "
                     f"{source_cache_v.shape}, target {target_cache_k.shape} / {target_cache_v.shape}.")
  if gates_off:
    return target_cache_k, target_cache_v
  keys = [None] * len(fusers) if key is None else list(jax.random.split(key, len(fusers)))
  k_layers, v_layers = list(target_cache_k), list(target_cache_v)
  for fuser, t, layer_key in zip(fusers, fused_layers, keys):
    s = layer_map[t]
    k_layers[t], v_layers[t] = fuser(source_cache_k[s], source_cache_v[s], target_cache_k[t], target_cache_v[t],
                                     valid=valid, temperature=temperature, key=layer_key, hard=hard)
  return jnp.stack(k_layers), jnp.stack(v_layers)


def fuse_kv_cache(fusers: Sequence[Fuser], layer_map: Sequence[int | None], source: KVCache, target: KVCache,
                  **kwargs) -> KVCache:
  """fuse_cache on two models' KVCaches; the source's already at the target's slots (its k, v and valid
  gathered by alignment.gather_positions). Slots valid in both are fused; the rest of `target` is kept."""
  if tuple(source.valid.shape) != tuple(target.valid.shape):
    raise ValueError(f"source cache slots {tuple(source.valid.shape)} differ from the target's "
                     f"{tuple(target.valid.shape)}; gather the source to the target's positions first.")
  k, v = fuse_cache(fusers, layer_map, source.k, source.v, target.k, target.v,
                    valid=source.valid & target.valid, **kwargs)
  return KVCache(k=k, v=v, valid=target.valid, next_position=target.next_position, index=target.index)
