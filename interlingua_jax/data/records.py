"""Dataset records, from local files or the hub: the reading every dataset shares, and `Row`, the view
through which a dataset's description (`data/kinds.py`) turns one raw row into an `Example`.

Every record carries its own gold answer, taken from *its own* answer field when it is
loaded, so that nothing downstream can take a gold from a few-shot prefix (docs/DESIGN.md §3.2).
"""
import dataclasses
import json
import os
from typing import Any

import datasets
import pyarrow.parquet as pq

from interlingua_jax.data import kinds

FILE_FORMATS = (".jsonl", ".json", ".parquet")
CONTEXT_SEPARATOR = "\n\n"  # between HotpotQA's rendered paragraphs (the long-prompt rule drops whole ones)


@dataclasses.dataclass(frozen=True)
class Example:
  """One question. `answer` is the full target text (GSM8K: rationale + `#### n`); `gold` is what
  scoring compares against and `golds` every accepted answer (SQuAD has several; `gold` is the first,
  shown in records); `context` is the passage (HotpotQA's rendered paragraphs, SQuAD's paragraph)."""
  id: str
  question: str
  answer: str
  gold: str
  context: str | None = None
  golds: tuple[str, ...] = ()
  # Near-duplicate group (a toy problem, a SQuAD article): the intervals resample whole clusters. Defaults to the
  # id (every question its own cluster).
  cluster: str = ""
  # What the knowledge-free `prior` baseline may condition on (e.g. a toy question's change without its private
  # count): it answers with the most common training gold of the same key; None = the overall most common gold.
  prior_key: str | None = None
  # Named texts and facts that the toy complementary world's controls read (`methods.PROBES`), as (name, text).
  probes: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    if not self.golds:  # one gold: the common case, written without repeating it
      object.__setattr__(self, "golds", (self.gold,))
    elif self.golds[0] != self.gold:
      raise ValueError(f"example {self.id!r}: golds must start with gold {self.gold!r}, got {self.golds!r}")
    if not self.cluster:
      object.__setattr__(self, "cluster", self.id)

  def probe(self, name: str) -> str:
    """A named probe text of this question; a clear error when its data file did not write one."""
    for key, text in self.probes:
      if key == name:
        return text
    raise ValueError(f"question {self.id!r} has no {name!r} probe: the methods that read probes need data rows "
                     f"with a 'probes' object holding {name!r} (the toy complementary world, "
                     "toy.world.task.lookup=True, writes them)")


@dataclasses.dataclass(frozen=True)
class Row:
  """One raw row and where it came from, so that a dataset's parser names file, row and field in its errors."""
  values: dict
  index: int
  where: str
  split: str

  @property
  def id(self) -> str:
    """From an `id` (or HotpotQA `_id`) field, else `<split>-<row>`."""
    raw = self.values.get("id", self.values.get("_id"))
    return f"{self.split}-{self.index}" if raw is None else str(raw)

  def error(self, message: str) -> ValueError:
    return ValueError(f"{self.where} row {self.index}: {message}")

  def field(self, name: str) -> Any:
    value = self.values.get(name)
    if value is None:
      raise self.error(f"missing field {name!r} (fields present: {sorted(self.values)})")
    return value

  def text(self, name: str) -> str:
    value = self.field(name)
    if not isinstance(value, str) or not value.strip():
      raise self.error(f"field {name!r} must be a non-empty string, got {value!r}")
    return value


def load_split(dataset: str, split: str, *, path: str = "", hf_name: str = "",
               hf_config: str = "") -> list[Example]:
  """Loads one split from a local `.jsonl`/`.json`/`.parquet` file or, without a path, by name
  through `datasets`, each row read by the dataset's registered description. Ids come from an `id`
  (or HotpotQA `_id`) field, else `<split>-<row>`."""
  kind = kinds.get(dataset)
  if path:
    rows, where = _read_file(path, kind.unnest), path
  else:
    rows, where = _read_hub(kind, split, hf_name, hf_config), f"{hf_name} ({hf_config or 'default'}) {split}"
  if not rows:
    raise ValueError(f"{where}: the {split!r} split has no rows")
  examples = [_with_shared_fields(kind.example(Row(row, i, where, split)), Row(row, i, where, split))
              for i, row in enumerate(rows)]
  seen = {}
  for i, example in enumerate(examples):
    if example.id in seen:
      raise ValueError(f"{where}: rows {seen[example.id]} and {i} share the id {example.id!r}; ids must be unique")
    seen[example.id] = i
  return examples


def _with_shared_fields(example: Example, row: Row) -> Example:
  """The optional fields every dataset's rows may carry (`cluster`, `prior_key`, `probes`), read the same way for
  all; a dataset's own parser may already have set `cluster` (SQuAD: the article), which a row's field overrides."""
  fields = {}
  for name in ("cluster", "prior_key"):
    if row.values.get(name) is not None:
      fields[name] = row.text(name)
  probes = row.values.get("probes")
  if probes is not None:
    if not isinstance(probes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in probes.items()):
      raise row.error(f"field 'probes' must be an object of strings (name -> text), got {str(probes)[:120]!r}")
    fields["probes"] = tuple(sorted(probes.items()))
  return dataclasses.replace(example, **fields) if fields else example


def _path_key(split: str) -> str:
  return "data.train_path" if split == "train" else "data.test_path"


def _split_key(split: str) -> str:
  return "data.train_split" if split == "train" else "data.test_split"


def _read_hub(kind: kinds.Dataset, split: str, hf_name: str, hf_config: str) -> list[dict]:
  if not hf_name:
    raise ValueError(f"no file and no hub name for {kind.name} split {split!r}: set {_path_key(split)} to a "
                     f"local {'/'.join(FILE_FORMATS)} file, or data.hf_name")
  try:
    loaded = datasets.load_dataset(hf_name, hf_config or None, split=split)
  except ValueError as e:  # `datasets` raises a bare ValueError("Unknown split ...") for a split it lacks
    raise ValueError(f"{hf_name!r} ({hf_config or 'default'}) has no split {split!r} ({e}); set "
                     f"{_split_key(split)} to one it has ({kind.hub_splits or 'see the dataset card'}), or "
                     f"{_path_key(split)} to a local file.") from None
  except OSError as e:  # ConnectionError when offline or unreachable; FileNotFoundError for an unknown name
    raise RuntimeError(
        f"could not load {hf_name!r} ({hf_config or 'default'}) split {split!r} through `datasets`: "
        f"{type(e).__name__}: {e}. Without network access, download the split once and set "
        f"{_path_key(split)} to the local {'/'.join(FILE_FORMATS)} file.") from e
  return loaded.to_list()


def _read_file(path: str, unnest=None) -> list[dict]:
  """Rows of a `.parquet`, JSON Lines or JSON-array file; with `unnest`, a `.json` holding one whole
  object (SQuAD's official layout) is read whole and flattened by it."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"dataset file {path!r} does not exist (check data.train_path / data.test_path)")
  ext = os.path.splitext(path)[1].lower()
  if ext == ".parquet":
    return pq.read_table(path).to_pylist()
  if ext not in (".jsonl", ".json"):
    raise ValueError(f"dataset file {path!r}: unsupported format {ext!r}; use one of {', '.join(FILE_FORMATS)}")
  with open(path, encoding="utf-8") as f:
    text = f.read()
  document = _json_document(text, path) if ext == ".json" else None
  if isinstance(document, list):
    rows = document
  elif isinstance(document, dict) and unnest is not None:
    rows = unnest(document)
  else:  # JSON Lines, as `datasets` reads a .json file too
    rows = []
    for line_no, line in enumerate(text.splitlines(), 1):
      if line.strip():
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f"dataset file {path!r} line {line_no}: invalid JSON: {e}") from None
  for i, row in enumerate(rows):
    if not isinstance(row, dict):
      raise ValueError(f"dataset file {path!r} row {i}: expected a JSON object, got {type(row).__name__}")
  return rows


def _json_document(text: str, path: str) -> list | dict | None:
  """The file as one JSON array or object, or None when it is JSON Lines (several objects)."""
  start = text.lstrip()[:1]
  if start not in ("[", "{"):
    return None
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    if start == "[":
      raise ValueError(f"dataset file {path!r}: invalid JSON: {e}") from None
    return None  # several objects, one a line (or a broken line, which the JSON Lines reader names)
