"""The dataset registry: each dataset is ONE `Dataset` description that loading, prompting, scoring and
aggregation read by name (`data.dataset`), so adding a dataset touches no other module (docs/DESIGN.md §5).

The built-in descriptions (`data/builtin.py`: gsm8k, hotpotqa, toy; `data/squad.py`: squad) are written
with the records, prompts and scoring modules, which themselves read this registry; they are imported on
the first lookup, not here, so that this module depends on nothing of the project.
"""
import dataclasses
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from interlingua_jax.core import registry

_BUILTIN_MODULES = ("interlingua_jax.data.builtin", "interlingua_jax.data.squad")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What the pipeline needs to know about one dataset.

  example: one raw row (`records.Row`, whose errors name file, row and field) -> `records.Example`, its
    gold(s) taken from that row's own answer field (docs/DESIGN.md §3.2).
  prompt: (example, exemplars) -> the evaluation prompt; raise ValueError for exemplars it cannot take.
  shorter: (example, exemplars) -> the (example, exemplars) variants to try, longest first (the
    long-prompt rule of `prompts.fit_prompt`); the question itself is never cut.
  score: (prediction, golds) -> {"correct": bool, "extracted": ..., **{m: float for m in metrics}}.
  metrics: the extra per-sample metrics `score` returns, averaged with bootstrap intervals in the summary.
  unnest: a whole-file JSON object (e.g. SQuAD's official `{"data": [...]}`) -> flat rows; None: no such layout.
  hub_splits: the splits of its usual hub copy, named in the error for a missing split.
  shared_passages: many questions share one passage (SQuAD's paragraphs): validation is carved by whole passages.
  """
  name: str
  example: Callable[[Any], Any]
  prompt: Callable[[Any, Sequence[Any]], str]
  shorter: Callable[[Any, Sequence[Any]], Iterator[tuple[Any, Sequence[Any]]]]
  score: Callable[[str, tuple[str, ...]], dict]
  metrics: tuple[str, ...] = ()
  unnest: Callable[[dict], list[dict]] | None = None
  hub_splits: str = ""
  shared_passages: bool = False


REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
  return registry.add(REGISTRY, dataset, "dataset")


def names() -> tuple[str, ...]:
  """The registered dataset names, built-ins first in registration order."""
  for module in _BUILTIN_MODULES:
    importlib.import_module(module)
  return tuple(REGISTRY)


def get(name: str) -> Dataset:
  names()  # the built-ins register on import
  return registry.find(REGISTRY, name, "dataset", "data.dataset")
