"""The interlingua's objective: the answer's first token (its own weight) + teacher forcing of K tokens.

The first answer token decides most short answers (SQuAD spans) and is where a collapsed Z shows first
(every question answered "the"), hence its separate, weighted term. Both terms reuse the translator's
masked cross-entropy on the layout's aligned labels and loss_mask.
"""
import jax
import jax.numpy as jnp

from interlingua_jax.nn.losses import answer_cross_entropy


def first_k_mask(loss_mask: jax.Array, k: int) -> jax.Array:
  """(B, S): loss_mask kept on each row's first k target positions only."""
  if k < 1:
    raise ValueError(f"k must be >= 1; got {k}.")
  mask = loss_mask.astype(jnp.int32)
  return mask * (jnp.cumsum(mask, axis=-1) <= k)


def interlingua_loss(logits: jax.Array, labels: jax.Array, loss_mask: jax.Array, *, k: int,
                     first_token_weight: float) -> tuple[jax.Array, dict[str, jax.Array]]:
  """first_token_weight · CE(first answer token) + CE(first k answer tokens); returns (loss, both terms).

  logits (B, S, V) and labels, loss_mask (B, S) aligned as `layout.bridged_batch` returns them.
  """
  first = answer_cross_entropy(logits, labels, first_k_mask(loss_mask, 1))
  k_tokens = answer_cross_entropy(logits, labels, first_k_mask(loss_mask, k))
  return first_token_weight * first + k_tokens, {"first_token": first, "k_tokens": k_tokens}
