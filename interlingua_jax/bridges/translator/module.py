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
from flax import nnx

from interlingua_jax.nn.blocks import Block, rms


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
    return y * (self.target_embed_rms / rms(y))
