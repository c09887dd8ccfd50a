"""Shared fixtures: a tiny tokenizer and tiny random Llama/Mistral (Qwen on demand) checkpoints in HF format.

Four simulated CPU devices are configured before any JAX call, so sharding tests can build a
(data=2, model=2) mesh in-process while everything else uses one device.

One persistent compilation cache serves the whole session, in-process and in the subprocesses the tests start
(suites, two-process runs: they inherit JAX_COMPILATION_CACHE_DIR): each run builds fresh jitted closures of the
same programs, which XLA would otherwise compile again and again. The cache is a new empty directory every
session, so no test reads an executable from another session or another version of the code.
"""
import atexit
import contextlib
import os
import shutil
import tempfile

import jax

jax.config.update("jax_num_cpu_devices", 4)
os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="interlingua_jax_xla_cache_")
atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

TINY_CORPUS = [
    "Q: Ann has 12 apples and buys 7 more. How many apples does Ann have?",
    "A: 12 + 7 = 19. #### 19",
    "Answer: The answer is 42.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "Which magazine was started first, Arthur's Magazine or First for Women?",
    "the quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9 , . ? ! + - * / = ####",
]
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]  # ids 0, 1, 2


def build_tiny_tokenizer(vocab_size: int = 384):
  """A byte-level BPE (any text encodes, no UNK) that, like the Llama/Mistral tokenizers, adds <s> itself."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
  from transformers import PreTrainedTokenizerFast

  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
  tok.train_from_iterator(TINY_CORPUS * 4, trainer=trainer)
  tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                     special_tokens=[("<s>", tok.token_to_id("<s>"))])
  return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_hf_config(model_type: str, vocab_size: int, **overrides):
  """Small Llama-3.1-, Mistral-v0.3-, Qwen2.5- or Qwen3-shaped config (GQA 4:2, untied head); overrides change
  any field. Qwen3's head_dim (32) differs from hidden_size / heads (16), as in the released models."""
  from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

  common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                max_position_embeddings=512, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                pad_token_id=0, initializer_range=0.1)
  if model_type == "llama":
    common.update(rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
    common.update(overrides)
    return LlamaConfig(**common)
  if model_type in ("qwen2", "qwen3"):
    common.update(rope_theta=1e6, rms_norm_eps=1e-6, use_sliding_window=False)
    if model_type == "qwen3":
      common.update(head_dim=32)
    common.update(overrides)
    return (Qwen2Config if model_type == "qwen2" else Qwen3Config)(**common)
  common.update(rope_theta=1e6, sliding_window=None)
  common.update(overrides)
  return MistralConfig(**common)


def save_tiny_hf_model(path, model_type: str, tokenizer=None, seed: int = 0, vocab_size: int | None = None,
                       **overrides):
  """Saves a random float32 HF model (and tokenizer) to `path`; returns the torch model in eval mode.

  Projection biases and q/k norm scales (Qwen) are randomised too: HF initialises them to 0 and 1, which
  would hide a mis-mapped or ignored tensor.
  """
  import transformers

  from interlingua_jax.models.families import FAMILIES

  vocab = vocab_size or len(tokenizer)
  config = tiny_hf_config(model_type, vocab, **overrides)
  torch.manual_seed(seed)
  model = getattr(transformers, FAMILIES[model_type].architecture)(config).float().eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith(("_proj.bias", "q_norm.weight", "k_norm.weight")):
        p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(path)
  if tokenizer is not None:
    tokenizer.save_pretrained(path)
  return model


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
  """Directory of a saved byte-level BPE PreTrainedTokenizerFast: <pad>=0, <s>=1, </s>=2, adds <s>."""
  path = tmp_path_factory.mktemp("tiny_tokenizer")
  build_tiny_tokenizer().save_pretrained(path)
  return str(path)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
  from transformers import AutoTokenizer
  return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer):
  """Tiny random LlamaForCausalLM (float32, d=64, 2 layers, 4 heads / 2 kv heads, llama3 rope) + tokenizer."""
  path = tmp_path_factory.mktemp("tiny_llama")
  save_tiny_hf_model(path, "llama", tiny_tokenizer, seed=0)
  return str(path)


@pytest.fixture(scope="session")
def tiny_mistral_dir(tmp_path_factory, tiny_tokenizer):
  """Tiny random MistralForCausalLM (float32, d=64, 2 layers, 4 heads / 2 kv heads, no window) + tokenizer."""
  path = tmp_path_factory.mktemp("tiny_mistral")
  save_tiny_hf_model(path, "mistral", tiny_tokenizer, seed=1)
  return str(path)


@pytest.fixture(scope="session")
def toy_extractive_world(tmp_path_factory):
  """The extractive-QA toy world at its reduced size, built once per session: `toy.extractive.prepare`'s paths
  {"train", "test", "info", "targets": {"llama", "qwen"}} (targets pretrained one step: plumbing, not skill)."""
  from interlingua_jax.toy import extractive
  return extractive.prepare(str(tmp_path_factory.mktemp("toy_extractive")), **extractive.REDUCED)


@pytest.fixture
def crash_at_step(monkeypatch):
  """`with crash_at_step(3): stages.train_stage(...)`: the run dies (KeyboardInterrupt, asserted) when it reaches
  step 3, after that step's checkpoint, as a kill would; the real train step is back after the block."""
  from interlingua_jax.run import stages

  @contextlib.contextmanager
  def crashing(step: int):
    real = stages.make_train_step

    def interrupted(**kwargs):
      fn = real(**kwargs)

      def train_step(state, frozen, batch):
        if int(state.step) == step:
          raise KeyboardInterrupt(f"simulated crash after the step-{step} checkpoint")
        return fn(state, frozen, batch)
      return train_step

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
      patched.setattr(stages, "make_train_step", interrupted)
      yield
  return crashing
