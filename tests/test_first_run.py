"""The first real run (issue 10): real-shaped tokenizers, stop strings during decoding, fail-fast preflight,
length buckets, attention implementations, and a rehearsal of the unmodified paper configs."""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interlingua_jax.evaluation import harness as evaluate
from interlingua_jax.analysis import report
from interlingua_jax.run import experiment, preflight, stages
from tiny_system import preflight_of, system
from interlingua_jax.data import pipeline
from interlingua_jax.models import CausalLM, DecoderConfig, generate, init_params, loading


def markov_lm(next_token: dict[int, int], vocab: int) -> CausalLM:
  """A 1-layer LM whose greedy next token depends only on the current one: zero layers (the residual passes
  the one-hot embedding through), lm_head a permutation-like map t → next_token[t]."""
  config = DecoderConfig(model_type="llama", vocab_size=vocab, hidden_size=vocab, intermediate_size=4, num_layers=1,
                         num_heads=1, num_kv_heads=1, head_dim=8, bos_token_id=None, eos_token_id=(vocab - 1,))
  z = lambda *shape: jnp.zeros((1, *shape), jnp.float32)
  head = np.zeros((vocab, vocab), np.float32)
  for t, n in next_token.items():
    head[t, n] = 1.0
  params = {"embed": jnp.eye(vocab), "final_norm": jnp.ones(vocab), "lm_head": jnp.asarray(head),
            "layers": {"attn_norm": jnp.ones((1, vocab)), "mlp_norm": jnp.ones((1, vocab)), "q": z(vocab, 1, 8),
                       "k": z(vocab, 1, 8), "v": z(vocab, 1, 8), "o": z(1, 8, vocab), "gate": z(vocab, 4),
                       "up": z(vocab, 4), "down": z(4, vocab)}}
  return CausalLM(config, params)


def test_stop_strings_end_decoding_early_with_identical_predictions(tiny_tokenizer):
  """A completion that runs on into "\\nQ: ..." and never emits EOS: the loop ends a few tokens after the
  stop string instead of at max_new_tokens, and every prediction is what post-hoc cutting gave."""
  text = " The answer is 42.\nQ: Which"
  ids = pipeline.token_ids(tiny_tokenizer, text)
  assert len(set(ids)) == len(ids), "the chain must not revisit a token"
  chain = {a: b for a, b in zip(ids, ids[1:])}
  chain[ids[-1]] = ids[ids.index(pipeline.token_ids(tiny_tokenizer, "\n")[0])]  # "\nQ: Which" forever, no EOS
  model = markov_lm(chain, len(tiny_tokenizer))
  starts = [ids[0], ids[2]]  # the rows start at different points of the chain
  prompt = np.array([[0, 0, s] for s in starts], np.int32)
  mask = np.array([[0, 1, 1], [1, 1, 1]], np.int32)
  stop_strings, max_new, every = ("\nQ:",), 64, 4
  kwargs = dict(input_ids=prompt, attention_mask=mask, max_new_tokens=max_new, pad_token_id=0)
  full = generate(model, **kwargs)
  early = generate(model, **kwargs, stop=evaluate.stop_predicate(tiny_tokenizer, stop_strings),
                   stop_check_every=every)
  assert int(full.steps) == max_new
  newline = ids.index(pipeline.token_ids(tiny_tokenizer, "\n")[0])
  q_colon = newline + len(pipeline.token_ids(tiny_tokenizer, "Q:"))  # generated tokens up to the stop string, row 0
  assert q_colon <= int(early.steps) < q_colon + every  # the first check that sees row 0's stop string
  predict = lambda out, i: evaluate.stop_at(evaluate.decode_text(tiny_tokenizer, np.asarray(out.tokens[i]),
                                                                 int(out.lengths[i])), stop_strings)
  assert [predict(early, i) for i in range(2)] == [predict(full, i) for i in range(2)]
  assert predict(full, 0) == tiny_tokenizer.decode(ids[1:]).split("\nQ:")[0] == " answer is 42."
  assert not (np.asarray(early.tokens)[:, int(early.steps):] != 0).any()  # nothing decoded after the loop ended


# --------------------------------------------------------------------------------------------------
# Real-shaped tokenizers, preflight and the rehearsal of the unmodified paper configs

SIZES = {"translator.num_soft_tokens": 4, "translator.bottleneck": 32, "translator.depth": 1,
         "translator.num_heads": 2, "optim.warmup_steps": 1, "loss.infonce_start_step": 1, "train.steps": 2, "train.batch_size": 4, "train.eval_every": 2,
         "train.eval_num_samples": 4, "eval.num_samples": 4, "eval.batch_size": 4, "eval.max_new_tokens": 8,
         "eval.latency_batch_sizes": (4,), "eval.bootstrap_samples": 100, "compression.num_samples": 2,
         "compression.formats": ("int8",), "data.max_source_len": 120, "mesh.data": 1}


@pytest.fixture(scope="module")
def real_like(tmp_path_factory):
  """(source_dir, target_dir, data_root): real-shaped tiny checkpoints; GSM8K train/test files and HotpotQA
  train/validation files (no test split), one validation context too long for any prompt budget."""
  import real_like as rl
  from tiny_system import write_data
  root = tmp_path_factory.mktemp("real_like")
  source, target = rl.save_real_like_pair(str(root))
  write_data(str(root))
  hotpot = root / "hotpotqa"
  hotpot.mkdir()
  row = lambda i, paragraphs: {"id": f"h{i}", "question": f"Where is tower {i}?", "answer": "Paris",
                               "context": {"title": [f"T{j}" for j in range(len(paragraphs))],
                                           "sentences": [[p] for p in paragraphs]}}
  short = ["The tower is in Paris.", "Apples grow on trees."]
  for split, first, n in (("train", 0, 12), ("validation", 100, 6)):  # distinct ids: the splits never share one
    rows = [row(first + i, short) for i in range(n)]
    if split == "validation":
      rows[1] = row(first + 1, ["Paris " * 400])  # over any budget: skipped and counted, never an abort
    with open(hotpot / f"{split}.jsonl", "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in rows)
  return source, target, str(root)


def paper_config(name: str, source: str, target: str, **paths):
  """configs/<name>.py as shipped, with only paths and sizes overridden (as --config.x=y would)."""
  import importlib
  cfg = importlib.import_module(f"configs.{name}").get_config()
  cfg.update_from_flattened_dict({"source.path": source, "target.path": target, **SIZES, **paths})
  return cfg


@pytest.fixture
def no_weight_reads(monkeypatch):
  """Fails the test if any checkpoint weight is read."""
  def refuse(*args, **kwargs):
    raise AssertionError("a weight was read before the failing check")
  monkeypatch.setattr(loading, "load_params", refuse)


def test_real_tokenizers_pad_stop_ids_bos_and_spacing(real_like, tmp_path):
  from transformers import AutoTokenizer
  source, target, root = real_like
  for directory in (source, target):
    tok = loading.load_tokenizer(directory)
    assert AutoTokenizer.from_pretrained(directory).pad_token is None  # as the real ones
    assert tok.pad_token_id == tok.eos_token_id and len(tok) == len(set(tok.get_vocab().values()))  # no new entry
    builder = pipeline.PromptBuilder("gsm8k", (), tok, tok, 512, chat_template=False)
    chat = pipeline.PromptBuilder("gsm8k", (), tok, tok, 512, chat_template=True)
    for b in (builder, chat):
      ids = b.ids(tok, "Q: How many?\nA:")
      assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1  # the post-processor adds none
    assert tok.decode(chat.ids(tok, "hi")) != tok.decode(builder.ids(tok, "hi"))
  checked = preflight_of(paper_config("stable_64", source, target, **{"data.train_path": f"{root}/train.jsonl",
                                                                      "data.test_path": f"{root}/test.jsonl"}),
                         tmp_path)
  tok = checked.files["target"].tokenizer
  eos = {tok.convert_tokens_to_ids(t) for t in ("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>")}
  assert set(checked.files["target"].stop_ids) == eos and tok.eos_token_id in eos  # all three end generation
  assert checked.files["source"].stop_ids == (checked.files["source"].tokenizer.eos_token_id,)
  text = tok.decode(pipeline.anchor_ids(tok, "Answer: ") + pipeline.answer_ids(tok, "Answer: ", " Natalia"))
  assert text == "Answer: Natalia"  # one space, whatever spaces the anchor and answer carry
  assert tok.decode(pipeline.anchor_ids(tok, "A:") + pipeline.answer_ids(tok, "A:", "12")) == "A: 12"


def test_stripped_tokenizer_fails_before_any_weight(real_like, tmp_path, no_weight_reads):
  source, target, root = real_like
  stripped = tmp_path / "stripped"
  shutil.copytree(target, stripped)
  for f in loading.TOKENIZER_FILES + ("chat_template.jinja",):
    (stripped / f).unlink(missing_ok=True)
  cfg = paper_config("stable_64", source, str(stripped), **{"data.train_path": f"{root}/train.jsonl",
                                                             "data.test_path": f"{root}/test.jsonl"})
  with pytest.raises(ValueError) as e:
    system(cfg, tmp_path)
  assert "no tokenizer files" in str(e.value) and str(stripped) in str(e.value) and "\n" not in str(e.value)


def test_missing_split_fails_before_any_weight(real_like, tmp_path, no_weight_reads, monkeypatch):
  import datasets
  monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
  source, target, root = real_like
  cfg = paper_config("hotpotqa_64", source, target, **{"data.hf_name": f"{root}/hotpotqa", "data.hf_config": "",
                                                        "data.test_split": "test"})
  with pytest.raises(ValueError) as e:
    system(cfg, tmp_path)
  assert "no split 'test'" in str(e.value) and "data.test_split" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["stable_64", "hotpotqa_64"])
def test_rehearsal_of_the_paper_configs(real_like, tmp_path, name):
  """The unmodified configs end to end on real-shaped tokenizers; HotpotQA from train + validation files."""
  source, target, root = real_like
  paths = ({"data.train_path": f"{root}/train.jsonl", "data.test_path": f"{root}/test.jsonl"} if name == "stable_64"
           else {"data.train_path": f"{root}/hotpotqa/train.jsonl",
                 "data.test_path": f"{root}/hotpotqa/validation.jsonl"})
  cfg = paper_config(name, source, target, **paths)
  experiment.run(cfg, str(tmp_path), ("train", "eval", "compression"))
  with open(tmp_path / "train_summary.json") as f:
    summary = json.load(f)
  with open(tmp_path / "eval" / "aggregate.json") as f:
    agg = json.load(f)
  assert set(agg["methods"]) == set(cfg.eval.methods) | {f"latent_at_{stages.other_checkpoint(cfg)}"} and agg["num_questions"] == 4
  assert summary["skipped_long_prompts"] == {"train": 0, "validation": 0, "test": 1 if name == "hotpotqa_64" else 0}
  assert os.path.exists(tmp_path / "compression" / "compression.json") and os.path.exists(report.write(str(tmp_path)))


# --------------------------------------------------------------------------------------------------
# model.attention_impl


def test_cudnn_is_refused_without_a_gpu():
  from configs import stable_64
  cfg = stable_64.get_config()
  cfg.model.attention_impl = "cudnn"
  if jax.default_backend() == "gpu":
    pytest.skip("this machine has a GPU")
  with pytest.raises(ValueError, match=r"model.attention_impl='cudnn' needs an NVIDIA GPU, but JAX runs on 'cpu'; "
                                       r"use --config.model.attention_impl=xla"):
    preflight.check_machine(cfg, {"source.path": cfg.source.dtype, "target.path": cfg.target.dtype})


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN fused attention needs an NVIDIA GPU")
def test_cudnn_matches_xla_on_left_padded_rows():
  """Same logits (bf16 tolerance) at real positions and the same greedy tokens; the 8B shapes are in
  benchmarks/attention_impl.py."""
  config = DecoderConfig(model_type="llama", vocab_size=1024, hidden_size=512, intermediate_size=1024, num_layers=2,
                         num_heads=8, num_kv_heads=2, head_dim=64, eos_token_id=(2,))
  params = init_params(config, jax.random.key(0), jnp.bfloat16)
  rng = np.random.default_rng(0)
  mask = (np.arange(128)[None] >= np.array([0, 17, 64, 100])[:, None]).astype(np.int32)
  ids = rng.integers(3, 1024, size=mask.shape).astype(np.int32) * mask
  models = {impl: CausalLM(config, params, attention_impl=impl) for impl in ("xla", "cudnn")}
  logits = {k: np.asarray(m(input_ids=ids, attention_mask=mask).logits, np.float32) for k, m in models.items()}
  real = mask.astype(bool)
  scale = np.abs(logits["xla"][real]).max()
  assert np.abs(logits["cudnn"] - logits["xla"])[real].max() <= 2e-2 * scale
  tokens = {k: np.asarray(generate(m, input_ids=ids, attention_mask=mask, max_new_tokens=8).tokens)
            for k, m in models.items()}
  np.testing.assert_array_equal(tokens["cudnn"], tokens["xla"])
