"""Losses: CE on answer + EOS only; InfoNCE varies with the batch and trains the translator."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from interlingua_jax.data.layout import bridged_batch
from interlingua_jax.nn.losses import answer_accuracy, answer_cross_entropy, info_nce, mean_pool
from interlingua_jax.bridges.translator.module import Translator

V = 11


def reference_ce(logits, labels, mask):
  logits = np.asarray(logits, np.float64)
  log_probs = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
  nll = -np.take_along_axis(log_probs, np.asarray(labels)[..., None], axis=-1)[..., 0]
  return np.sum(nll * mask) / np.sum(mask)


def reference_info_nce(a, p, temperature):
  a = np.asarray(a, np.float64)
  p = np.asarray(p, np.float64)
  a = a / np.linalg.norm(a, axis=-1, keepdims=True)
  p = p / np.linalg.norm(p, axis=-1, keepdims=True)
  sims = a @ p.T / temperature
  log_probs = sims - np.log(np.sum(np.exp(sims), axis=-1, keepdims=True))
  return -np.mean(np.diag(log_probs))


@pytest.fixture
def batch():
  return bridged_batch([[5, 6], [7]], [[8], [9, 10]], num_soft_tokens=2, seq_len=9, bos_id=1, pad_id=0,
                       eos_id=2)


def test_cross_entropy_matches_reference_on_answer_and_eos(batch):
  logits = jax.random.normal(jax.random.key(0), (2, 9, V))
  loss = answer_cross_entropy(logits, batch.labels, batch.loss_mask)
  assert loss.dtype == jnp.float32
  assert batch.loss_mask.sum() == 5  # answers (1 + 2 tokens) + one EOS each
  np.testing.assert_allclose(loss, reference_ce(logits, batch.labels, batch.loss_mask), rtol=1e-6)


def test_cross_entropy_ignores_logits_outside_the_answer(batch):
  logits = jax.random.normal(jax.random.key(0), (2, 9, V))
  loss = answer_cross_entropy(logits, batch.labels, batch.loss_mask)
  noise = 50.0 * jax.random.normal(jax.random.key(1), logits.shape)
  outside = jnp.where(batch.loss_mask[..., None] == 0, noise, logits)
  np.testing.assert_array_equal(answer_cross_entropy(outside, batch.labels, batch.loss_mask), loss)
  inside = jnp.where(batch.loss_mask[..., None] == 1, noise, logits)
  assert abs(float(answer_cross_entropy(inside, batch.labels, batch.loss_mask) - loss)) > 1e-2


def test_cross_entropy_bf16_logits_and_empty_mask(batch):
  logits = jax.random.normal(jax.random.key(0), (2, 9, V)).astype(jnp.bfloat16)
  loss = answer_cross_entropy(logits, batch.labels, batch.loss_mask)
  assert loss.dtype == jnp.float32
  expected = reference_ce(logits.astype(jnp.float32), batch.labels, batch.loss_mask)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert float(answer_cross_entropy(logits, batch.labels, np.zeros_like(batch.loss_mask))) == 0.0


def test_answer_accuracy_counts_only_targets(batch):
  logits = jnp.zeros((2, 9, V)).at[0, 6, 8].set(1.0).at[1, 5, 3].set(1.0)  # right at (0, 6), wrong at (1, 5)
  assert float(answer_accuracy(logits, batch.labels, batch.loss_mask)) == pytest.approx(1 / 5)


def test_mean_pool_excludes_padding():
  x = jax.random.normal(jax.random.key(0), (2, 4, 3)).astype(jnp.bfloat16)
  mask = np.array([[0, 1, 1, 1], [0, 0, 0, 1]])
  pooled = mean_pool(x, mask)
  assert pooled.dtype == jnp.float32
  xf = np.asarray(x, np.float32)
  np.testing.assert_allclose(pooled, [xf[0, 1:].mean(0), xf[1, 3]], rtol=1e-6)
  np.testing.assert_allclose(mean_pool(x), xf.mean(1), rtol=1e-6)


def test_info_nce_matches_reference_and_varies_across_batches():
  keys = jax.random.split(jax.random.key(0), 4)
  a1, p1, a2, p2 = (jax.random.normal(k, (6, 8)) for k in keys)
  l1, l2 = info_nce(a1, p1, 0.07), info_nce(a2, p2, 0.07)
  np.testing.assert_allclose(l1, reference_info_nce(a1, p1, 0.07), rtol=1e-5)
  np.testing.assert_allclose(l2, reference_info_nce(a2, p2, 0.07), rtol=1e-5)
  assert abs(float(l1 - l2)) > 1e-2
  aligned = jnp.eye(6, 8)  # each anchor equals its own positive, orthogonal to the others
  np.testing.assert_allclose(info_nce(aligned, aligned, 0.5), np.log(1 + 5 * np.exp(-2.0)), rtol=1e-6)


def test_shared_positive_is_constant_with_no_gradient():
  """The first implementation's bug (docs/DESIGN.md §3.6): one positive for all samples is log(B), flat."""
  anchors = jax.random.normal(jax.random.key(0), (5, 8))
  shared = jnp.broadcast_to(jax.random.normal(jax.random.key(1), (8,)), (5, 8))
  np.testing.assert_allclose(info_nce(anchors, shared, 0.07), np.log(5), rtol=1e-6)
  np.testing.assert_allclose(jax.grad(info_nce)(anchors, shared, 0.07), 0.0, atol=1e-6)


def test_info_nce_bad_input():
  with pytest.raises(ValueError, match="at least 2"):
    info_nce(jnp.ones((1, 4)), jnp.ones((1, 4)), 0.07)
  with pytest.raises(ValueError, match="must both be"):
    info_nce(jnp.ones((2, 4)), jnp.ones((2, 5)), 0.07)
  with pytest.raises(ValueError, match="temperature"):
    info_nce(jnp.ones((2, 4)), jnp.ones((2, 4)), 0.0)


def test_info_nce_gradient_reaches_translator():
  """Anchor = mean of a sample's soft tokens; positive = masked mean of its own question's embeddings."""
  model = Translator(source_dim=12, target_dim=16, num_soft_tokens=4, bottleneck=16, depth=1, num_heads=2,
                     dropout=0.0, target_embed_rms=0.1, rngs=nnx.Rngs(0))
  source = jax.random.normal(jax.random.key(1), (4, 5, 12))
  source_mask = jnp.ones((4, 5))
  question_embeds = jax.random.normal(jax.random.key(2), (4, 7, 16))
  question_mask = jnp.array([[1] * 7, [0, 0] + [1] * 5, [0] * 6 + [1], [1] * 7])

  def loss(m):
    anchors = mean_pool(m(source, source_mask, deterministic=True))
    return info_nce(anchors, mean_pool(question_embeds, question_mask), 0.07)

  def grad_norms(model):
    grads = nnx.jit(nnx.grad(loss))(model)
    leaves = jax.tree_util.tree_leaves_with_path(grads, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return {jax.tree_util.keystr(path, simple=True, separator="/"): float(jnp.linalg.norm(g[...]))
            for path, g in leaves}

  # At init (gates closed) the gradient opens the gates and moves the queries and output layer.
  norms = grad_norms(model)
  for name in ("blocks/0/cross_gate", "queries", "out/kernel"):
    assert norms[name] > 1e-6, name
  # Once the cross-attention is open, its weights learn too.
  model.blocks[0].cross_gate[...] = jnp.asarray(0.5)
  norms = grad_norms(model)
  for name in ("blocks/0/cross/k/kernel", "blocks/0/cross/v/kernel", "source_norm/scale"):
    assert norms[name] > 1e-6, name
