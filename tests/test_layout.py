"""Bridged layout: left padding only, one BOS, contiguous positions, labels on answer + EOS."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlingua_jax.data.layout import bridged_batch, place_soft_tokens, text_batch

PAD, BOS, EOS = 0, 1, 2


def test_left_padded_batch_exact_layout():
  batch = bridged_batch([[5, 6], [7]], [[8], [9, 10]], num_soft_tokens=2, seq_len=9,
                        bos_id=BOS, pad_id=PAD, eos_id=EOS)
  np.testing.assert_array_equal(batch.token_ids, [[0, 0, 1, 0, 0, 5, 6, 8, 2],
                                                  [0, 0, 1, 0, 0, 7, 9, 10, 2]])
  np.testing.assert_array_equal(batch.soft_index, [[-1, -1, -1, 0, 1, -1, -1, -1, -1]] * 2)
  np.testing.assert_array_equal(batch.attention_mask, [[0, 0, 1, 1, 1, 1, 1, 1, 1]] * 2)
  np.testing.assert_array_equal(batch.positions, [[0, 0, 0, 1, 2, 3, 4, 5, 6]] * 2)
  np.testing.assert_array_equal(batch.labels, [[0, 1, 0, 0, 5, 6, 8, 2, 0],
                                               [0, 1, 0, 0, 7, 9, 10, 2, 0]])
  np.testing.assert_array_equal(batch.loss_mask, [[0, 0, 0, 0, 0, 0, 1, 1, 0],
                                                  [0, 0, 0, 0, 0, 1, 1, 1, 0]])
  for field in batch:
    assert field.dtype == np.int32


def test_different_lengths_pad_only_on_the_left():
  batch = bridged_batch([[5, 6, 7], [8]], None, num_soft_tokens=1, seq_len=None, bos_id=BOS, pad_id=PAD)
  np.testing.assert_array_equal(batch.token_ids, [[1, 0, 5, 6, 7], [0, 0, 1, 0, 8]])
  np.testing.assert_array_equal(batch.soft_index, [[-1, 0, -1, -1, -1], [-1, -1, -1, 0, -1]])
  np.testing.assert_array_equal(batch.attention_mask, [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
  np.testing.assert_array_equal(batch.positions, [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]])
  assert not batch.loss_mask.any()


def test_generation_layout_matches_training_prefix():
  """Same tokens and positions for [BOS][soft][prompt] in training and generation (docs/DESIGN.md §3.4)."""
  prompts, answers = [[5, 6], [7, 8, 9, 10]], [[11, 12, 13], [14]]
  train = bridged_batch(prompts, answers, num_soft_tokens=3, seq_len=16, bos_id=BOS, pad_id=PAD, eos_id=EOS)
  gen = bridged_batch(prompts, None, num_soft_tokens=3, seq_len=12, bos_id=BOS, pad_id=PAD)
  for i, (prompt, answer) in enumerate(zip(prompts, answers)):
    n = 1 + 3 + len(prompt)
    t_real = train.attention_mask[i] == 1
    g_real = gen.attention_mask[i] == 1
    assert g_real.sum() == n and gen.token_ids[i, -1] == prompt[-1]
    for field in ("token_ids", "soft_index", "positions"):
      np.testing.assert_array_equal(getattr(train, field)[i][t_real][:n], getattr(gen, field)[i][g_real])
    assert not set(answer) & set(gen.token_ids[i].tolist())  # no gold answer in the generation input


def test_no_bos_starts_with_soft_token_at_position_zero():
  batch = bridged_batch([[5]], [[6]], num_soft_tokens=2, seq_len=6, bos_id=None, pad_id=PAD, eos_id=EOS)
  np.testing.assert_array_equal(batch.token_ids, [[0, 0, 0, 5, 6, 2]])
  np.testing.assert_array_equal(batch.soft_index, [[-1, 0, 1, -1, -1, -1]])
  np.testing.assert_array_equal(batch.positions, [[0, 0, 1, 2, 3, 4]])
  np.testing.assert_array_equal(batch.loss_mask, [[0, 0, 0, 1, 1, 0]])


def test_text_layout_is_the_zero_soft_token_case():
  batch = text_batch([[5, 6], [7]], seq_len=4, bos_id=BOS, pad_id=PAD)
  np.testing.assert_array_equal(batch.token_ids, [[0, 1, 5, 6], [0, 0, 1, 7]])
  np.testing.assert_array_equal(batch.soft_index, -np.ones((2, 4)))
  np.testing.assert_array_equal(batch.attention_mask, [[0, 1, 1, 1], [0, 0, 1, 1]])
  np.testing.assert_array_equal(batch.positions, [[0, 0, 1, 2], [0, 0, 0, 1]])
  train = text_batch([[5]], [[6]], seq_len=None, bos_id=BOS, pad_id=PAD, eos_id=EOS)
  np.testing.assert_array_equal(train.token_ids, [[1, 5, 6, 2]])
  np.testing.assert_array_equal(train.loss_mask, [[0, 1, 1, 0]])


def test_bad_input_errors():
  message = r"Sample 1 needs 7 positions.*soft 2 \+ prompt 2 \+ answer\+EOS 2.*seq_len is 6"
  with pytest.raises(ValueError, match=message):
    bridged_batch([[5], [5, 6]], [[7], [8]], num_soft_tokens=2, seq_len=6, bos_id=BOS, pad_id=PAD, eos_id=EOS)
  with pytest.raises(ValueError, match="eos_id is required"):
    bridged_batch([[5]], [[6]], num_soft_tokens=2, seq_len=None, bos_id=BOS, pad_id=PAD)
  with pytest.raises(ValueError, match="answer_ids has 1 samples but prompt_ids has 2"):
    bridged_batch([[5], [6]], [[6]], num_soft_tokens=2, seq_len=None, bos_id=BOS, pad_id=PAD, eos_id=EOS)
  with pytest.raises(ValueError, match="nothing to condition on"):
    text_batch([[]], seq_len=None, bos_id=None, pad_id=PAD)
  with pytest.raises(ValueError, match="at least one sample"):
    text_batch([], seq_len=None, bos_id=BOS, pad_id=PAD)


ids = st.lists(st.integers(3, 50), max_size=5)


@settings(max_examples=40, deadline=None)
@given(prompts=st.lists(ids, min_size=1, max_size=4), data=st.data(),
       num_soft=st.integers(0, 3), extra=st.integers(0, 3), use_bos=st.booleans())
def test_layout_invariants(prompts, data, num_soft, extra, use_bos):
  answers = data.draw(st.lists(ids, min_size=len(prompts), max_size=len(prompts)))
  if not use_bos and num_soft == 0:
    prompts = [p or [3] for p in prompts]
  bos = BOS if use_bos else None
  lengths = [int(use_bos) + num_soft + len(p) + len(a) + 1 for p, a in zip(prompts, answers)]
  seq_len = max(lengths) + extra
  batch = bridged_batch(prompts, answers, num_soft_tokens=num_soft, seq_len=seq_len, bos_id=bos,
                        pad_id=PAD, eos_id=EOS)
  for i, (prompt, answer) in enumerate(zip(prompts, answers)):
    mask = batch.attention_mask[i]
    start = seq_len - lengths[i]
    np.testing.assert_array_equal(mask, np.arange(seq_len) >= start)  # left padding only
    np.testing.assert_array_equal(batch.positions[i][start:], np.arange(lengths[i]))
    real_tokens = batch.token_ids[i][start:][batch.soft_index[i][start:] < 0]
    # BOS, then the M soft slots, then the text directly: no pad between soft tokens and text.
    np.testing.assert_array_equal(real_tokens, [BOS] * use_bos + prompt + answer + [EOS])
    np.testing.assert_array_equal(batch.soft_index[i][start + use_bos:start + use_bos + num_soft],
                                  np.arange(num_soft))
    assert (batch.soft_index[i] >= 0).sum() == num_soft
    targets = batch.labels[i][batch.loss_mask[i] == 1]
    np.testing.assert_array_equal(targets, answer + [EOS])


def test_place_soft_tokens_values_and_gradient():
  batch = bridged_batch([[5, 6], [7]], None, num_soft_tokens=2, seq_len=None, bos_id=BOS, pad_id=PAD)
  embeds = jax.random.normal(jax.random.key(0), (2, 5, 3)).astype(jnp.bfloat16)
  soft = jax.random.normal(jax.random.key(1), (2, 2, 3))
  out = place_soft_tokens(embeds, soft, jnp.asarray(batch.soft_index))
  assert out.dtype == jnp.bfloat16
  expected = np.asarray(embeds, np.float32).copy()
  for i in range(2):
    for s, k in enumerate(batch.soft_index[i]):
      if k >= 0:
        expected[i, s] = np.asarray(soft[i, k].astype(jnp.bfloat16), np.float32)
  np.testing.assert_array_equal(np.asarray(out, np.float32), expected)

  weights = jax.random.normal(jax.random.key(2), (2, 5, 3))
  loss = lambda s: jnp.sum(place_soft_tokens(embeds.astype(jnp.float32), s, batch.soft_index) * weights)
  grad = jax.grad(loss)(soft)
  for i in range(2):
    slots = np.flatnonzero(batch.soft_index[i] >= 0)
    np.testing.assert_allclose(grad[i], weights[i, slots], rtol=1e-6)


def test_place_soft_tokens_without_soft_tokens_and_bad_shapes():
  embeds = jnp.ones((1, 3, 4))
  no_soft = -jnp.ones((1, 3), jnp.int32)
  np.testing.assert_array_equal(place_soft_tokens(embeds, jnp.zeros((1, 0, 4)), no_soft), embeds)
  with pytest.raises(ValueError, match="soft .* must be"):
    place_soft_tokens(embeds, jnp.zeros((1, 2, 5)), -jnp.ones((1, 3), jnp.int32))
  with pytest.raises(ValueError, match="soft_index"):
    place_soft_tokens(embeds, jnp.zeros((1, 2, 4)), -jnp.ones((1, 4), jnp.int32))
