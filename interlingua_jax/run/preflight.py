"""Everything a run can check before the first weight is read: machine → tokenizers → data.

A real run loads two 8B models (minutes of a GPU reservation) before it can fail on anything
they hold; whatever the tokenizers, config.json files and data splits can tell is checked
here first, each problem raised as one line that names it and its fix. `run` is a plain list
of steps, so a new check is one more line; each step logs how long it took.
"""
import dataclasses
import logging
import time

import jax
import ml_collections

from interlingua_jax.bridges.translator import bridge
from interlingua_jax.evaluation import methods
from interlingua_jax.models import inputs
from interlingua_jax.data import kinds, pipeline, splits
from interlingua_jax.data.records import load_split
from interlingua_jax.models import DecoderConfig
from interlingua_jax.models.decoder import ATTENTION_IMPLS
from interlingua_jax.models.loading import load_tokenizer, read_config, resolve_checkpoint_dir, stop_token_ids

CUDNN_DTYPES = ("bfloat16", "float16")  # what cuDNN's fused attention computes in


@dataclasses.dataclass(frozen=True)
class Model:
  """One frozen LM as far as it is known without its weights."""
  directory: str
  config: DecoderConfig
  tokenizer: object
  stop_ids: tuple[int, ...]  # every id that ends its generation


@dataclasses.dataclass(frozen=True)
class Checked:
  source: Model
  target: Model
  source_layer: int  # resolved HF hidden-state index
  builder: pipeline.PromptBuilder
  splits: splits.Splits  # exemplars, train, validation, test; prompts over the budget excluded
  skipped: dict[str, int]  # per split, examples whose prompt cannot fit data.max_source_len


def check_machine(cfg: ml_collections.ConfigDict) -> None:
  """What the config asks of this machine: an attention implementation it runs. (Every config value on
  its own was checked by `validate.check` before the run started.)"""
  impl = cfg.model.attention_impl
  if impl not in ATTENTION_IMPLS[1:]:
    raise ValueError(f"model.attention_impl={impl!r} is unknown; expected one of {', '.join(ATTENTION_IMPLS[1:])}.")
  if impl == "cudnn":
    if jax.default_backend() != "gpu":
      raise ValueError(f"model.attention_impl='cudnn' needs an NVIDIA GPU, but JAX runs on "
                       f"{jax.default_backend()!r}; use --config.model.attention_impl=xla.")
    for side in ("source", "target"):
      if cfg[side].dtype not in CUDNN_DTYPES:
        raise ValueError(f"model.attention_impl='cudnn' computes in {' or '.join(CUDNN_DTYPES)}, but "
                         f"{side}.dtype={cfg[side].dtype!r}; use --config.model.attention_impl=xla.")


def check_model(side: str, path: str) -> Model:
  """The config, the tokenizer and the stop ids of one checkpoint (a directory's config.json, or a .gguf file's
  metadata); its weights stay on disk."""
  checkpoint = resolve_checkpoint_dir(path)
  config = read_config(checkpoint)
  tokenizer = load_tokenizer(checkpoint, required=True)
  inputs.check_tokenizer(checkpoint, tokenizer, config.vocab_size)
  if tokenizer.eos_token_id is None:
    raise ValueError(f"the {side} tokenizer ({checkpoint}) has no EOS token: an answer's end can be neither "
                     "learned nor detected; set eos_token in its tokenizer_config.json.")
  return Model(checkpoint, config, tokenizer, stop_token_ids(checkpoint, config, tokenizer))


def check_data(cfg: ml_collections.ConfigDict, source: Model, target: Model):
  """Both splits load (the test split first: it is the small one), validation is carved from train
  (`data/splits.py`), and every prompt fits the budget or is skipped and counted (`prompts.fit_prompt`'s rule)."""
  d = cfg.data
  for path in (d.test_path, d.train_path):
    inputs.check_data_file(path)
  load = lambda split, path: load_split(d.dataset, split, path=path, hf_name=d.hf_name, hf_config=d.hf_config)
  test = load(d.test_split, d.test_path)
  probed = sorted(set(cfg.eval.methods) & set(methods.PROBES))
  if probed and not all(e.probes for e in test):
    raise ValueError(f"eval.methods holds {probed}, which read each test question's probes, but "
                     f"{d.test_path or d.hf_name} has rows without a 'probes' field; drop them from eval.methods "
                     "or use the toy complementary world (configs/toy_complementary.py)")
  train = load(d.train_split, d.train_path)
  sp = splits.make(train, test, num_shots=d.num_shots, shot_seed=d.shot_seed,
                   validation_size=cfg.train.eval_num_samples, seed=d.validation_seed,
                   by_passage=kinds.get(d.dataset).shared_passages)
  builder = pipeline.PromptBuilder(d.dataset, sp.exemplars, source.tokenizer, target.tokenizer,
                                   d.max_source_len, d.chat_template,
                                   bridge_shots=None if d.bridge_shots < 0 else d.bridge_shots)
  kept = {name: tuple(e for e in getattr(sp, name) if builder.source_prompt(e) is not None)
          for name in ("train", "validation", "test")}
  skipped = {name: len(getattr(sp, name)) - len(examples) for name, examples in kept.items()}
  if any(skipped.values()):
    logging.warning("skipped examples whose prompt without exemplars/extra paragraphs is over "
                    "data.max_source_len=%d tokens: %s", d.max_source_len, skipped)
  for name, examples in kept.items():
    if not examples:
      raise ValueError(f"no {name} example fits data.max_source_len={d.max_source_len} tokens; raise it.")
  sp = dataclasses.replace(sp, **kept)
  logging.info("data: %s", {name: part["size"] for name, part in sp.summary().items()})
  return builder, sp, skipped


def run(cfg: ml_collections.ConfigDict) -> Checked:
  """The checks, in order; the first problem stops the run."""
  steps = []

  def step(name, fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    steps.append(f"{name} {time.perf_counter() - start:.1f}s")
    return out

  step("machine", check_machine, cfg)
  source = step("source tokenizer", check_model, "source", cfg.source.path)
  target = step("target tokenizer", check_model, "target", cfg.target.path)
  layer = bridge.resolve_layer(cfg.source.layer, source.config.num_layers)
  builder, data_splits, skipped = step("data", check_data, cfg, source, target)
  logging.info("preflight passed before any weight was read (%s)", ", ".join(steps))
  return Checked(source, target, layer, builder, data_splits, skipped)
