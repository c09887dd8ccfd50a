"""Byte-level text encoder: any text, any language, no tokenizer shared with (or borrowed from) a target.

Ids are UTF-8 bytes + 1 (0 is padding), so the vocabulary is 257 and nothing is out of vocabulary. Fixed
sinusoidal positions (Vaswani et al. 2017) over at most `max_len` bytes, then pre-LayerNorm transformer
layers. Float32 throughout.
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from interlingua_jax.nn.blocks import Attention

PAD = 0
VOCAB = 257  # 256 byte values + padding


def encode_bytes(texts: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
  """(ids, mask), both (B, T) int32 with T the longest text's byte count capped at max_len; right-padded.

  Texts longer than max_len bytes are cut (possibly inside a multi-byte character: the encoder sees bytes).
  """
  if max_len < 1:
    raise ValueError(f"max_len must be >= 1; got {max_len}.")
  rows = [list(text.encode("utf-8")[:max_len]) for text in texts]
  width = max(1, max((len(r) for r in rows), default=0))
  ids = np.full((len(rows), width), PAD, np.int32)
  for i, row in enumerate(rows):
    ids[i, :len(row)] = np.asarray(row, np.int32) + 1
  return ids, (ids != PAD).astype(np.int32)


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
  """(length, dim) float32: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same)."""
  if dim % 2:
    raise ValueError(f"sinusoidal positions need an even dim; got {dim}.")
  angles = np.arange(length)[:, None] / np.power(10000.0, np.arange(0, dim, 2) / dim)[None, :]
  table = np.empty((length, dim), np.float64)
  table[:, 0::2], table[:, 1::2] = np.sin(angles), np.cos(angles)
  return table.astype(np.float32)


class FeedForward(nnx.Module):
  """The residual MLP branch: Linear(GELU(Linear(LN(x)))), hidden width `hidden`."""

  def __init__(self, dim: int, hidden: int, *, rngs: nnx.Rngs):
    self.norm = nnx.LayerNorm(dim, rngs=rngs)
    self.w_in = nnx.Linear(dim, hidden, rngs=rngs)
    self.w_out = nnx.Linear(hidden, dim, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.w_out(jax.nn.gelu(self.w_in(self.norm(x))))


class EncoderLayer(nnx.Module):
  """x += SelfAttn(LN(x)); x += FeedForward(x) of width 4·dim."""

  def __init__(self, dim: int, num_heads: int, *, rngs: nnx.Rngs):
    self.attn_norm = nnx.LayerNorm(dim, rngs=rngs)
    self.attn = Attention(dim, dim, num_heads, rngs=rngs)
    self.mlp = FeedForward(dim, 4 * dim, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    h = self.attn_norm(x)
    x = x + self.attn(h, h, mask)
    return x + self.mlp(x)


class ByteEncoder(nnx.Module):
  """(B, T) byte ids + mask -> (B, T, dim) states; padded positions carry values nobody should read."""

  def __init__(self, *, dim: int = 256, depth: int = 2, num_heads: int = 8, max_len: int = 512, rngs: nnx.Rngs):
    if dim % num_heads:
      raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}.")
    self.max_len = max_len
    self.embed = nnx.Embed(VOCAB, dim, rngs=rngs)
    self.positions = nnx.Variable(jnp.asarray(sinusoidal_positions(max_len, dim)))  # fixed, not a Param
    self.layers = nnx.List([EncoderLayer(dim, num_heads, rngs=rngs) for _ in range(depth)])
    self.out_norm = nnx.LayerNorm(dim, rngs=rngs)

  def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
    if ids.ndim != 2 or ids.shape != mask.shape:
      raise ValueError(f"ids and mask must both be (batch, bytes); got {ids.shape} and {mask.shape}.")
    if ids.shape[1] > self.max_len:
      raise ValueError(f"{ids.shape[1]} bytes exceed the encoder's max_len={self.max_len}; "
                       f"encode with encode_bytes(texts, max_len={self.max_len}).")
    x = self.embed(ids) + self.positions[...][:ids.shape[1]]
    for layer in self.layers:
      x = layer(x, mask)
    return self.out_norm(x)
