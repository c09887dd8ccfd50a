"""Parity of the JAX decoder with transformers' PyTorch forward on tiny random Llama/Mistral/Qwen2/Qwen3 models."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.sharding import PartitionSpec as P
from conftest import save_tiny_hf_model

from interlingua_jax import models
from interlingua_jax.models import rope
from interlingua_jax.models.config import CheckpointError, DecoderConfig
from interlingua_jax.models.families import FAMILIES

TOL = 1e-4  # max|Δlogits| / max|ref|
QWEN2_SMALL = {"tie_word_embeddings": True, "vocab_size": 421}  # as Qwen2.5-0.5B: tied, vocab > tokenizer


@pytest.fixture(scope="module")
def build(tmp_path_factory, tiny_tokenizer):
  """(hf_model, jax_model) for a model type and config overrides, built once per module."""
  cache = {}

  def make(model_type, **overrides):
    key = (model_type, tuple(sorted(overrides.items())))
    if key not in cache:
      path = tmp_path_factory.mktemp(model_type)
      hf = save_tiny_hf_model(path, model_type, tiny_tokenizer, seed=len(cache), **overrides)
      model, _ = models.from_pretrained(str(path), dtype=jnp.float32)
      cache[key] = (hf, model)
    return cache[key]

  return make


def left_padded_batch(vocab, batch=3, seq=24, pads=(0, 5, 11), seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(3, vocab, size=(batch, seq))
  mask = np.ones((batch, seq), np.int64)
  for row, p in enumerate(pads):
    ids[row, :p], mask[row, :p] = 0, 0
  return ids, mask


def hf_forward(hf, ids, mask):
  positions = np.maximum(mask.cumsum(-1) - 1, 0)
  with torch.no_grad():
    out = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(positions),
             output_hidden_states=True)
  return out.logits.numpy(), [h.numpy() for h in out.hidden_states]


def rel_err(ref, got, mask):
  real = mask.astype(bool)
  return float(np.abs(ref[real] - np.asarray(got)[real]).max() / np.abs(ref[real]).max())


@pytest.mark.parametrize("model_type,overrides", [
    ("llama", {}), ("mistral", {}), ("qwen3", {}),
    ("qwen2", QWEN2_SMALL),
])
def test_left_padded_batch_matches_torch(build, tiny_tokenizer, model_type, overrides):  # (a), (d): GQA 4:2
  hf, model = build(model_type, **overrides)
  assert model.config.vocab_size == overrides.get("vocab_size", len(tiny_tokenizer)) >= len(tiny_tokenizer)
  assert model.config.num_heads // model.config.num_kv_heads == 2
  ids, mask = left_padded_batch(model.config.vocab_size)
  ref, _ = hf_forward(hf, ids, mask)
  out = model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert out.logits.dtype == jnp.float32
  assert rel_err(ref, out.logits, mask) <= TOL


def test_multi_query_attention_matches_torch(build):  # (d) with a ratio of 4
  hf, model = build("llama", num_key_value_heads=1)
  ids, mask = left_padded_batch(model.config.vocab_size, seed=1)
  ref, _ = hf_forward(hf, ids, mask)
  assert rel_err(ref, model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits, mask) <= TOL


def test_mistral_sliding_window_matches_torch(build):  # (b)
  hf, model = build("mistral", sliding_window=6)
  assert model.config.sliding_window == 6
  ids, mask = left_padded_batch(model.config.vocab_size, seq=30, pads=(0, 4, 9), seed=2)
  ref, _ = hf_forward(hf, ids, mask)
  out = model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert rel_err(ref, out.logits, mask) <= TOL
  # The window must matter at this length: the same weights without it give other logits.
  unwindowed = models.forward(model.params, dataclasses.replace(model.config, sliding_window=None),
                              input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert rel_err(ref, unwindowed.logits, mask) > 100 * TOL


def test_llama3_rope_scaling_beyond_original_context(build):  # (c)
  hf, model = build("llama")
  original = model.config.rope_scaling_dict["original_max_position_embeddings"]
  seq = 3 * original
  ids, mask = left_padded_batch(model.config.vocab_size, batch=2, seq=seq, pads=(0, 7), seed=3)
  ref, _ = hf_forward(hf, ids, mask)
  assert rel_err(ref, model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits, mask) <= TOL
  plain = dataclasses.replace(model.config, rope_scaling=None)
  assert not np.allclose(rope.inverse_frequencies(plain), rope.inverse_frequencies(model.config))


def test_llama3_inverse_frequencies_match_transformers():
  from transformers import LlamaConfig
  from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
  scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
             "original_max_position_embeddings": 8192}
  hf_config = LlamaConfig(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, rope_theta=500000.0,
                          rope_scaling=scaling, vocab_size=128256, intermediate_size=14336, num_hidden_layers=32)
  ref, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_config, "cpu")
  ours = rope.inverse_frequencies(DecoderConfig.from_hf(hf_config.to_dict()))
  np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-6, atol=0)


def test_tied_embeddings_match_torch(build):  # (e)
  hf, model = build("llama", tie_word_embeddings=True)
  assert model.config.tie_word_embeddings and "lm_head" not in model.params
  ids, mask = left_padded_batch(model.config.vocab_size, seed=4)
  ref, _ = hf_forward(hf, ids, mask)
  assert rel_err(ref, model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits, mask) <= TOL


@pytest.mark.parametrize("model_type", ["llama", "mistral"])
def test_hidden_states_match_output_hidden_states(build, model_type):  # (f)
  hf, model = build(model_type)
  ids, mask = left_padded_batch(model.config.vocab_size, seed=5)
  _, ref_hidden = hf_forward(hf, ids, mask)
  full = model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert full.hidden_states.shape[0] == len(ref_hidden) == model.config.num_layers + 1
  for ref, got in zip(ref_hidden, full.hidden_states):
    assert rel_err(ref, got, mask) <= TOL
  partial = model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask), upto_layer=1)
  assert partial.logits is None and partial.hidden_states.shape[0] == 2
  assert rel_err(ref_hidden[1], partial.hidden_states[1], mask) <= TOL


def test_inputs_embeds_equal_input_ids(build):
  _, model = build("llama")
  ids, mask = left_padded_batch(model.config.vocab_size, seed=6)
  by_ids = model(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits
  embeds = models.embed(model.params, model.config, jnp.asarray(ids))
  by_embeds = model(inputs_embeds=embeds, attention_mask=jnp.asarray(mask)).logits
  np.testing.assert_array_equal(np.asarray(by_ids), np.asarray(by_embeds))


def test_gradient_through_padded_batch_is_finite(build):
  """The translator trains through the frozen target: d(loss)/d(inputs_embeds) must be finite, also at pads."""
  _, model = build("mistral")
  ids, mask = left_padded_batch(model.config.vocab_size, seed=7)
  embeds = models.embed(model.params, model.config, jnp.asarray(ids))

  def loss(e):
    return models.forward(model.params, model.config, inputs_embeds=e, attention_mask=jnp.asarray(mask)).logits.sum()

  grad = jax.jit(jax.grad(loss))(embeds)
  assert np.isfinite(np.asarray(grad)).all() and np.abs(np.asarray(grad)[mask.astype(bool)]).max() > 0


def test_last_hidden_state_only_and_remat_give_the_same_values_and_gradients(build):
  """output_hidden_states=False and remat=True are memory options: values and gradients must not change."""
  _, model = build("mistral")
  ids, mask = left_padded_batch(model.config.vocab_size, seed=10)
  embeds = models.embed(model.params, model.config, jnp.asarray(ids))

  def last_hidden(e, **kwargs):
    out = models.forward(model.params, model.config, inputs_embeds=e, attention_mask=jnp.asarray(mask),
                         compute_logits=False, **kwargs)
    return out.hidden_states

  full = jax.jit(last_hidden)(embeds)
  slim = jax.jit(functools.partial(last_hidden, output_hidden_states=False, remat=True))(embeds)
  assert slim.shape == (1,) + full.shape[1:]
  np.testing.assert_allclose(np.asarray(slim[0]), np.asarray(full[-1]), rtol=1e-6, atol=1e-6)
  partial = models.forward(model.params, model.config, input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask),
                           upto_layer=1, output_hidden_states=False)
  np.testing.assert_allclose(np.asarray(partial.hidden_states[0]), np.asarray(full[1]), rtol=1e-6, atol=1e-6)
  probe = jax.random.normal(jax.random.key(0), full.shape[1:])  # not |h|^2, which RMSNorm makes nearly constant
  loss = lambda e, **kw: (last_hidden(e, **kw)[-1] * probe).sum()
  g_full = jax.jit(jax.grad(loss))(embeds)
  g_slim = jax.jit(jax.grad(functools.partial(loss, output_hidden_states=False, remat=True)))(embeds)
  assert np.abs(np.asarray(g_slim - g_full)).max() <= 1e-5 * np.abs(np.asarray(g_full)).max()


def test_bfloat16_weights_stay_close_to_float32(tiny_llama_dir):
  f32, _ = models.from_pretrained(tiny_llama_dir, dtype=jnp.float32)
  bf16, _ = models.from_pretrained(tiny_llama_dir, dtype="bfloat16")  # config files name dtypes as strings
  assert bf16.params["layers"]["q"].dtype == jnp.bfloat16
  ids, mask = left_padded_batch(f32.config.vocab_size, seed=8)
  ref = np.asarray(f32(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits)
  out = bf16(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert out.logits.dtype == jnp.float32
  assert rel_err(ref, out.logits, mask) < 5e-2


@pytest.mark.parametrize("model_type,overrides", [("qwen2", QWEN2_SMALL), ("qwen3", {})])
def test_save_pretrained_writes_back_the_checkpoint_it_read(build, tmp_path, model_type, overrides):
  """Ours -> HF names and layouts are exactly transformers': every tensor comes back bit for bit."""
  from safetensors.numpy import load_file
  from transformers import AutoModelForCausalLM
  hf, model = build(model_type, **overrides)
  models.save_pretrained(str(tmp_path), model.config, model.params)
  saved = load_file(str(tmp_path / "model.safetensors"))
  reference = {k: v.numpy() for k, v in hf.state_dict().items()
               if not (model.config.tie_word_embeddings and k == "lm_head.weight")}
  assert set(saved) == set(reference)
  for name, value in reference.items():
    np.testing.assert_array_equal(saved[name], value, err_msg=name)
  reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  assert type(reloaded) is type(hf)
  ids, mask = left_padded_batch(model.config.vocab_size, seed=12)
  np.testing.assert_array_equal(hf_forward(reloaded, ids, mask)[0], hf_forward(hf, ids, mask)[0])


@pytest.mark.parametrize("model_type", ["llama", "mistral"])
def test_init_params_save_pretrained_roundtrip_through_transformers(tmp_path, tiny_tokenizer, model_type):
  """A JAX-initialised model saved by save_pretrained is read by transformers with the same logits."""
  from transformers import AutoModelForCausalLM
  config = DecoderConfig(model_type=model_type, vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64,
                         num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8, rope_theta=10000.0,
                         sliding_window=5 if model_type == "mistral" else None, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=(2,), pad_token_id=0, max_position_embeddings=128)
  params = models.init_params(config, jax.random.key(0))
  models.save_pretrained(str(tmp_path), config, params, tiny_tokenizer)
  hf = AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
  ids, mask = left_padded_batch(config.vocab_size, seq=12, pads=(0, 2, 4), seed=9)
  ref, _ = hf_forward(hf, ids, mask)
  ours = models.forward(params, config, input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask))
  assert rel_err(ref, ours.logits, mask) <= TOL
  loaded, tokenizer = models.from_pretrained(str(tmp_path), dtype=jnp.float32)
  assert loaded.config == config and tokenizer.eos_token == "</s>"
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), loaded.params, params)


def test_config_reads_both_rope_layouts_and_round_trips():
  old = {"model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 500000.0,
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 8192}, "eos_token_id": [7, 8]}
  new = dict(old, rope_parameters=dict(old["rope_scaling"], rope_theta=500000.0))
  del new["rope_scaling"], new["rope_theta"]
  a, b = DecoderConfig.from_hf(old), DecoderConfig.from_hf(new)
  assert a == b and a.head_dim == 4 and a.eos_token_id == (7, 8) and a.rope_theta == 500000.0
  assert DecoderConfig.from_hf(a.to_hf()) == a


def test_qwen2_biases_shard_by_head_like_their_projections():
  """The family's extra tensors follow the partition rules (the sharded forward itself is test_sharding's)."""
  from interlingua_jax.models import sharding
  config = DecoderConfig(model_type="qwen2", vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2,
                         num_heads=4, num_kv_heads=2, head_dim=8)
  specs = jax.tree.map(lambda s: s.spec, sharding.param_shardings(config, sharding.make_mesh(data=2, model=2)))
  for name in ("q", "k", "v"):
    assert specs["layers"][f"{name}_bias"] == P(None, "model", None)
    assert specs["layers"][name] == P(None, None, "model", None)


def test_family_tensors_exist_only_where_the_family_has_them():
  shape = dict(vocab_size=10, hidden_size=8, intermediate_size=16, num_layers=1, num_heads=2, num_kv_heads=1,
               head_dim=4)
  layers = {t: set(models.param_layout(DecoderConfig(model_type=t, **shape))["layers"]) for t in FAMILIES}
  base = layers["llama"]
  assert layers["mistral"] == base
  assert layers["qwen2"] - base == {"q_bias", "k_bias", "v_bias"} and base <= layers["qwen2"]
  assert layers["qwen3"] - base == {"q_norm", "k_norm"} and base <= layers["qwen3"]


def test_qwen_configs_read_and_refused():
  qwen = {"vocab_size": 152064, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 2,
          "num_attention_heads": 16, "num_key_value_heads": 8, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
          "use_sliding_window": False, "sliding_window": 131072, "bos_token_id": 151643, "eos_token_id": 151645}
  qwen2 = DecoderConfig.from_hf(dict(qwen, model_type="qwen2"))
  assert qwen2.head_dim == 64 and qwen2.sliding_window is None  # the window is off unless use_sliding_window
  qwen3 = DecoderConfig.from_hf(dict(qwen, model_type="qwen3", head_dim=128, attention_bias=False))
  assert qwen3.head_dim == 128  # explicit, not hidden_size / heads
  for config in (qwen2, qwen3):
    assert DecoderConfig.from_hf(config.to_hf()) == config
  with pytest.raises(CheckpointError, match=r"use_sliding_window=True is not supported for model_type 'qwen2'"):
    DecoderConfig.from_hf(dict(qwen, model_type="qwen2", use_sliding_window=True))
  with pytest.raises(CheckpointError, match=r"attention_bias=True is not supported for model_type 'qwen3'"):
    DecoderConfig.from_hf(dict(qwen, model_type="qwen3", attention_bias=True))


def test_bad_forward_arguments_raise_clearly(build):
  _, model = build("llama")
  ids = jnp.ones((1, 4), jnp.int32)
  with pytest.raises(ValueError, match="exactly one of input_ids"):
    models.forward(model.params, model.config)
  with pytest.raises(ValueError, match="upto_layer must be in"):
    models.forward(model.params, model.config, input_ids=ids, upto_layer=3)
  with pytest.raises(ValueError, match="attention_mask must have shape"):
    models.forward(model.params, model.config, input_ids=ids, attention_mask=jnp.ones((1, 5)))
  with pytest.raises(ValueError, match="attention_impl must be one of"):
    models.forward(model.params, model.config, input_ids=ids, attention_impl="flash")
