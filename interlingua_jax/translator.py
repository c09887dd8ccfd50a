"""The trainable translator: M learned queries read the source LM's hidden states.

    x⁰ = Q                                             (M × b, orthonormal rows)
    xˡ ← xˡ + tanh(g_attn)  · SelfAttn(RMSNorm(xˡ))
    xˡ ← xˡ + tanh(g_cross) · CrossAttn(RMSNorm(xˡ), RMSNorm(h_src), mask_src)
    xˡ ← xˡ + tanh(g_mlp)   · Dropout(SwiGLU(RMSNorm(xˡ)))
    y  = Linear_{b→d_tgt}(RMSNorm(x^depth))
    soft = y · rms_tgt / rms(y)                        (per token; no clamp)

All gates are scalars initialised to 0, so at initialisation every block is the
identity and the soft tokens depend on the queries only; the gates receive gradient
and open during training. Everything is computed in float32 (float32 master weights)
whatever the dtype of the source states.

Parameter paths are chosen so an optimizer can group them by name: gates contain
"gate", norms "norm", biases "bias" (see `optim.param_labels`). The SwiGLU weights
are therefore named `w_act`/`w_lin`/`w_out`, never "gate".
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


def _rms(x: jax.Array, eps: float = 1e-6) -> jax.Array:
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


class Translator(nnx.Module):
  """Source hidden states (B, S, d_src) -> M soft tokens (B, M, d_tgt) at the target's embedding scale."""

  def __init__(self, *, source_dim: int, target_dim: int, num_soft_tokens: int, bottleneck: int,
               depth: int, num_heads: int, dropout: float, target_embed_rms: float | None,
               rngs: nnx.Rngs, reads_source: bool = True):
    if num_soft_tokens > bottleneck:
      raise ValueError(
          f"num_soft_tokens={num_soft_tokens} > bottleneck={bottleneck}: at most `bottleneck` query "
          f"rows can be orthonormal. Raise translator.bottleneck to >= {num_soft_tokens} or lower "
          "translator.num_soft_tokens.")
    if num_soft_tokens < 1:
      raise ValueError(f"num_soft_tokens must be >= 1, got {num_soft_tokens}.")
    if bottleneck % num_heads:
      raise ValueError(f"bottleneck={bottleneck} must be divisible by num_heads={num_heads}.")
    if target_embed_rms is not None and not target_embed_rms > 0:
      raise ValueError(f"target_embed_rms must be positive (or None to skip calibration), "
                       f"got {target_embed_rms}.")
    self.source_dim = source_dim
    self.target_embed_rms = target_embed_rms
    # False: the prompt-tuning control. The source states are replaced by zeros, so the M soft tokens are learned
    # constants that never see the question, trained exactly as the bridge is: what training alone buys the target.
    self.reads_source = reads_source
    # jax's orthogonal initialiser is the QR of a Gaussian; for M <= b the rows are orthonormal.
    self.queries = nnx.Param(
        jax.nn.initializers.orthogonal()(rngs.params(), (num_soft_tokens, bottleneck), jnp.float32))
    self.source_norm = nnx.RMSNorm(source_dim, rngs=rngs)
    self.blocks = nnx.List([Block(bottleneck, source_dim, num_heads, dropout, rngs=rngs)
                            for _ in range(depth)])
    self.out_norm = nnx.RMSNorm(bottleneck, rngs=rngs)
    self.out = nnx.Linear(bottleneck, target_dim, rngs=rngs)

  def __call__(self, source_hidden: jax.Array, source_mask: jax.Array, *,
               deterministic: bool) -> jax.Array:
    """source_hidden: (B, S, d_src), any float dtype; source_mask: (B, S), 1 = real token."""
    if source_hidden.ndim != 3 or source_hidden.shape[-1] != self.source_dim:
      raise ValueError(f"source_hidden must be (batch, seq, {self.source_dim}), "
                       f"got {source_hidden.shape}.")
    if source_mask.shape != source_hidden.shape[:2]:
      raise ValueError(f"source_mask shape {source_mask.shape} must equal source_hidden's "
                       f"(batch, seq) {source_hidden.shape[:2]}.")
    source = self.source_norm(source_hidden.astype(jnp.float32))
    if not self.reads_source:
      source = jnp.zeros_like(source)
    x = jnp.broadcast_to(self.queries[...], (source.shape[0], *self.queries.shape))
    for block in self.blocks:
      x = block(x, source, source_mask, deterministic=deterministic)
    y = self.out(self.out_norm(x))
    if self.target_embed_rms is None:
      return y
    return y * (self.target_embed_rms / _rms(y))
