"""The one protocol a bridge kind implements; `run.experiment` runs any kind through it.

A kind is a package under `bridges/` with one object implementing `Kind`, named in `bridges/__init__.py` (the
registry) and chosen by `bridge.kind`. The pipeline owns everything the kinds share: config checks, preflight,
loading, the train loop with checkpoints and exact resume, the evaluation harness, the wire analysis, reports.
A kind says only what differs:

  name, section      `bridge.kind`, and its config section (compared between runs of this kind only)
  rules, check       its config keys' rules and the relations between them
  num_soft_tokens    M, the soft tokens it hands the target
  models, builders   the frozen LMs it reads (by role) and the prompt of each evaluation view
  check_models       what its LMs' configs must satisfy, before any weight is read
  new_module         its trainable module, sized for the loaded LMs
  training           its training rows, its loss of the module, the frozen params (and their shardings)
  contexts           the evaluation views of a trained module: {label: Context with the kind's soft source, or
                     its cache source where the bridge rewrites the target's KV cache};
                     one unlabelled view (None), or one per target
  method_contexts    the contexts of the methods only it can run (`methods`), e.g. a PCA baseline's
  stages             extra --mode stages (e.g. diagnostics of a trained module)
  added_keys,        its config keys added, or renamed, after runs were saved: a saved config.json still
  renamed_keys       loads and compares equal to the config that trained it
"""
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import ml_collections
from flax import nnx
from jax.sharding import Mesh

from interlingua_jax.core.context import Run
from interlingua_jax.core.rules import Rule
from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.evaluation import methods
from interlingua_jax.evaluation.context import CacheSource, Context, Decoding, SoftSource
from interlingua_jax.models.frozen import Frozen, FrozenLM, ModelFiles
from interlingua_jax.training.step import Loss


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One frozen LM a kind reads, as the config names it."""
  path: str  # a checkpoint directory, hub id, .gguf file or zoo: name ('' where the toy world builds it)
  dtype: str
  path_key: str  # the config key that holds `path` (for errors, and the run's record of what it read)
  tokenizer: str = ""  # a checkpoint whose tokenizer replaces the model's own ('' = its own)


@dataclasses.dataclass
class Setup:
  """What every stage reads: the frozen LMs on the mesh, each view's prompt builder, and the splits."""
  models: dict[str, FrozenLM]  # by role, in the order of `Kind.models`
  builders: dict[str | None, pipeline.PromptBuilder]  # by evaluation view
  mesh: Mesh
  train: list[Example]  # what the bridge trains on: the train split without exemplars and validation
  validation: list[Example]  # carved from train: every decision in training
  test: list[Example]  # evaluated once, at the end
  splits: dict  # sizes and id hashes of every split
  skipped: dict  # per split, questions whose prompt is over data.max_source_len


@dataclasses.dataclass(frozen=True)
class Training:
  """A kind's part of training; the pipeline adds the optimizer, the data order, the loop and checkpoints."""
  rows: list[dict]  # the encoded training examples (`pipeline.train_dataset`'s input)
  loss: Loss  # (module, frozen_params, batch, step) -> (loss, metrics)
  frozen_params: Any
  frozen_shardings: Any  # the frozen params' shardings on the mesh
  parts: Mapping[str, pipeline.PaddedPart]  # the row fields cut to length buckets
  source_states: Any = None  # precomputed source states of `rows` (`train.cache_source_states`), or None
  summary: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # extra fields of the training summary


class Kind(Protocol):
  name: str
  section: str
  rules: Mapping[str, Rule]
  methods: tuple[str, ...]
  stages: Mapping[str, Callable[[Run, Setup], Any]]
  added_keys: Mapping[str, Any]  # its config keys added after runs were saved, with the value those runs had
  renamed_keys: Mapping[str, str]  # old key -> new key, so a config.json saved before a rename still loads

  def check(self, cfg: ml_collections.ConfigDict) -> None: ...

  def num_soft_tokens(self, cfg: ml_collections.ConfigDict) -> int: ...

  def models(self, cfg: ml_collections.ConfigDict) -> dict[str, ModelSpec]: ...

  def check_models(self, cfg: ml_collections.ConfigDict, files: Mapping[str, ModelFiles]) -> None: ...

  def builders(self, cfg: ml_collections.ConfigDict, files: Mapping[str, ModelFiles],
               exemplars: tuple[Example, ...]) -> dict[str | None, pipeline.PromptBuilder]: ...

  def new_module(self, run: Run, setup: Setup) -> nnx.Module: ...

  def training(self, run: Run, setup: Setup) -> Training: ...

  def contexts(self, run: Run, setup: Setup, module: tuple | None) -> dict[str | None, Context]: ...

  def method_contexts(self, run: Run, setup: Setup, label: str | None, ctx: Context) -> dict[str, Context]: ...


def decoding(cfg: ml_collections.ConfigDict) -> Decoding:
  e = cfg.eval
  return Decoding(max_new_tokens=e.max_new_tokens, stop_strings=tuple(e.stop_strings), batch_size=e.batch_size,
                  length_buckets=tuple(e.length_buckets), repetition_penalty=e.repetition_penalty,
                  no_repeat_ngram_size=e.no_repeat_ngram_size)


def make_context(run: Run, setup: Setup, *, frozen: Frozen, builder: pipeline.PromptBuilder, num_soft_tokens: int,
                 soft_source: SoftSource | None, labels: tuple[tuple[str, str], ...] = (),
                 cache_source: CacheSource | None = None) -> Context:
  """An evaluation view of a kind: its LMs, prompt and soft source, with what every view shares from the config
  (decoding, the controls' seed, the prior baseline's table of the training answers)."""
  return Context(frozen, builder, run.cfg.data.answer_anchor, num_soft_tokens, decoding(run.cfg), setup.mesh,
                 soft_source=soft_source, cache_source=cache_source, control_seed=run.cfg.eval.control_seed,
                 labels=labels,
                 prior=methods.prior_answers(setup.train + setup.validation))
