"""M learned latent queries read the encoder states once: the fixed-size interlingua Z (B, M, d_z)."""
import jax
import jax.numpy as jnp
from flax import nnx

from interlingua_jax.bridges.interlingua.encoder import FeedForward
from interlingua_jax.nn.blocks import Attention


class LatentPooler(nnx.Module):
  """z = Q + CrossAttn(Q, LN(states), mask); z += FeedForward(z). Z has M rows whatever the text's length."""

  def __init__(self, *, num_soft_tokens: int, dim: int, num_heads: int, rngs: nnx.Rngs):
    if num_soft_tokens < 1:
      raise ValueError(f"num_soft_tokens must be >= 1; got {num_soft_tokens}.")
    self.queries = nnx.Param(0.02 * jax.random.normal(rngs.params(), (num_soft_tokens, dim), jnp.float32))
    self.states_norm = nnx.LayerNorm(dim, rngs=rngs)
    self.cross = Attention(dim, dim, num_heads, rngs=rngs)
    self.mlp = FeedForward(dim, 2 * dim, rngs=rngs)

  def __call__(self, states: jax.Array, mask: jax.Array) -> jax.Array:
    """states: (B, T, dim) encoder outputs; mask: (B, T), 1 = real byte. Returns Z (B, M, dim)."""
    q = jnp.broadcast_to(self.queries[...], (states.shape[0], *self.queries.shape))
    z = q + self.cross(q, self.states_norm(states), mask)
    return z + self.mlp(z)
