"""Every config value checked before anything is loaded: one `ConfigError` naming the key and the fix.

A bad value found after the models are loaded costs minutes (a ZeroDivisionError at the first
evaluation, `train.steps=0` after the toy world's pretraining); here it costs nothing. Types are
already enforced by ml_collections for command-line overrides; these are the ranges, the choices
and the relations between keys.
"""
import os
from collections.abc import Callable

import ml_collections

from interlingua_jax.bridges import kind as bridges
from interlingua_jax.evaluation import methods, wire
from interlingua_jax.data import kinds
from interlingua_jax.core.errors import ConfigError

DTYPES = ("float32", "bfloat16", "float16")
Rule = Callable[[object], str | None]  # the problem with a value, or None


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(low, integer: bool = True) -> Rule:
  kind = "an integer" if integer else "a number"
  return lambda v: None if (isinstance(v, int) if integer else _number(v)) and not isinstance(v, bool) \
      and v >= low else f"must be {kind} >= {low}"


def above(low) -> Rule:
  return lambda v: None if _number(v) and v > low else f"must be a number > {low}"


def within(low, high) -> Rule:
  """low <= v < high."""
  return lambda v: None if _number(v) and low <= v < high else f"must be a number in [{low}, {high})"


def one_of(choices) -> Rule:
  return lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}"


def each_of(choices) -> Rule:
  def rule(v):
    if not isinstance(v, (tuple, list)) or not v:
      return f"must be a non-empty list drawn from {', '.join(choices)}"
    bad = [x for x in v if x not in choices]
    return f"has unknown entries {bad}; choose from {', '.join(choices)}" if bad else None
  return rule


def increasing_positive(v) -> str | None:
  ok = isinstance(v, (tuple, list)) and v and all(isinstance(x, int) and x >= 1 for x in v) \
      and list(v) == sorted(set(v))
  return None if ok else "must be a non-empty increasing list of positive integers"


def text(v) -> str | None:
  return None if isinstance(v, str) and v else "must be a non-empty string"


def flag(v) -> str | None:
  return None if isinstance(v, bool) else "must be True or False"


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
    "bridge.kind": lambda v: one_of(tuple(bridges.REGISTRY))(v),  # the live registry, as eval.methods
    "translator.num_soft_tokens": at_least(1),
    "translator.bottleneck": at_least(1),
    "translator.depth": at_least(1),
    "translator.num_heads": at_least(1),
    "translator.dropout": within(0.0, 1.0),
    "translator.calibrate_rms": flag,
    "translator.reads_source": flag,
    "loss.infonce_weight": at_least(0.0, integer=False),
    "loss.infonce_start_step": at_least(0),
    "loss.temperature": above(0.0),
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
INTERLINGUA_RULES: dict[str, Rule] = {  # every kind but the translator
    "interlingua.encoder": one_of(("bytes", "states")),
    "interlingua.latent_dim": at_least(2),
    "interlingua.num_latents": at_least(1),
    "interlingua.depth": at_least(1),
    "interlingua.num_heads": at_least(1),
    "interlingua.max_bytes": at_least(1),
    "interlingua.calibrate_rms": flag,
    "interlingua.first_token_weight": at_least(0.0, integer=False),
    "interlingua.k_tokens": at_least(1),
    "interlingua.pca_fit_texts": at_least(1),
}
LATENT_METHODS = ("token_budget_text", "pca")  # read a latent kind's text or its adapters' targets
TARGET_FIELDS = ("name", "path", "dtype", "tokenizer")
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


def get(cfg: ml_collections.ConfigDict, key: str):
  node = cfg
  for part in key.split("."):
    if part not in node:
      raise ConfigError(f"the config has no key {key}; a config file must start from configs/base.py "
                        "(`c = base.get_config()`) and change only what differs.")
    node = node[part]
  return node


def _fail(key: str, value, problem: str) -> None:
  raise ConfigError(f"config key {key}={value!r} {problem}; change it in the config file or with "
                    f"--config.{key}=...")


def check(cfg: ml_collections.ConfigDict, device_count: int | None = None) -> None:
  """Raises ConfigError for the first bad value. `device_count` (when given) bounds the mesh."""
  latent = get(cfg, "bridge.kind") != "translator"
  rules = dict(RULES, **(TOY_RULES if get(cfg, "data.dataset") == "toy" else {}),
               **(INTERLINGUA_RULES if latent else {}), **(WORD_PROBLEM_RULES if "word_problems" in cfg else {}))
  for key, rule in rules.items():
    value = get(cfg, key)
    problem = rule(value)
    if problem:
      _fail(key, value, problem)
  g = lambda key: get(cfg, key)
  if g("translator.bottleneck") % g("translator.num_heads"):
    _fail("translator.bottleneck", g("translator.bottleneck"),
          f"must be divisible by translator.num_heads={g('translator.num_heads')}")
  if g("optim.warmup_steps") >= g("train.steps"):
    _fail("optim.warmup_steps", g("optim.warmup_steps"), f"must be below train.steps={g('train.steps')}")
  if latent:
    _check_interlingua(cfg)
  elif set(g("eval.methods")) & set(LATENT_METHODS):
    _fail("eval.methods", g("eval.methods"), f"holds {sorted(set(g('eval.methods')) & set(LATENT_METHODS))}, "
          f"methods of latent bridge kinds only; drop them or set bridge.kind (e.g. 'interlingua')")
  checkpoint_methods = sorted(set(g("eval.methods")) & set(methods.CHECKPOINT_METHODS))
  if checkpoint_methods:
    _fail("eval.methods", g("eval.methods"), f"holds {checkpoint_methods}, which the eval stage adds itself (latent "
          "with the checkpoint the test split does not read); drop them")
  if g("data.dataset") != "toy":
    sides = ("source.path", "target.path") if not latent else (
        ("source.path",) if g("interlingua.encoder") == "states" else ())
    for key in sides:
      if text(g(key)):
        _fail(key, g(key), "must name a checkpoint directory, a hub id, a .gguf file or a zoo: name")
    for key in ("data.train_path", "data.test_path"):
      path = g(key)
      if path and not os.path.isfile(path):
        _fail(key, path, "is not a file; pass an existing .jsonl/.json/.parquet file (or '' to load data.hf_name)")
  data, model = g("mesh.data"), g("mesh.model")
  if device_count is not None:
    if data == -1 and device_count % model:
      _fail("mesh.model", model, f"must divide the {device_count} available devices")
    used = device_count if data == -1 else data * model
    if used > device_count:
      _fail("mesh.data", data, f"times mesh.model={model} needs {used} devices but {device_count} exist")
    data = device_count // model if data == -1 else data
  if g("train.batch_size") % max(data, 1):
    _fail("train.batch_size", g("train.batch_size"), f"must be divisible by the mesh's data axis ({data})")


def _extractive_toy(cfg: ml_collections.ConfigDict) -> bool:
  return "toy" in cfg and "extractive" in cfg.toy


def _check_toy_source(cfg: ml_collections.ConfigDict) -> None:
  """In the extractive toy world a states encoder's source is one of its own models, named by `toy.source`."""
  from interlingua_jax.toy.extractive import TARGETS
  source, states = cfg.toy.get("source", ""), get(cfg, "interlingua.encoder") == "states"
  if states and source not in TARGETS:
    _fail("toy.source", source, f"must name the toy model whose states the encoder reads, one of {', '.join(TARGETS)}")
  if source and not states:
    _fail("toy.source", source, "is read by interlingua.encoder='states' only; set it to '' for the byte encoder")


def _check_interlingua(cfg: ml_collections.ConfigDict) -> None:
  """The relations of the interlingua section and its list of targets, one entry at a time."""
  g = lambda key: get(cfg, key)
  if g("interlingua.latent_dim") % (2 * g("interlingua.num_heads")):
    _fail("interlingua.latent_dim", g("interlingua.latent_dim"),
          f"must be even and divisible by interlingua.num_heads={g('interlingua.num_heads')}")
  targets = g("interlingua.targets")
  if not isinstance(targets, (tuple, list)) or not targets:
    _fail("interlingua.targets", targets, "must be a non-empty list of {name, path, dtype, tokenizer} entries")
  names = []
  for i, t in enumerate(targets):
    key = f"interlingua.targets[{i}]"
    if not hasattr(t, "keys") or set(t.keys()) != set(TARGET_FIELDS):
      _fail(key, t, f"must have exactly the fields {', '.join(TARGET_FIELDS)}")
    toy = _extractive_toy(cfg)  # the toy world sets the paths of its targets
    for field, rule in (("name", text), ("path", (lambda v: None) if toy else text), ("dtype", one_of(DTYPES))):
      if rule(t[field]):
        _fail(f"{key}.{field}", t[field], rule(t[field]))
    if not isinstance(t["tokenizer"], str):
      _fail(f"{key}.tokenizer", t["tokenizer"], "must be a string ('' = the checkpoint's tokenizer)")
    if t["name"] in names or "/" in t["name"]:
      _fail(f"{key}.name", t["name"], "must be unique among the targets and hold no '/'")
    names.append(t["name"])
  if _extractive_toy(cfg):
    _check_toy_source(cfg)
