"""The alternative encoder: a frozen LM's hidden states, as the translator's source path reads them.

`bridge.source_states` gives the (stop-gradient) states of one layer of the frozen source LM; this module
only brings them to d_z, so the interlingua then pools them exactly as it pools the byte encoder's states.
"""
import jax
import jax.numpy as jnp
from flax import nnx


class StatesEncoder(nnx.Module):
  """(B, S, d_src) frozen-LM states + mask -> (B, S, dim): LayerNorm then Linear, in float32."""

  def __init__(self, *, source_dim: int, dim: int, rngs: nnx.Rngs):
    self.source_dim = source_dim
    self.norm = nnx.LayerNorm(source_dim, rngs=rngs)
    self.proj = nnx.Linear(source_dim, dim, rngs=rngs)

  def __call__(self, states: jax.Array, mask: jax.Array) -> jax.Array:
    if states.ndim != 3 or states.shape[-1] != self.source_dim or states.shape[:2] != mask.shape:
      raise ValueError(f"states must be (batch, seq, {self.source_dim}) with a (batch, seq) mask; got "
                       f"{states.shape} and {mask.shape}.")
    return self.proj(self.norm(states.astype(jnp.float32)))
