"""A tiny bridged system for tests and benchmarks: GSM8K-format arithmetic records, a config over tiny
checkpoints, a fixed batch of the pipeline and the project's jitted train step on it."""
import json
import os

import numpy as np

from interlingua_jax import runner, train
from interlingua_jax.data import pipeline

QUESTIONS = [(a, b) for a in range(1, 8) for b in range(1, 6)]


def write_data(root) -> tuple[str, str]:
  rows = [{"question": f"Tom has {a} apples and gets {b} more. How many apples does Tom have?",
           "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for a, b in QUESTIONS]
  paths = []
  for split, part in (("train", rows[:28]), ("test", rows[28:])):
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




def fixed_batch(cfg, s, n: int):
  """The first `n` training examples of a `runner.Setup` as one batch of the pipeline's rows, and the lengths."""
  tok, m = s.frozen.target_tokenizer, cfg.translator.num_soft_tokens
  if len(s.pool) < n:
    raise ValueError(f"a batch of {n} exceeds the {len(s.pool)} training examples of the tiny data.")
  lengths = pipeline.measure_lengths(s.pool, builder=s.builder, target_tokenizer=tok, anchor=cfg.data.answer_anchor,
                                     num_soft_tokens=m, max_answer_len=cfg.data.max_answer_len)
  rows = train.encode_pool(s.pool[:n], builder=s.builder, target_tokenizer=tok, anchor=cfg.data.answer_anchor,
                           num_soft_tokens=m, lengths=lengths)
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}, lengths


def loss_spec(cfg, lengths):
  return train.LossSpec(cfg.loss.infonce_weight, cfg.loss.infonce_start_step, cfg.loss.temperature,
                        lengths.answer + 2, remat=cfg.train.remat)


def open_gates(translator, value: float) -> None:
  """Sets every block's three gates: at the initial 0 every branch but the queries is multiplied away."""
  for block in translator.blocks:
    for gate in ("attn_gate", "cross_gate", "mlp_gate"):
      getattr(block, gate)[...] = value


def jax_step(cfg, s, lengths, *, gates: float | None = None):
  """The project's jitted train step for a `runner.Setup` (anything with `frozen` and `mesh`), its initial state
  and its schedule; `gates` opens the translator's gates first."""
  translator = runner.new_translator(cfg, s)
  if gates is not None:
    open_gates(translator, gates)
  tx, schedule = train.make_optimizer(cfg, cfg.train.steps)
  graphdef, state = train.init_state(translator, tx, s.mesh)
  step = train.make_train_step(mesh=s.mesh, frozen=s.frozen, graphdef=graphdef, tx=tx, schedule=schedule,
                               spec=loss_spec(cfg, lengths))
  return state, step, schedule
