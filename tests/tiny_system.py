"""A tiny bridged system for tests and benchmarks: GSM8K-format arithmetic records, a config over tiny
checkpoints, a fixed batch of the pipeline and the project's jitted train step on it."""
import json
import os

import numpy as np

from interlingua_jax.bridges.translator import rows as translator_rows
from interlingua_jax.run import experiment, stages
from interlingua_jax.run.setup import setup

QUESTIONS = [(a, b) for a in range(1, 8) for b in range(1, 6)]


def write_data(root) -> tuple[str, str]:
  rows = [{"question": f"Tom has {a} apples and gets {b} more. How many apples does Tom have?",
           "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for a, b in QUESTIONS]
  return write_splits(root, rows, num_train=28)


def write_splits(root, rows: list[dict], num_train: int) -> tuple[str, str]:
  """train.jsonl (the first `num_train` rows) and test.jsonl (the rest) under root; their paths."""
  paths = []
  for split, part in (("train", rows[:num_train]), ("test", rows[num_train:])):
    path = os.path.join(root, f"{split}.jsonl")
    with open(path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in part)
    paths.append(path)
  return tuple(paths)


def tiny_config(source_dir, target_dir, data_paths):
  from configs import tiny
  c = tiny.get_config()
  c.source.path, c.target.path = source_dir, target_dir
  c.source.dtype = c.target.dtype = "float32"
  c.data.dataset = "gsm8k"
  c.data.train_path, c.data.test_path = data_paths
  c.data.num_shots = 1
  c.data.answer_anchor = "A:"
  c.mesh.data, c.mesh.model = 1, 1
  return c




def system(cfg, workdir: str, modes=("train",)):
  """(run, kind, setup) of a config: what the pipeline has before its first stage."""
  run, kind = experiment.start(cfg, str(workdir), modes)
  return run, kind, setup(run, kind)


def frozen(run, kind, s):
  """The frozen LMs of the (one) evaluation view of a translator system."""
  return kind.contexts(run, s, None)[None].frozen


def frozen_params(s):
  return s.models["source"].lm.params, s.models["target"].lm.params


def lengths_and_rows(run, s, examples):
  """The translator's static lengths (measured on the whole pool) and `examples` encoded with them."""
  cfg, target = run.cfg, s.models["target"].tokenizer
  common = dict(builder=s.builders[None], target_tokenizer=target, anchor=cfg.data.answer_anchor,
                num_soft_tokens=cfg.translator.num_soft_tokens)
  lengths = translator_rows.measure_lengths(s.train, max_answer_len=cfg.data.max_answer_len, **common)
  return lengths, translator_rows.encode_pool(examples, lengths=lengths, **common)


def fixed_batch(run, s, n: int):
  """The first `n` training examples of a translator setup as one batch of the pipeline's rows, and the lengths."""
  if len(s.train) < n:
    raise ValueError(f"a batch of {n} exceeds the {len(s.train)} training examples of the tiny data.")
  lengths, rows = lengths_and_rows(run, s, s.train[:n])
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}, lengths


def open_gates(translator, value: float) -> None:
  """Sets every block's three gates: at the initial 0 every branch but the queries is multiplied away."""
  for block in translator.blocks:
    for gate in ("attn_gate", "cross_gate", "mlp_gate"):
      getattr(block, gate)[...] = value


def jax_step(run, kind, s, *, gates: float | None = None):
  """The project's jitted train step for a translator system, its initial state and its schedule; `gates` opens
  the translator's gates first."""
  translator = kind.new_module(run, s)
  if gates is not None:
    open_gates(translator, gates)
  t = stages.training_step(run, kind, s, translator)
  return t.state, t.step_fn, t.schedule


def preflight_of(cfg, workdir):
  """What preflight checks of a config, before any weight is read."""
  from interlingua_jax.run import preflight
  run, kind = experiment.start(cfg, str(workdir))
  return preflight.check(run, kind)
