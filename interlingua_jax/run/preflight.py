"""Everything a run can check before the first weight is read: machine → tokenizers → data.

A real run loads two 8B models (minutes of a GPU reservation) before it can fail on anything
they hold; whatever the tokenizers, config.json files and data splits can tell is checked
here first, each problem raised as one line that names it and its fix. `check` is a plain list
of steps, so a new check is one more line; each step logs how long it took.
"""
import dataclasses
import logging
import time

import jax
import ml_collections

from interlingua_jax.bridges.kind import Kind
from interlingua_jax.core.context import Run
from interlingua_jax.data import kinds, pipeline, splits
from interlingua_jax.data.records import load_split
from interlingua_jax.evaluation import methods
from interlingua_jax.models import inputs
from interlingua_jax.models.decoder import ATTENTION_IMPLS
from interlingua_jax.models.frozen import ModelFiles
from interlingua_jax.models.loading import load_tokenizer, read_config, resolve_checkpoint_dir, stop_token_ids

CUDNN_DTYPES = ("bfloat16", "float16")  # what cuDNN's fused attention computes in


@dataclasses.dataclass(frozen=True)
class Checked:
  files: dict[str, ModelFiles]  # by role, in the order of the kind's `models`
  builders: dict[str | None, pipeline.PromptBuilder]  # by evaluation view
  splits: splits.Splits  # exemplars, train, validation, test; prompts over the budget excluded
  skipped: dict[str, int]  # per split, examples whose prompt cannot fit data.max_source_len


def check_machine(cfg: ml_collections.ConfigDict, dtypes: dict[str, str]) -> None:
  """What the config asks of this machine: an attention implementation it runs, for the dtypes of its models
  (`dtypes`: by the config key of each model's path). Every config value on its own was checked by
  `validate.check` before the run started."""
  impl = cfg.model.attention_impl
  if impl not in ATTENTION_IMPLS[1:]:
    raise ValueError(f"model.attention_impl={impl!r} is unknown; expected one of {', '.join(ATTENTION_IMPLS[1:])}.")
  if impl == "cudnn":
    if jax.default_backend() != "gpu":
      raise ValueError(f"model.attention_impl='cudnn' needs an NVIDIA GPU, but JAX runs on "
                       f"{jax.default_backend()!r}; use --config.model.attention_impl=xla.")
    for key, dtype in dtypes.items():
      if dtype not in CUDNN_DTYPES:
        raise ValueError(f"model.attention_impl='cudnn' computes in {' or '.join(CUDNN_DTYPES)}, but the model of "
                         f"{key} is {dtype!r}; use --config.model.attention_impl=xla.")


def check_model(side: str, path: str, tokenizer_path: str = "") -> ModelFiles:
  """The config, the tokenizer and the stop ids of one checkpoint (a directory's config.json, or a .gguf file's
  metadata); its weights stay on disk. `tokenizer_path`: a checkpoint whose tokenizer replaces the model's own."""
  checkpoint = resolve_checkpoint_dir(path)
  config = read_config(checkpoint)
  tokenizer_dir = resolve_checkpoint_dir(tokenizer_path) if tokenizer_path else checkpoint
  tokenizer = load_tokenizer(tokenizer_dir, required=True)
  inputs.check_tokenizer(tokenizer_dir, tokenizer, config.vocab_size)
  if tokenizer.eos_token_id is None:
    raise ValueError(f"the {side} tokenizer ({checkpoint}) has no EOS token: an answer's end can be neither "
                     "learned nor detected; set eos_token in its tokenizer_config.json.")
  return ModelFiles(checkpoint, config, tokenizer, stop_token_ids(checkpoint, config, tokenizer))


def check_data(run: Run, kind: Kind, files: dict[str, ModelFiles]):
  """Both splits load (the test split first: it is the small one), validation is carved from train
  (`data/splits.py`), and every prompt fits the budget of every view or is skipped and counted
  (`prompts.fit_prompt`'s rule)."""
  cfg, d = run.cfg, run.cfg.data
  for path in (run.paths.test, run.paths.train):
    inputs.check_data_file(path)
  load = lambda split, path: load_split(d.dataset, split, path=path, hf_name=d.hf_name, hf_config=d.hf_config)
  test = load(d.test_split, run.paths.test)
  probed = sorted(set(cfg.eval.methods) & set(methods.PROBES))
  if probed and not all(e.probes for e in test):
    raise ValueError(f"eval.methods holds {probed}, which read each test question's probes, but "
                     f"{run.paths.test or d.hf_name} has rows without a 'probes' field; drop them from eval.methods "
                     "or use the toy complementary world (configs/toy_complementary.py)")
  train = load(d.train_split, run.paths.train)
  sp = splits.make(train, test, num_shots=d.num_shots, shot_seed=d.shot_seed,
                   validation_size=cfg.train.eval_num_samples, seed=d.validation_seed,
                   by_passage=kinds.get(d.dataset).shared_passages)
  builders = kind.builders(cfg, files, sp.exemplars)
  fits = lambda e: all(b.source_prompt(e) is not None for b in builders.values())
  kept = {name: tuple(e for e in getattr(sp, name) if fits(e)) for name in ("train", "validation", "test")}
  skipped = {name: len(getattr(sp, name)) - len(examples) for name, examples in kept.items()}
  if any(skipped.values()):
    logging.warning("skipped examples whose prompt without exemplars/extra paragraphs is over "
                    "data.max_source_len=%d tokens: %s", d.max_source_len, skipped)
  for name, examples in kept.items():
    if not examples:
      raise ValueError(f"no {name} example fits data.max_source_len={d.max_source_len} tokens; raise it.")
  sp = dataclasses.replace(sp, **kept)
  logging.info("data: %s", {name: part["size"] for name, part in sp.summary().items()})
  return builders, sp, skipped


def check(run: Run, kind: Kind) -> Checked:
  """The checks, in order; the first problem stops the run."""
  steps = []

  def step(name, fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    steps.append(f"{name} {time.perf_counter() - start:.1f}s")
    return out

  specs = kind.models(run.cfg)
  step("machine", check_machine, run.cfg, {spec.path_key: spec.dtype for spec in specs.values()})
  files = {role: step(f"{role} tokenizer", check_model, role, run.paths.models[role], spec.tokenizer)
           for role, spec in specs.items()}
  kind.check_models(run.cfg, files)
  builders, data_splits, skipped = step("data", check_data, run, kind, files)
  logging.info("preflight passed before any weight was read (%s)", ", ".join(steps))
  return Checked(files, builders, data_splits, skipped)
