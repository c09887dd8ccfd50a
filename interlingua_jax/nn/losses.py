"""Training losses, all in float32 whatever the model dtype.

The cross-entropy sees only the answer tokens and the EOS (the layout's `loss_mask`).
InfoNCE keeps soft tokens of different questions apart: each sample's anchor (mean of its
soft tokens) must pick out its own question's embedding among the batch's, so a bridge
that ignores the source (collapse) pays log(batch) nats. The positives must differ per
sample; a positive shared by all samples (the first implementation used the common
few-shot header) makes the loss the constant log(batch) with no gradient.
"""
import jax
import jax.numpy as jnp


def answer_cross_entropy(logits: jax.Array, labels: jax.Array, loss_mask: jax.Array) -> jax.Array:
  """Mean next-token cross-entropy over the positions where loss_mask is 1.

  logits: (B, S, V); labels, loss_mask: (B, S), already aligned (labels[:, t] is the target of
  logits[:, t], as `layout.bridged_batch` returns them). A batch with no target tokens gives 0.
  """
  mask = loss_mask.astype(jnp.float32)
  logits = logits.astype(jnp.float32)
  target_logits = jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]
  nll = jax.nn.logsumexp(logits, axis=-1) - target_logits
  return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def answer_accuracy(logits: jax.Array, labels: jax.Array, loss_mask: jax.Array) -> jax.Array:
  """Fraction of target tokens (loss_mask 1) whose argmax prediction is right; a metric, no gradient."""
  mask = loss_mask.astype(jnp.float32)
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return jnp.sum(correct * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def mean_pool(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """(B, S, d) -> (B, d) float32 mean over the positions where mask (B, S) is 1 (all if None)."""
  x = x.astype(jnp.float32)
  if mask is None:
    return jnp.mean(x, axis=1)
  mask = mask.astype(jnp.float32)[..., None]
  return jnp.sum(x * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)


def info_nce(anchors: jax.Array, positives: jax.Array, temperature: float) -> jax.Array:
  """Cross-entropy of cosine similarities / temperature, the diagonal as the positives.

  anchors, positives: (B, d); row i of `positives` belongs to sample i, the other rows
  are its negatives. Under jit over a sharded global batch the negatives span all devices.
  """
  if anchors.ndim != 2 or anchors.shape != positives.shape:
    raise ValueError(f"anchors {anchors.shape} and positives {positives.shape} must both be (batch, dim).")
  if anchors.shape[0] < 2:
    raise ValueError(f"info_nce needs a batch of at least 2 for negatives, got {anchors.shape[0]}.")
  if not temperature > 0:
    raise ValueError(f"temperature must be positive, got {temperature}.")
  # rsqrt of a clamped squared norm: finite gradient even for an all-zero vector.
  normalize = lambda v: v * jax.lax.rsqrt(jnp.maximum(jnp.sum(v * v, axis=-1, keepdims=True), 1e-12))
  a = normalize(anchors.astype(jnp.float32))
  p = normalize(positives.astype(jnp.float32))
  log_probs = jax.nn.log_softmax(a @ p.T / temperature, axis=-1)
  return -jnp.mean(jnp.diagonal(log_probs))


def collapse_diagnostics(soft: jax.Array) -> dict[str, jax.Array]:
  """Logged, never optimized: a collapsing bridge sends every question the same soft tokens.

  soft: (B, M, d). `soft_rms`: root mean square of the entries (drift away from the target's
  embedding scale); `soft_similarity`: mean cosine similarity between the flattened soft tokens
  of different questions of the batch (1.0 = the same tokens whatever the question).
  """
  x = jax.lax.stop_gradient(soft.astype(jnp.float32)).reshape(soft.shape[0], -1)
  unit = x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))
  b = x.shape[0]
  cos = unit @ unit.T
  off_diagonal = (jnp.sum(cos) - jnp.trace(cos)) / jnp.maximum(b * (b - 1), 1)
  return {"soft_rms": jnp.sqrt(jnp.mean(x * x)), "soft_similarity": off_diagonal}
