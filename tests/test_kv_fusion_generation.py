"""Generation with a fused KV cache: generate's cache_transform (the first token reads the transformed cache; no
transform is the plain path), the source's prefill cache and its alignment, and fused_generate's gate-0 identity."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from interlingua_jax.bridges.kv_fusion import alignment, fuser, generation
import kv_lms
from interlingua_jax.models import embed, generate
from interlingua_jax.models.generate import (_start_transformed, decode_step, init_cache, prefill,
                                             prefill_prompt)

B, T, S, NEW = 4, 8, 10, 6
KW = dict(max_new_tokens=NEW, eos_token_id=2, pad_token_id=0)
TARGET_PADS = (0, 2, 7, 4)  # row 2 has one real token: its first T - 1 slots are all padding
SOURCE_PADS = (1, 0, 6, 5)


@pytest.fixture(scope="module")
def lms():
  return kv_lms.target_and_source()


def _token_index(target_mask, source_mask, seed: int = 0) -> list[np.ndarray]:
  """Per row, a monotone target-token -> source-token map (what token_alignment gives), its first entry -1."""
  rng = np.random.default_rng(seed)
  rows = []
  for t, s in zip(target_mask.sum(1), source_mask.sum(1)):
    row = np.sort(rng.integers(0, s, t)).astype(np.int32)
    row[0] = -1
    rows.append(row)
  return rows


def _fusers(target, source, **kwargs):
  layer_map = alignment.terminal_layer_map(source.config.num_layers, target.config.num_layers)
  return fuser.make_fusers(layer_map, source.config, target.config, hidden_size=32, rngs=nnx.Rngs(0),
                           **kwargs), layer_map


def _tokens(out) -> np.ndarray:
  return np.asarray(out.tokens)


def test_no_transform_is_the_plain_path(lms):
  """Without a transform generate runs _start (never _start_transformed) and gives the tokens of a greedy loop
  over the public prefill and decode_step."""
  target, _ = lms
  ids, mask = kv_lms.left_padded(64, T, TARGET_PADS, seed=0)
  compiled = _start_transformed._cache_size()
  out = generate(target, input_ids=ids, attention_mask=mask, **KW)
  assert _start_transformed._cache_size() == compiled, "the plain path went through the transformed start"
  np.testing.assert_array_equal(_tokens(out), _tokens(generate(target, input_ids=ids, attention_mask=mask, **KW)))
  cache = init_cache(target.config, B, T + NEW, jnp.float32)
  logits, cache = prefill(target.params, target.config, cache, embed(target.params, target.config, jnp.asarray(ids)),
                          jnp.asarray(mask))
  done, tokens = np.zeros(B, bool), []
  for _ in range(NEW):
    token = np.where(done, 0, np.asarray(jnp.argmax(logits, -1))).astype(np.int32)
    done |= token == 2
    tokens.append(token)
    logits, cache = decode_step(target.params, target.config, cache, jnp.asarray(token))
  np.testing.assert_array_equal(_tokens(out), np.stack(tokens, 1))


@pytest.mark.parametrize("variant", ["function_embeddings", "partial_ids_penalties"])
def test_identity_transform_gives_the_same_tokens(lms, variant):
  """A plain function on an embedding prompt; a Partial on an id prompt with both logits processors on (they
  read the prompt ids, which the transformed start must keep)."""
  target, _ = lms
  ids, mask = kv_lms.left_padded(64, T, TARGET_PADS, seed=1)
  if variant == "function_embeddings":
    identity, kw = (lambda cache: cache), KW
    prompt = dict(inputs_embeds=np.asarray(embed(target.params, target.config, jnp.asarray(ids))))
  else:
    identity = jax.tree_util.Partial(lambda scale, cache: dataclasses.replace(cache, k=cache.k * scale),
                                     jnp.float32(1.0))
    ids[:, -3:] = ids[0, -3:]  # repeated material for both processors to act on
    prompt, kw = dict(input_ids=ids), dict(KW, repetition_penalty=1.3, no_repeat_ngram_size=2)
    assert not np.array_equal(_tokens(generate(target, attention_mask=mask, **prompt, **KW)),
                              _tokens(generate(target, attention_mask=mask, **prompt, **kw))), "processors idle"
  plain = generate(target, attention_mask=mask, **prompt, **kw)
  same = generate(target, attention_mask=mask, cache_transform=identity, **prompt, **kw)
  np.testing.assert_array_equal(_tokens(same), _tokens(plain))
  np.testing.assert_array_equal(np.asarray(same.lengths), np.asarray(plain.lengths))


def test_identity_transform_keeps_the_stop_checks(lms):
  """The host-side stop predicate works after a transformed start: same tokens, lengths and steps."""
  target, _ = lms
  ids, mask = kv_lms.left_padded(64, T, TARGET_PADS, seed=2)
  free = _tokens(generate(target, input_ids=ids, attention_mask=mask, **KW))
  stop_token = int(free[0, 1])
  stop = lambda generated: (generated == stop_token).any(axis=1)
  runs = [generate(target, input_ids=ids, attention_mask=mask, stop=stop, stop_check_every=2, cache_transform=t,
                   **KW) for t in (None, lambda cache: cache)]
  assert int(runs[0].lengths[0]) < NEW, "the stop never fired"
  for field in ("tokens", "lengths", "steps"):
    np.testing.assert_array_equal(np.asarray(getattr(runs[1], field)), np.asarray(getattr(runs[0], field)))


def _swap_kv(other, cache):
  return dataclasses.replace(cache, k=other.k, v=other.v)


def test_the_first_token_reads_the_transformed_cache(lms):
  """A transform that swaps in the cache of another prompt (same padding, same last token) makes generate follow
  that prompt from the very first token: the transform runs before the first token is chosen, and that token
  is computed on the transformed cache."""
  target, _ = lms
  pads = (0, 2, 6, 4)  # every row has >= 2 real tokens, so the other prompt's first T - 1 tokens can be prefilled
  ids, mask = kv_lms.left_padded(64, T, pads, seed=3)
  other, _ = kv_lms.left_padded(64, T, pads, seed=4)
  other[:, -1] = ids[:, -1]
  plain, wanted = (_tokens(generate(target, input_ids=x, attention_mask=mask, **KW)) for x in (ids, other))
  assert (plain[:, 0] != wanted[:, 0]).any(), "the two prompts must start differently for the test to tell"
  _, other_cache = prefill_prompt(target, input_ids=other[:, :-1], attention_mask=mask[:, :-1], extra_slots=1 + NEW)
  swapped = generate(target, input_ids=ids, attention_mask=mask,
                     cache_transform=jax.tree_util.Partial(_swap_kv, other_cache), **KW)
  np.testing.assert_array_equal(_tokens(swapped), wanted)


def test_a_pytree_transform_is_traced_not_baked_in(lms):
  """Partial's arrays and a FusedCacheTransform's weights and source cache are inputs of the program: new values
  of the same shapes reuse the compiled start."""
  target, source = lms
  ids, mask, sids, smask, index = _two_tokenizations()
  fusers, layer_map = _fusers(target, source, gate_init=1.0, output_init_scale=3.0)
  zeros = init_cache(target.config, B, T + NEW, jnp.float32)
  fused = dict(target_ids=ids, target_mask=mask, source_mask=smask, alignment_index=index, **KW)
  generate(target, input_ids=ids, attention_mask=mask, cache_transform=jax.tree_util.Partial(_swap_kv, zeros), **KW)
  generation.fused_generate(target, source, fusers, layer_map, source_ids=sids, **fused)
  compiled = _start_transformed._cache_size()
  generate(target, input_ids=ids, attention_mask=mask, cache_transform=jax.tree_util.Partial(
      _swap_kv, dataclasses.replace(zeros, k=zeros.k + 1)), **KW)
  other_fusers, _ = _fusers(target, source, gate_init=2.0, output_init_scale=1.0)
  generation.fused_generate(target, source, other_fusers, layer_map, source_ids=sids[:, ::-1].copy(), **fused)
  assert _start_transformed._cache_size() == compiled


def test_bad_transforms_raise(lms):
  target, _ = lms
  ids, mask = kv_lms.left_padded(64, T, TARGET_PADS, seed=0)
  with pytest.raises(ValueError, match="changed the cache's k"):
    generate(target, input_ids=ids, attention_mask=mask, cache_transform=lambda c: dataclasses.replace(
        c, k=c.k[:, :, 1:]), **KW)
  with pytest.raises(ValueError, match="must return a KVCache"):
    generate(target, input_ids=ids, attention_mask=mask, cache_transform=lambda c: (c.k, c.v), **KW)
  with pytest.raises(ValueError, match="must be callable"):
    generate(target, input_ids=ids, attention_mask=mask, cache_transform=3, **KW)


def _two_tokenizations():
  """Target prompts (T slots) and source prompts of another tokenizer (S slots), with their slot alignment."""
  ids, mask = kv_lms.left_padded(64, T, TARGET_PADS, seed=7)
  sids, smask = kv_lms.left_padded(80, S, SOURCE_PADS, seed=8)
  return ids, mask, sids, smask, generation.slot_alignment(_token_index(mask, smask), mask, smask)


@pytest.mark.parametrize("closed", ["gates_off", "hard_closed"])
def test_closed_gates_are_the_target_alone(lms, closed):
  """Gate 0 equals the target alone: gates switched off (open gates, large corrections) or every hard gate
  closed give the plain target's tokens exactly, through the same fused path."""
  target, source = lms
  ids, mask, sids, smask, index = _two_tokenizations()
  gate_init = 2.0 if closed == "gates_off" else -1.0
  fusers, layer_map = _fusers(target, source, gate_init=gate_init, output_init_scale=3.0)
  fused = generation.fused_generate(target, source, fusers, layer_map, target_ids=ids, target_mask=mask,
                                    source_ids=sids, source_mask=smask, alignment_index=index,
                                    gates_off=closed == "gates_off", **KW)
  np.testing.assert_array_equal(_tokens(fused), _tokens(generate(target, input_ids=ids, attention_mask=mask, **KW)))


def _first_logits(target, ids, mask, transform) -> np.ndarray:
  """The first token's logits by hand: prefill T - 1 tokens, transform, feed the last prompt token (rows need
  >= 2 real tokens, so the cache's next_position is the last token's position)."""
  cache = init_cache(target.config, B, T + NEW, jnp.float32)
  embeds = embed(target.params, target.config, jnp.asarray(ids))
  _, cache = prefill(target.params, target.config, cache, embeds[:, :-1], jnp.asarray(mask[:, :-1]))
  logits, _ = decode_step(target.params, target.config, transform(cache), jnp.asarray(ids[:, -1]))
  return np.asarray(logits)


def test_open_gates_change_the_first_token(lms):
  """Open gates with non-trivial fusers: the fused cache moves the first token's logits (of every row with a
  fused slot; a row whose only prefix token reads no source token keeps them exactly), generate picks the first
  token from those fused logits, and some row's first token changes."""
  target, source = lms
  pads = (0, 2, 6, 4)
  ids, mask = kv_lms.left_padded(64, T, pads, seed=9)
  sids, smask = kv_lms.left_padded(80, S, SOURCE_PADS, seed=10)
  index = generation.slot_alignment(_token_index(mask, smask, seed=1), mask, smask)
  fusers, layer_map = _fusers(target, source, gate_init=1.0, output_init_scale=3.0)
  kw = dict(target_ids=ids, target_mask=mask, source_ids=sids, source_mask=smask, alignment_index=index)
  transform = generation.fused_cache_transform(source, fusers, layer_map, **kw)
  fused_logits = _first_logits(target, ids, mask, transform)
  plain_logits = _first_logits(target, ids, mask, lambda cache: cache)
  plain_prefill, _ = prefill_prompt(target, input_ids=ids, attention_mask=mask)
  np.testing.assert_allclose(plain_logits, np.asarray(plain_prefill), atol=1e-4)  # the split itself changes nothing
  fused_rows = np.asarray(transform.source.valid)[:, :T - 1].any(1) & mask[:, :T - 1].any(1)
  assert fused_rows.sum() == 3  # row 2's one prefix token reads -1
  assert (np.abs(fused_logits - plain_logits)[fused_rows].max(axis=1) > 0.05).all()
  np.testing.assert_array_equal(fused_logits[~fused_rows], plain_logits[~fused_rows])
  fused = _tokens(generation.fused_generate(target, source, fusers, layer_map, **kw, **KW))
  plain = _tokens(generate(target, input_ids=ids, attention_mask=mask, **KW))
  np.testing.assert_array_equal(fused[:, 0], fused_logits.argmax(1))
  assert (fused[:, 0] != plain[:, 0]).any()


def test_source_prefill_cache(lms):
  """The source's prefill cache: (L_src, B, S, K_src, D_src), its slots and positions, and the model's own
  keys and values (its logits and a decode step from it match a full forward pass)."""
  _, source = lms
  sids, smask = kv_lms.left_padded(80, S, SOURCE_PADS, seed=11)
  logits, cache = prefill_prompt(source, input_ids=sids, attention_mask=smask)
  assert cache.k.shape == cache.v.shape == (2, B, S, 3, 16)
  np.testing.assert_array_equal(np.asarray(cache.valid), smask.astype(bool))
  np.testing.assert_array_equal(np.asarray(cache.next_position), smask.sum(1))
  assert int(cache.index) == S
  forward = np.asarray(source(input_ids=jnp.asarray(sids), attention_mask=jnp.asarray(smask)).logits)
  np.testing.assert_allclose(np.asarray(logits), forward[:, -1], atol=1e-4)
  _, roomy = prefill_prompt(source, input_ids=sids, attention_mask=smask, extra_slots=1)
  assert roomy.k.shape[2] == S + 1
  token = np.full((B,), 5, np.int32)
  step, _ = decode_step(source.params, source.config, roomy, jnp.asarray(token))
  longer = np.concatenate([sids, token[:, None]], 1), np.concatenate([smask, np.ones((B, 1), smask.dtype)], 1)
  forward = np.asarray(source(input_ids=jnp.asarray(longer[0]), attention_mask=jnp.asarray(longer[1])).logits)
  np.testing.assert_allclose(np.asarray(step), forward[:, -1], atol=1e-4)
  with pytest.raises(ValueError, match="left-padded"):
    prefill_prompt(source, input_ids=sids, attention_mask=smask[:, ::-1])


def test_source_alignment_gather(lms):
  """slot_alignment shifts each row's token map by both paddings; align_source_cache gathers every source layer
  at the target's slots, invalid where a target slot reads no source token or a padded one."""
  _, source = lms
  ids, mask, sids, smask, _ = _two_tokenizations()
  tokens = _token_index(mask, smask)
  index = generation.slot_alignment(tokens, mask, smask)
  assert index.shape == (B, T)
  for b in range(B):
    pad_t, pad_s = T - mask[b].sum(), S - smask[b].sum()
    assert (index[b, :pad_t] == -1).all()
    np.testing.assert_array_equal(index[b, pad_t:], np.where(tokens[b] >= 0, tokens[b] + pad_s, -1))
  _, cache = prefill_prompt(source, input_ids=sids, attention_mask=smask)
  aligned = generation.align_source_cache(cache, index)
  assert aligned.k.shape == aligned.v.shape == (2, B, T, 3, 16) and aligned.valid.shape == (B, T)
  k, v, valid = (np.asarray(x) for x in (cache.k, cache.v, cache.valid))
  for b in range(B):
    for j in range(T):
      s = index[b, j]
      expect_k, expect_v = (k[:, b, s], v[:, b, s]) if s >= 0 else (np.zeros_like(k[:, b, 0]),) * 2
      np.testing.assert_array_equal(np.asarray(aligned.k[:, b, j]), expect_k)
      np.testing.assert_array_equal(np.asarray(aligned.v[:, b, j]), expect_v)
      assert bool(aligned.valid[b, j]) == (s >= 0 and bool(valid[b, s]))
  # One tokenization, no index: slot j reads slot j.
  transform = generation.fused_cache_transform(source, *_fusers(lms[0], source), target_ids=sids,
                                               target_mask=smask, source_ids=sids, source_mask=smask)
  np.testing.assert_array_equal(np.asarray(transform.source.valid), valid)
  np.testing.assert_array_equal(np.asarray(transform.source.k)[:, valid], k[:, valid])
  assert not np.asarray(transform.source.k)[:, ~valid].any()  # padding reads nothing
  with pytest.raises(ValueError, match="needs one tokenization"):
    generation.fused_cache_transform(source, *_fusers(lms[0], source), target_ids=ids, target_mask=mask,
                                     source_ids=sids, source_mask=smask)
  with pytest.raises(ValueError, match=r"token_index\[0\] must be"):
    generation.slot_alignment([t[1:] for t in tokens], mask, smask)
