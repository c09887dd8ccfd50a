"""The shared interlingua wired as a bridge kind: config checks, one Z trained for a tiny Llama and a tiny Qwen
(different tokenizers) through `train.fit`, exact resume, per-target evaluation, diagnostics, a new kind."""
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from interlingua_jax import bridges, errors, runner, train, validate
from interlingua_jax.interlingua import stage, training

COLOURS = ["red", "blue", "green", "black", "white", "brown"]
NAMES = ["Ann", "Tom", "Sue", "Bob", "Eve", "Max", "Kim", "Lee"]


def write_qa(root) -> tuple[str, str]:
  """HotpotQA-format records: a context paragraph and a question whose answer is a span of it."""
  rows = []
  for i, (name, colour) in enumerate((n, c) for n in NAMES for c in COLOURS):
    context = {"title": [name], "sentences": [[f"{name} has a {colour} hat.", f" The hat of {name} is new."]]}
    rows.append({"id": f"q{i}", "question": f"What colour is the hat of {name}?", "answer": colour,
                 "context": context})
  paths = []
  for split, part in (("train", rows[:40]), ("test", rows[40:])):
    path = os.path.join(root, f"{split}.jsonl")
    with open(path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in part)
    paths.append(path)
  return tuple(paths)


def no_bos_tokenizer():
  """Another vocabulary without BOS, as Qwen's: each target gets its own row layout."""
  from conftest import build_tiny_tokenizer
  from transformers import PreTrainedTokenizerFast
  tok = build_tiny_tokenizer(vocab_size=320)
  return PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token="</s>", pad_token="<pad>")


@pytest.fixture(scope="module")
def tiny_qwen_dir(tmp_path_factory):
  from conftest import save_tiny_hf_model
  path = tmp_path_factory.mktemp("tiny_qwen")
  tok = no_bos_tokenizer()
  tok.backend_tokenizer.post_processor = None
  save_tiny_hf_model(path, "qwen2", tok, seed=2, vocab_size=384, bos_token_id=None)
  return str(path)


def interlingua_config(llama_dir, qwen_dir, data_paths):
  from configs import interlingua_reduced
  c = interlingua_reduced.get_config()
  c.interlingua.targets = (dict(name="llama", path=llama_dir, dtype="float32", tokenizer=""),
                           dict(name="qwen", path=qwen_dir, dtype="float32", tokenizer=""))
  c.data.dataset = "hotpotqa"
  c.data.train_path, c.data.test_path = data_paths
  return c


@pytest.fixture(scope="module")
def system(tiny_llama_dir, tiny_qwen_dir, tmp_path_factory):
  cfg = interlingua_config(tiny_llama_dir, tiny_qwen_dir, write_qa(str(tmp_path_factory.mktemp("qa"))))
  validate.check(cfg)
  return cfg, stage.setup(cfg)


@pytest.mark.parametrize("key, value, message", [
    ("bridge.kind", "bridge", "bridge.kind='bridge' must be one of translator, interlingua"),
    ("interlingua.latent_dim", 30, "interlingua.latent_dim=30 must be even and divisible by interlingua.num_heads"),
    ("interlingua.encoder", "states", "is not wired into runs yet"),
    ("interlingua.targets", (), "must be a non-empty list"),
    ("interlingua.targets", (dict(name="a", path="p", dtype="float8", tokenizer=""),),
     r"interlingua.targets\[0\].dtype='float8' must be one of"),
    ("interlingua.targets", (dict(name="a", path="p", dtype="float32"),), "must have exactly the fields"),
    ("interlingua.targets", (dict(name="a", path="p", dtype="float32", tokenizer=""),) * 2,
     r"targets\[1\].name='a' must be unique"),
])
def test_each_bad_interlingua_key_is_one_clear_error(key, value, message):
  from configs import interlingua_reduced
  cfg = interlingua_reduced.get_config()
  cfg.interlingua.targets = (dict(name="a", path="p", dtype="float32", tokenizer=""),)
  validate.check(cfg)
  with cfg.unlocked():
    cfg.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=message):
    validate.check(cfg)


def test_two_targets_of_two_families_train_one_z_and_resume_exactly(system, tmp_path, monkeypatch):
  cfg, s = system
  assert [t.lm.config.model_type for t in s.targets.values()] == ["llama", "qwen2"]
  assert s.targets["qwen"].tokenizer.bos_token_id is None and s.targets["llama"].tokenizer.bos_token_id == 1
  straight = stage.train_stage(cfg, s, str(tmp_path / "straight"))
  assert straight["final_step"] == cfg.train.steps
  real = training.make_train_step

  def interrupted(**kwargs):
    fn = real(**kwargs)

    def step(state, frozen, batch):
      if int(state.step) == cfg.train.eval_every:
        raise KeyboardInterrupt("simulated crash after the first checkpoint")
      return fn(state, frozen, batch)
    return step

  monkeypatch.setattr(training, "make_train_step", interrupted)
  with pytest.raises(KeyboardInterrupt):
    stage.train_stage(cfg, s, str(tmp_path / "resumed"))
  monkeypatch.setattr(training, "make_train_step", real)
  stage.train_stage(cfg, s, str(tmp_path / "resumed"))
  tx, _ = train.make_optimizer(cfg, cfg.train.steps)
  _, template = train.init_state(stage.new_module(cfg, s), tx, s.mesh)
  finals = [train.Checkpoints.restore(train.Checkpoints(str(tmp_path / n), keep=2).latest,
                                      train.abstract_like(template))[0] for n in ("straight", "resumed")]
  assert int(finals[0].step) == int(finals[1].step) == cfg.train.steps
  for x, y in zip(jax.tree.leaves(finals[0].params), jax.tree.leaves(finals[1].params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
  assert any(not np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(template.params), jax.tree.leaves(finals[0].params)))
  rows = [json.loads(line) for line in open(tmp_path / "straight" / "metrics.jsonl")]
  trained = [r for r in rows if "loss" in r]
  assert {"llama/first_token_accuracy", "qwen/first_token_accuracy", "llama/k_tokens", "qwen/loss"} <= trained[0].keys()
  assert trained[-1]["loss"] == pytest.approx(trained[-1]["llama/loss"] + trained[-1]["qwen/loss"], rel=1e-5)
  alarms = [r for r in rows if "validation/qwen/identical_share" in r]
  assert [r["step"] for r in alarms] == list(range(0, cfg.train.steps + 1, cfg.train.eval_every))
  assert all(isinstance(r["validation/llama/top_first_token"], str) for r in alarms)
