"""Greedy KV-cache generation equals transformers' `generate(do_sample=False)` token for token."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from conftest import save_tiny_hf_model
from transformers import AutoModelForCausalLM

from interlingua_jax import models
from interlingua_jax.models.generate import _advance, _start, decode_step, init_cache, prefill

MAX_NEW = 16


@pytest.fixture(scope="module")
def checkpoint(tiny_llama_dir, tiny_mistral_dir, tmp_path_factory, tiny_tokenizer):
  """The directory of a tiny HF checkpoint per kind; "mistral_window" has a window shorter than prompt + answer."""
  built = {"llama": tiny_llama_dir, "mistral": tiny_mistral_dir}
  extra = {"mistral_window": ("mistral", dict(seed=3, sliding_window=7)), "qwen2": ("qwen2", dict(seed=4)),
           "qwen3": ("qwen3", dict(seed=5))}

  def make(kind):
    if kind not in built:
      model_type, kwargs = extra[kind]
      built[kind] = str(tmp_path_factory.mktemp(kind))
      save_tiny_hf_model(built[kind], model_type, tiny_tokenizer, **kwargs)
    return built[kind]

  return make


@pytest.fixture(scope="module")
def pair(checkpoint):
  """(hf_model, jax_model) per kind, built once."""
  cache = {}

  def make(kind):
    if kind not in cache:
      path = checkpoint(kind)
      cache[kind] = (AutoModelForCausalLM.from_pretrained(path).eval(), models.from_pretrained(path, dtype=jnp.float32)[0])
    return cache[kind]

  return make


def prompts(vocab, seed=0, batch=3, seq=10, pads=(0, 3, 6)):
  rng = np.random.RandomState(seed)
  ids = rng.randint(3, vocab, size=(batch, seq))
  mask = np.ones_like(ids)
  for row, p in enumerate(pads):
    ids[row, :p], mask[row, :p] = 0, 0
  return ids, mask


def hf_generate(hf, max_new=MAX_NEW, eos=2, **kwargs):
  kwargs = {k: torch.tensor(v) for k, v in kwargs.items() if isinstance(v, np.ndarray)} | {
      k: v for k, v in kwargs.items() if not isinstance(v, np.ndarray)}
  with torch.no_grad():
    out = hf.generate(max_new_tokens=max_new, do_sample=False, eos_token_id=eos, pad_token_id=0, **kwargs).numpy()
  return out[:, kwargs["input_ids"].shape[1]:] if "input_ids" in kwargs else out


def padded_to(ref, width, pad=0):
  """HF stops when all rows end; our output always has max_new_tokens columns."""
  return np.pad(ref, ((0, 0), (0, width - ref.shape[1])), constant_values=pad)


@pytest.mark.parametrize("kind", ["llama", "mistral", "mistral_window", "qwen2", "qwen3"])
def test_greedy_left_padded_matches_hf(pair, kind):
  hf, model = pair(kind)
  ids, mask = prompts(model.config.vocab_size)
  ref = hf_generate(hf, input_ids=ids, attention_mask=mask)
  out = models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, eos_token_id=2,
                        pad_token_id=0)
  assert out.tokens.shape == (3, MAX_NEW) and out.tokens.dtype == jnp.int32
  np.testing.assert_array_equal(np.asarray(out.tokens), padded_to(ref, MAX_NEW))


@pytest.mark.parametrize("kind", ["llama", "mistral_window"])
def test_soft_prefix_embeddings_match_hf_inputs_embeds(pair, kind):
  """A prompt given as embeddings (random soft tokens followed by embedded text) matches HF inputs_embeds."""
  hf, model = pair(kind)
  ids, mask = prompts(model.config.vocab_size, seed=1)
  embeds = np.array(models.embed(model.params, model.config, jnp.asarray(ids)))
  embeds[:, 6:9] = np.random.RandomState(2).randn(3, 3, model.config.hidden_size).astype(np.float32)
  ref = hf_generate(hf, inputs_embeds=embeds, attention_mask=mask)
  out = models.generate(model, inputs_embeds=embeds, attention_mask=mask, max_new_tokens=MAX_NEW, eos_token_id=2,
                        pad_token_id=0)
  np.testing.assert_array_equal(np.asarray(out.tokens), padded_to(ref, MAX_NEW))


@pytest.mark.parametrize("penalty,ngram", [(1.3, 0), (1.0, 2), (1.2, 3)])
def test_repetition_penalty_and_no_repeat_ngram_match_hf(pair, penalty, ngram):
  hf, model = pair("llama")
  ids, mask = prompts(model.config.vocab_size, seed=3)
  ids[:, -4:] = ids[0, -4:]  # repeated material so both processors have something to act on
  ref = hf_generate(hf, input_ids=ids, attention_mask=mask, repetition_penalty=penalty, no_repeat_ngram_size=ngram)
  out = models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, eos_token_id=2,
                        pad_token_id=0, repetition_penalty=penalty, no_repeat_ngram_size=ngram)
  np.testing.assert_array_equal(np.asarray(out.tokens), padded_to(ref, MAX_NEW))
  plain = models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, eos_token_id=2,
                          pad_token_id=0)
  assert not np.array_equal(np.asarray(plain.tokens), np.asarray(out.tokens)), "the processor changed nothing"


def test_eos_stops_rows_and_pads_after(pair):
  """Pick as EOS a token the greedy run emits early in one row: that row ends there, the others go on."""
  hf, model = pair("mistral")
  ids, mask = prompts(model.config.vocab_size, seed=4)
  free = np.asarray(models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW,
                                    eos_token_id=2, pad_token_id=0).tokens)
  eos = int(free[1, 3])
  out = models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, eos_token_id=eos,
                        pad_token_id=0)
  tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
  first = np.argmax(free[1] == eos)
  assert lengths[1] == first + 1 and tokens[1, first] == eos and (tokens[1, first + 1:] == 0).all()
  for row in range(3):
    hit = np.flatnonzero(free[row] == eos)
    assert lengths[row] == (hit[0] + 1 if hit.size else MAX_NEW)
  np.testing.assert_array_equal(tokens, padded_to(hf_generate(hf, eos=eos, input_ids=ids, attention_mask=mask),
                                                  MAX_NEW))


def test_logprob_is_the_models_own_over_the_generated_tokens(pair):
  """The summed log-probability equals transformers' raw logits (before the repetition penalty) at the greedy
  tokens, up to each row's EOS: nothing after a row ended counts."""
  hf, model = pair("mistral")
  ids, mask = prompts(model.config.vocab_size, seed=4)
  free = np.asarray(models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW,
                                    eos_token_id=2, pad_token_id=0).tokens)
  eos = int(free[1, 3])  # a token the rows emit early
  out = models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, eos_token_id=eos,
                        pad_token_id=0, repetition_penalty=1.3)
  with torch.no_grad():
    ref = hf.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=MAX_NEW,
                      do_sample=False, eos_token_id=eos, pad_token_id=0, repetition_penalty=1.3,
                      output_logits=True, return_dict_in_generate=True)
  tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
  raw = torch.log_softmax(torch.stack(ref.logits, 1).float(), -1).numpy()  # (B, steps, V), unprocessed
  expected = [raw[row, np.arange(n), tokens[row, :n]].sum() for row, n in enumerate(lengths)]
  assert lengths.min() < MAX_NEW, "no row ended early: the masking after EOS went untested"
  np.testing.assert_allclose(np.asarray(out.logprob), expected, rtol=1e-5, atol=1e-4)


def test_cached_decoding_equals_full_forward(pair):
  """prefill + decode_step logits equal a full forward over the same (left-padded) sequence."""
  _, model = pair("mistral_window")
  ids, mask = prompts(model.config.vocab_size, seed=5, seq=12, pads=(0, 2, 5))
  steps = 6
  cache = init_cache(model.config, 3, ids.shape[1] + steps, jnp.float32)
  embeds = models.embed(model.params, model.config, jnp.asarray(ids))
  logits, cache = prefill(model.params, model.config, cache, embeds, jnp.asarray(mask))
  fed, step_logits = [], [np.asarray(logits)]
  for _ in range(steps):
    token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    fed.append(np.asarray(token))
    logits, cache = decode_step(model.params, model.config, cache, token)
    step_logits.append(np.asarray(logits))
  full_ids = np.concatenate([ids, np.stack(fed, 1)], axis=1)
  full_mask = np.concatenate([mask, np.ones((3, steps), mask.dtype)], axis=1)
  ref = np.asarray(model(input_ids=jnp.asarray(full_ids), attention_mask=jnp.asarray(full_mask)).logits)
  ref = ref[:, ids.shape[1] - 1:]
  got = np.stack(step_logits, 1)
  assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-5


def test_same_bucket_shape_does_not_recompile(pair):
  _, model = pair("llama")
  kwargs = dict(max_new_tokens=4, eos_token_id=2, pad_token_id=0)
  ids, mask = prompts(model.config.vocab_size, seed=6)
  models.generate(model, input_ids=ids, attention_mask=mask, **kwargs)
  compiled = _start._cache_size(), _advance._cache_size()
  ids2, mask2 = prompts(model.config.vocab_size, seed=7, pads=(4, 0, 1))
  models.generate(model, input_ids=ids2, attention_mask=mask2, **kwargs)
  assert (_start._cache_size(), _advance._cache_size()) == compiled


def test_bad_generate_inputs_raise_clearly(pair):
  _, model = pair("llama")
  ids, mask = prompts(model.config.vocab_size)
  with pytest.raises(ValueError, match="left-padded"):
    models.generate(model, input_ids=ids, attention_mask=mask[:, ::-1], max_new_tokens=2)
  with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
    models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=0)
  with pytest.raises(ValueError, match="needs input_ids"):
    models.generate(model, max_new_tokens=2)
  with pytest.raises(ValueError, match="repetition_penalty must be > 0"):
    models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=2, repetition_penalty=0.0)


def test_generate_on_a_model_sharded_over_four_devices(tiny_llama_dir, pair):
  """Data- and tensor-parallel decoding gives the single-device tokens."""
  from interlingua_jax.models import sharding
  _, single = pair("llama")
  mesh = sharding.make_mesh(data=2, model=2)
  sharded, _ = models.from_pretrained(tiny_llama_dir, dtype=jnp.float32, mesh=mesh)
  ids, mask = prompts(single.config.vocab_size, seed=8, batch=4, pads=(0, 3, 6, 1))
  kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=8, eos_token_id=2, pad_token_id=0)
  np.testing.assert_array_equal(np.asarray(models.generate(sharded, **kwargs).tokens),
                                np.asarray(models.generate(single, **kwargs).tokens))
  assert jax.device_count() == 4
