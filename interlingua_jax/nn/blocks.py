"""Trainable building blocks every bridge kind may use: attention with a key mask, SwiGLU, the gated
pre-norm block, and the RMS statistics soft tokens are scaled by.

Parameter paths are chosen so an optimizer can group them by name: gates contain "gate", norms "norm",
biases "bias" (`training.optim.param_labels`). The SwiGLU weights are therefore named `w_act`/`w_lin`/`w_out`,
never "gate". Everything is computed in float32 (float32 master weights).
"""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Finite "minus infinity": a sample whose source is fully masked gets uniform
# attention instead of NaN, and masked keys get exactly zero weight otherwise.
_MASKED = -1e30


def embedding_rms(embed_table: jax.Array | np.ndarray) -> float:
  """RMS of all entries of the target's embedding table (the scale soft tokens must match)."""
  if embed_table.ndim != 2:
    raise ValueError(f"embedding_rms expects a (vocab, dim) table, got shape {embed_table.shape}.")
  return float(_rms_all(embed_table))


@jax.jit
def _rms_all(table: jax.Array) -> jax.Array:
  # The float32 cast fuses into the reduction: no float32 copy of a bf16 table.
  return jnp.sqrt(jnp.mean(jnp.square(table.astype(jnp.float32))))


def rms(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  return jnp.sqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class Attention(nnx.Module):
  """Multi-head attention: queries of width `dim` attend to keys/values of width `kv_dim`."""

  def __init__(self, dim: int, kv_dim: int, num_heads: int, *, rngs: nnx.Rngs):
    self.num_heads = num_heads
    self.q = nnx.Linear(dim, dim, rngs=rngs)
    self.k = nnx.Linear(kv_dim, dim, rngs=rngs)
    self.v = nnx.Linear(kv_dim, dim, rngs=rngs)
    self.o = nnx.Linear(dim, dim, rngs=rngs)

  def __call__(self, x: jax.Array, kv: jax.Array, kv_mask: jax.Array | None = None) -> jax.Array:
    """x: (B, M, dim); kv: (B, S, kv_dim); kv_mask: (B, S), 1 = attend."""
    split = lambda t: t.reshape(*t.shape[:-1], self.num_heads, -1)  # (B, T, H, Dh)
    q, k, v = split(self.q(x)), split(self.k(kv)), split(self.v(kv))
    scores = jnp.einsum("bmhd,bshd->bhms", q, k) / jnp.sqrt(q.shape[-1])
    if kv_mask is not None:
      scores = jnp.where(kv_mask[:, None, None, :].astype(bool), scores, _MASKED)
    weights = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bhms,bshd->bmhd", weights, v)
    return self.o(out.reshape(*x.shape[:-1], -1))


class SwiGLU(nnx.Module):
  """w_out(silu(w_act x) ⊙ w_lin x), dropout on the hidden layer."""

  def __init__(self, dim: int, hidden: int, dropout: float, *, rngs: nnx.Rngs):
    self.w_act = nnx.Linear(dim, hidden, rngs=rngs)
    self.w_lin = nnx.Linear(dim, hidden, rngs=rngs)
    self.w_out = nnx.Linear(hidden, dim, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    h = jax.nn.silu(self.w_act(x)) * self.w_lin(x)
    return self.w_out(self.dropout(h, deterministic=deterministic))


class Block(nnx.Module):
  """Pre-norm residual block; each branch is scaled by tanh of its own scalar gate."""

  def __init__(self, dim: int, source_dim: int, num_heads: int, dropout: float, *, rngs: nnx.Rngs):
    self.attn_norm = nnx.RMSNorm(dim, rngs=rngs)
    self.attn = Attention(dim, dim, num_heads, rngs=rngs)
    self.attn_gate = nnx.Param(jnp.zeros((), jnp.float32))
    self.cross_norm = nnx.RMSNorm(dim, rngs=rngs)
    self.cross = Attention(dim, source_dim, num_heads, rngs=rngs)
    self.cross_gate = nnx.Param(jnp.zeros((), jnp.float32))
    self.mlp_norm = nnx.RMSNorm(dim, rngs=rngs)
    self.mlp = SwiGLU(dim, int(4 * dim * 2 / 3), dropout, rngs=rngs)
    self.mlp_gate = nnx.Param(jnp.zeros((), jnp.float32))

  def __call__(self, x: jax.Array, source: jax.Array, source_mask: jax.Array, *,
               deterministic: bool) -> jax.Array:
    h = self.attn_norm(x)
    x = x + jnp.tanh(self.attn_gate[...]) * self.attn(h, h)
    x = x + jnp.tanh(self.cross_gate[...]) * self.cross(self.cross_norm(x), source, source_mask)
    x = x + jnp.tanh(self.mlp_gate[...]) * self.mlp(self.mlp_norm(x), deterministic=deterministic)
    return x
