"""One adapter per target LLM: Z (B, M, d_z) -> that target's input embeddings (B, M, d_model).

The optional RMS calibration rescales every output vector to the RMS of the target's embedding table:
an adapter's raw outputs can sit two orders of magnitude off the scale the target was trained on, but
forcing the scale can also remove information a target uses, so it is an option to ablate, not a default.
"""
import jax
import jax.numpy as jnp
from flax import nnx


class Adapter(nnx.Module):
  """LayerNorm(d_z) + Linear(d_z -> d_model), then optionally y · rms_target / rms(y) per vector."""

  def __init__(self, *, latent_dim: int, target_dim: int, target_embed_rms: float | None = None,
               rngs: nnx.Rngs):
    if target_embed_rms is not None and not target_embed_rms > 0:
      raise ValueError(f"target_embed_rms must be positive (or None for no calibration); got {target_embed_rms}.")
    self.latent_dim = latent_dim
    self.target_embed_rms = target_embed_rms
    self.norm = nnx.LayerNorm(latent_dim, rngs=rngs)
    self.proj = nnx.Linear(latent_dim, target_dim, rngs=rngs)

  def __call__(self, z: jax.Array) -> jax.Array:
    if z.shape[-1] != self.latent_dim:
      raise ValueError(f"Z must end in d_z={self.latent_dim}; got shape {z.shape}.")
    y = self.proj(self.norm(z.astype(jnp.float32)))
    if self.target_embed_rms is None:
      return y
    return y * (self.target_embed_rms * jax.lax.rsqrt(jnp.mean(jnp.square(y), axis=-1, keepdims=True) + 1e-12))
