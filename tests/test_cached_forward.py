"""forward_with_cache: a chunk run on a prompt cache is the full-sequence forward at those positions, is what
generate's transformed start decodes from, reads the cache (never its padding) and passes gradients into it."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from interlingua_jax.bridges.kv_fusion import fuser
from interlingua_jax.models import CausalLM, DecoderConfig, KVCache, forward, generate, init_params
from interlingua_jax.models.cached_forward import forward_with_cache
from interlingua_jax.models.generate import _extend, _prefill_prompt, prefill_prompt

B, T, A = 4, 8, 5  # batch, prompt length, answer tokens: the chunk is [last prompt token, A answer tokens]
PADS = (0, 2, 5, 3)  # different left padding per row, every row with >= 2 real prompt tokens
LONE_PADS = (0, 2, 7, 4)  # row 2 has one real prompt token: its first T - 1 slots are all padding
KINDS = {
    "llama": dict(model_type="llama"),
    "qwen2": dict(model_type="qwen2", rope_theta=1e6),  # q/k/v biases
    "qwen3": dict(model_type="qwen3"),  # per-head q/k norms
    "mistral_window": dict(model_type="mistral", sliding_window=4),  # window shorter than prompt + answer
}


@functools.cache
def _lm(kind: str) -> CausalLM:
  """A 2-layer GQA (4:2) decoder, weights scaled to std 0.1 so the logits (and greedy choices) are decisive."""
  config = DecoderConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=8, **KINDS[kind])
  params = jax.tree.map(np.asarray, init_params(config, jax.random.key(len(kind))))
  return CausalLM(config, jax.tree.map(lambda x: jnp.asarray(x if (x == 1).all() else 5 * x), params))


def _batch(pads, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Left-padded prompts (B, T), their mask, and answers (B, A)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(3, 64, (B, T)).astype(np.int32)
  mask = np.ones_like(ids)
  for row, p in enumerate(pads):
    ids[row, :p], mask[row, :p] = 0, 0
  return ids, mask, rng.integers(3, 64, (B, A)).astype(np.int32)


def _prompt_cache(lm: CausalLM, ids, mask, extra_slots: int = 0) -> KVCache:
  """The cache of the prompt's first T - 1 tokens. Rows whose prefix is all padding are not left-padded prompts
  for prefill_prompt, so they take the jitted prefill it wraps (the prefill generate's transformed start runs)."""
  if mask[:, -2].all():
    return prefill_prompt(lm, input_ids=ids[:, :-1], attention_mask=mask[:, :-1], extra_slots=extra_slots)[1]
  return _prefill_prompt(lm.params, lm.config, jnp.asarray(ids[:, :-1]), None, jnp.asarray(mask[:, :-1]),
                         length=T - 1 + extra_slots, attention_impl=None)[1]


@functools.partial(jax.jit, static_argnames=("config", "output_hidden", "remat"))
def _chunk(params, config, cache, chunk, output_hidden=False, remat=False):
  return forward_with_cache(params, config, cache, input_ids=chunk, output_hidden=output_hidden, remat=remat)


def _chunk_ids(ids, answers) -> np.ndarray:
  return np.concatenate([ids[:, -1:], answers], axis=1)


@pytest.mark.parametrize("kind", list(KINDS))
def test_chunk_on_the_prompt_cache_is_the_full_forward(kind):
  """Logits and final hidden states of [last prompt token, answers] on the cache of the first T - 1 prompt tokens
  equal the plain forward of prompt + answers at those positions; spare empty slots after the prompt change
  nothing."""
  lm = _lm(kind)
  ids, mask, answers = _batch(PADS)
  full = forward(lm.params, lm.config, input_ids=jnp.asarray(np.concatenate([ids, answers], 1)),
                 attention_mask=jnp.asarray(np.concatenate([mask, np.ones_like(answers)], 1)))
  out = _chunk(lm.params, lm.config, _prompt_cache(lm, ids, mask), _chunk_ids(ids, answers), output_hidden=True)
  assert out.logits.shape == (B, A + 1, 64) and out.logits.dtype == jnp.float32
  np.testing.assert_allclose(out.logits, full.logits[:, T - 1:], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(out.hidden, full.hidden_states[-1, :, T - 1:], atol=1e-5, rtol=1e-5)
  spare = _chunk(lm.params, lm.config, _prompt_cache(lm, ids, mask, extra_slots=3), _chunk_ids(ids, answers))
  np.testing.assert_allclose(spare.logits, full.logits[:, T - 1:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_first_logits_are_generates_and_greedy_tokens_reproduce(kind):
  """With a lone-token row too: the chunk's first logits are those generate's transformed start picks its first
  token from (the last prompt token run on the T - 1 cache), and teacher-forcing generate's greedy tokens
  (identity cache_transform) gives back the same tokens as argmaxes."""
  lm = _lm(kind)
  ids, mask, _ = _batch(LONE_PADS, seed=1)
  new = generate(lm, input_ids=ids, attention_mask=mask, max_new_tokens=A + 1, eos_token_id=-1, pad_token_id=0,
                 cache_transform=lambda cache: cache)
  tokens = np.asarray(new.tokens)
  cache = _prompt_cache(lm, ids, mask, extra_slots=A + 1)  # generate's layout: prompt + max_new_tokens slots
  embeds = jnp.take(lm.params["embed"], jnp.asarray(ids[:, -1:]), axis=0)
  positions = jnp.asarray(np.maximum(mask.cumsum(1) - 1, 0)[:, -1:])
  first, _ = jax.jit(_extend, static_argnames=("config", "attention_impl"))(
      lm.params, lm.config, cache, embeds, jnp.asarray(mask[:, -1:]), positions, attention_impl=None)
  out = _chunk(lm.params, lm.config, _prompt_cache(lm, ids, mask), _chunk_ids(ids, tokens[:, :A]))
  np.testing.assert_allclose(out.logits[:, 0], first, atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(np.argmax(out.logits, -1), tokens)


def _loss(k, v, cache, lm, chunk, weights):
  out = forward_with_cache(lm.params, lm.config, KVCache(k=k, v=v, valid=cache.valid,
                                                         next_position=cache.next_position, index=cache.index),
                           input_ids=chunk)
  return jnp.sum(out.logits * weights)


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_gradients_reach_the_cache_but_not_its_padding(kind):
  """d(logits)/d(cache k, v): finite, non-zero at every layer's valid slots, exactly zero at padding slots; the
  same with remat."""
  lm = _lm(kind)
  ids, mask, answers = _batch(PADS)
  cache, chunk = _prompt_cache(lm, ids, mask), jnp.asarray(_chunk_ids(ids, answers))
  weights = jax.random.normal(jax.random.key(0), (B, A + 1, 64))
  grad = jax.jit(jax.grad(_loss, argnums=(0, 1)), static_argnames="lm")
  gk, gv = grad(cache.k, cache.v, cache, lm, chunk, weights)
  valid = np.asarray(cache.valid)
  for g in (gk, gv):
    g = np.asarray(g)
    assert np.isfinite(g).all()
    assert (np.abs(g).sum(axis=(3, 4))[:, valid] > 0).all()  # every layer, every valid slot
    assert (g[:, ~valid] == 0).all()
  loss_remat = jax.jit(lambda k, v: jnp.sum(forward_with_cache(
      lm.params, lm.config, KVCache(k=k, v=v, valid=cache.valid, next_position=cache.next_position,
                                    index=cache.index), input_ids=chunk, remat=True).logits * weights))
  gk_remat, _ = jax.grad(loss_remat, argnums=(0, 1))(cache.k, cache.v)
  np.testing.assert_allclose(gk_remat, gk, atol=1e-6, rtol=1e-5)


def test_the_cache_is_read_and_its_padding_is_not():
  """Scaling one layer's values changes the logits; garbage at the padding slots changes nothing."""
  lm = _lm("llama")
  ids, mask, answers = _batch(PADS)
  cache, chunk = _prompt_cache(lm, ids, mask), _chunk_ids(ids, answers)
  base = np.asarray(_chunk(lm.params, lm.config, cache, chunk).logits)
  scaled = KVCache(k=cache.k, v=cache.v.at[1].multiply(2.0), valid=cache.valid, next_position=cache.next_position,
                   index=cache.index)
  changed = np.asarray(_chunk(lm.params, lm.config, scaled, chunk).logits)
  assert (np.abs(changed - base).max(axis=-1) > 1e-3).all()  # every row, every chunk token
  pad = ~cache.valid[None, :, :, None, None]
  garbage = KVCache(k=jnp.where(pad, 1e3, cache.k), v=jnp.where(pad, -1e3, cache.v), valid=cache.valid,
                    next_position=cache.next_position, index=cache.index)
  np.testing.assert_allclose(_chunk(lm.params, lm.config, garbage, chunk).logits, base, atol=1e-6, rtol=0)


def test_gradients_reach_a_fuser_through_the_cache():
  """A kv_fusion Fuser rewriting the target's prompt cache (soft gate) gets gradients from the chunk's loss."""
  lm = _lm("llama")
  ids, mask, answers = _batch(PADS)
  cache, chunk = _prompt_cache(lm, ids, mask), jnp.asarray(_chunk_ids(ids, answers))
  layer_map = [None, 0]
  fusers = fuser.make_fusers(layer_map, lm.config, lm.config, hidden_size=16, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(fusers)

  @jax.jit
  def loss(state):
    fused = fuser.fuse_kv_cache(nnx.merge(graphdef, state), layer_map, cache, cache, hard=False)
    out = forward_with_cache(lm.params, lm.config, fused, input_ids=chunk)
    return -jnp.mean(jax.nn.log_softmax(out.logits[:, :-1])[..., 3])

  grads = jax.tree.leaves(jax.grad(loss)(state))
  assert all(np.isfinite(g).all() for g in grads)
  assert all(np.abs(g).max() > 0 for g in grads)


def test_bad_inputs_raise():
  lm = _lm("llama")
  ids, mask, answers = _batch(PADS)
  cache, chunk = _prompt_cache(lm, ids, mask), jnp.asarray(_chunk_ids(ids, answers))
  with pytest.raises(ValueError, match="cache k and v"):
    forward_with_cache(lm.params, lm.config, cache, input_ids=chunk[:2])
  with pytest.raises(ValueError, match="chunk_mask"):
    forward_with_cache(lm.params, lm.config, cache, input_ids=chunk, chunk_mask=jnp.ones((B, 2)))
  with pytest.raises(ValueError, match="attention_impl"):
    forward_with_cache(lm.params, lm.config, cache, input_ids=chunk, attention_impl="flash")
  with pytest.raises(ValueError, match="exactly one"):
    forward_with_cache(lm.params, lm.config, cache)
