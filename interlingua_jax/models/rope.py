"""Rotary position embeddings, computed exactly as transformers does (float32, rotate-half layout)."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from interlingua_jax.models.config import DecoderConfig


def inverse_frequencies(config: DecoderConfig) -> np.ndarray:
  """(head_dim/2,) float32 inverse frequencies, with the `llama3` scaling when the config asks for it.

  Computed in float32 with the same operations as transformers' `_compute_llama3_parameters` so that
  phases match at long positions (float64 here would drift from the reference by ~1e-3 rad at 8k).
  """
  dim = config.head_dim
  inv_freq = (np.float32(1.0) / (np.float32(config.rope_theta) **
                                 (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim))))
  inv_freq = inv_freq.astype(np.float32)
  scaling = config.rope_scaling_dict
  if scaling is None:
    return inv_freq
  factor = scaling["factor"]
  low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
  old_context = scaling["original_max_position_embeddings"]
  low_freq_wavelen, high_freq_wavelen = old_context / low, old_context / high
  wavelen = (np.float32(2 * math.pi) / inv_freq).astype(np.float32)
  scaled = np.where(wavelen > low_freq_wavelen, inv_freq / np.float32(factor), inv_freq).astype(np.float32)
  smooth = ((old_context / wavelen - low) / (high - low)).astype(np.float32)
  smoothed = ((1 - smooth) * scaled / np.float32(factor) + smooth * scaled).astype(np.float32)
  medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
  return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_tables(config: DecoderConfig, positions: jax.Array, dtype) -> tuple[jax.Array, jax.Array]:
  """cos, sin of shape (B, S, head_dim) for integer positions (B, S), cast to the activation dtype."""
  freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inverse_frequencies(config))
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """x: (B, S, heads, head_dim); the rotate-half convention of the HF checkpoints."""
  cos, sin = cos[:, :, None, :], sin[:, :, None, :]
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return x * cos + rotated * sin
