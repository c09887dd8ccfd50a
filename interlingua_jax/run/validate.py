"""Every config value checked before anything is loaded: one `ConfigError` naming the key and the fix.

A bad value found after the models are loaded costs minutes (a ZeroDivisionError at the first
evaluation, `train.steps=0` after the toy world's pretraining); here it costs nothing. Types are
already enforced by ml_collections for command-line overrides; these are the ranges, the choices
and the relations between keys. A bridge kind's own keys are checked by its rules (`Kind.rules`, `Kind.check`).
"""
import os

import ml_collections

from interlingua_jax import bridges
from interlingua_jax.core.rules import (DTYPES, Rule, at_least, above, each_of, fail, flag, get, increasing_positive,
                                        one_of, text, within)
from interlingua_jax.data import kinds
from interlingua_jax.evaluation import methods, wire

RULES: dict[str, Rule] = {
    "seed": at_least(0),
    "source.dtype": one_of(DTYPES),
    "target.dtype": one_of(DTYPES),
    "source.layer": lambda v: None if isinstance(v, int) and not isinstance(v, bool) else "must be an integer",
    "data.dataset": lambda v: one_of(kinds.names())(v),  # read when checked: datasets may be registered later
    "data.num_shots": at_least(0),
    "data.shot_seed": at_least(0),
    "data.bridge_shots": at_least(-1),
    "data.shuffle_seed": at_least(0),
    "data.validation_seed": at_least(0),
    "data.max_source_len": at_least(1),
    "data.max_answer_len": at_least(1),
    "data.answer_anchor": text,
    "optim.learning_rate": above(0.0),
    "optim.warmup_steps": at_least(0),
    "optim.b1": within(0.0, 1.0),
    "optim.b2": within(0.0, 1.0),
    "optim.eps": above(0.0),
    "optim.weight_decay": at_least(0.0, integer=False),
    "optim.gate_lr_multiplier": above(0.0),
    "optim.clip_norm": above(0.0),
    "train.steps": at_least(1),
    "train.batch_size": at_least(1),
    "train.log_every": at_least(1),
    "train.eval_every": at_least(1),
    "train.eval_num_samples": at_least(1),
    "train.early_stopping": flag,
    "train.patience": at_least(1),
    "train.keep_checkpoints": at_least(1),
    "train.remat": flag,
    "eval.methods": each_of(methods.REGISTRY),  # the live registry: methods registered later count too
    "eval.control_seed": at_least(0),
    "eval.subset_seed": at_least(0),
    "eval.latency_samples": at_least(0),
    "eval.num_samples": at_least(1),
    "eval.batch_size": at_least(1),
    "eval.max_new_tokens": at_least(1),
    "eval.repetition_penalty": above(0.0),
    "eval.no_repeat_ngram_size": at_least(0),
    "eval.length_buckets": increasing_positive,
    "eval.latency_batch_sizes": increasing_positive,
    "eval.bootstrap_samples": at_least(1),
    "compression.formats": each_of(wire.FORMATS),
    "compression.group_size": at_least(1),
    "compression.num_samples": at_least(1),
    "mesh.data": lambda v: None if isinstance(v, int) and (v == -1 or v >= 1) else "must be -1 (the rest) or >= 1",
    "mesh.model": at_least(1),
    "profile.start_step": at_least(-1),
    "profile.num_steps": at_least(1),
}
WORD_PROBLEM_RULES: dict[str, Rule] = {  # generated GSM8K-format data (data/word_problems.py)
    "word_problems.seed": at_least(0),
    "word_problems.num_train": at_least(1),
    "word_problems.num_test": at_least(1),
}
TOY_RULES: dict[str, Rule] = {
    "toy.world.seed": at_least(0),
    "toy.world.num_train": at_least(1),
    "toy.world.num_test": at_least(1),
    "toy.world.pretrain_steps": at_least(1),
    "toy.world.pretrain_batch_size": at_least(1),
    "toy.world.pretrain_learning_rate": above(0.0),
    "toy.world.hidden_size": at_least(1),
    "toy.world.num_layers": at_least(1),
}


def check(cfg: ml_collections.ConfigDict, device_count: int | None = None) -> None:
  """Raises ConfigError for the first bad value. `device_count` (when given) bounds the mesh."""
  name = get(cfg, "bridge.kind")
  if name not in bridges.REGISTRY:  # the live registry: a kind registered later counts too
    fail("bridge.kind", name, f"must be one of {', '.join(bridges.REGISTRY)}")
  kind = bridges.get(name)
  rules = dict(RULES, **(TOY_RULES if get(cfg, "data.dataset") == "toy" else {}), **kind.rules,
               **(WORD_PROBLEM_RULES if "word_problems" in cfg else {}))
  for key, rule in rules.items():
    value = get(cfg, key)
    problem = rule(value)
    if problem:
      fail(key, value, problem)
  g = lambda key: get(cfg, key)
  if g("optim.warmup_steps") >= g("train.steps"):
    fail("optim.warmup_steps", g("optim.warmup_steps"), f"must be below train.steps={g('train.steps')}")
  kind.check(cfg)
  methods_ = set(g("eval.methods"))
  for other in bridges.REGISTRY.values():
    if other is not kind and methods_ & set(other.methods) - set(kind.methods):
      fail("eval.methods", g("eval.methods"), f"holds {sorted(methods_ & set(other.methods))}, methods of "
           f"bridge.kind={other.name!r} only; drop them or set bridge.kind")
  checkpoint_methods = sorted(methods_ & set(methods.CHECKPOINT_METHODS))
  if checkpoint_methods:
    fail("eval.methods", g("eval.methods"), f"holds {checkpoint_methods}, which the eval stage adds itself (latent "
         "with the checkpoint the test split does not read); drop them")
  if not builds_models(cfg):
    for spec in kind.models(cfg).values():
      if text(spec.path):
        fail(spec.path_key, spec.path, "must name a checkpoint directory, a hub id, a .gguf file or a zoo: name")
  if g("data.dataset") != "toy":
    for key in ("data.train_path", "data.test_path"):
      path = g(key)
      if path and not os.path.isfile(path):
        fail(key, path, "is not a file; pass an existing .jsonl/.json/.parquet file (or '' to load data.hf_name)")
  data, model = g("mesh.data"), g("mesh.model")
  if device_count is not None:
    if data == -1 and device_count % model:
      fail("mesh.model", model, f"must divide the {device_count} available devices")
    used = device_count if data == -1 else data * model
    if used > device_count:
      fail("mesh.data", data, f"times mesh.model={model} needs {used} devices but {device_count} exist")
    data = device_count // model if data == -1 else data
  if g("train.batch_size") % max(data, 1):
    fail("train.batch_size", g("train.batch_size"), f"must be divisible by the mesh's data axis ({data})")


def builds_models(cfg: ml_collections.ConfigDict) -> bool:
  """Whether a toy world builds the run's models (the toy dataset's two LMs, the extractive world's targets)."""
  return get(cfg, "data.dataset") == "toy" or ("toy" in cfg and "extractive" in cfg.toy)
