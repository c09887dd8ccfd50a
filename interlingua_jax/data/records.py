"""Dataset records: GSM8K, HotpotQA (distractor) and the toy world, from local files or the hub.

Every record carries its own gold answer, taken from *its own* answer field when it is
loaded, so that nothing downstream can take a gold from a few-shot prefix (DESIGN.md §3.2).
"""
import dataclasses
import json
import os
from typing import Any

import datasets
import pyarrow.parquet as pq

from interlingua_jax import scoring

DATASETS = ("gsm8k", "hotpotqa", "toy")
FILE_FORMATS = (".jsonl", ".json", ".parquet")
CONTEXT_SEPARATOR = "\n\n"  # between HotpotQA's rendered paragraphs (the long-prompt rule drops whole ones)


@dataclasses.dataclass(frozen=True)
class Example:
  """One question. `answer` is the full target text (GSM8K: rationale + `#### n`);
  `gold` is what scoring compares against; `context` is HotpotQA's rendered paragraphs."""
  id: str
  question: str
  answer: str
  gold: str
  context: str | None = None


def load_split(dataset: str, split: str, *, path: str = "", hf_name: str = "",
               hf_config: str = "") -> list[Example]:
  """Loads one split from a local `.jsonl`/`.json`/`.parquet` file or, without a path, by name
  through `datasets`. Ids come from an `id` (or HotpotQA `_id`) field, else `<split>-<row>`."""
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)} (data.dataset)")
  if path:
    rows, where = _read_file(path), path
  else:
    rows, where = _read_hub(dataset, split, hf_name, hf_config), f"{hf_name} ({hf_config or 'default'}) {split}"
  if not rows:
    raise ValueError(f"{where}: the {split!r} split has no rows")
  examples = [_example(dataset, split, i, row, where) for i, row in enumerate(rows)]
  seen = {}
  for i, example in enumerate(examples):
    if example.id in seen:
      raise ValueError(f"{where}: rows {seen[example.id]} and {i} share the id {example.id!r}; ids must be unique")
    seen[example.id] = i
  return examples


def _path_key(split: str) -> str:
  return "data.train_path" if split == "train" else "data.test_path"


def _split_key(split: str) -> str:
  return "data.train_split" if split == "train" else "data.test_split"


def _read_hub(dataset: str, split: str, hf_name: str, hf_config: str) -> list[dict]:
  if not hf_name:
    raise ValueError(f"no file and no hub name for {dataset} split {split!r}: set {_path_key(split)} to a "
                     f"local {'/'.join(FILE_FORMATS)} file, or data.hf_name")
  try:
    loaded = datasets.load_dataset(hf_name, hf_config or None, split=split)
  except ValueError as e:  # `datasets` raises a bare ValueError("Unknown split ...") for a split it lacks
    raise ValueError(f"{hf_name!r} ({hf_config or 'default'}) has no split {split!r} ({e}); set "
                     f"{_split_key(split)} to one it has (HotpotQA distractor: train, validation), or "
                     f"{_path_key(split)} to a local file.") from None
  except OSError as e:  # ConnectionError when offline or unreachable; FileNotFoundError for an unknown name
    raise RuntimeError(
        f"could not load {hf_name!r} ({hf_config or 'default'}) split {split!r} through `datasets`: "
        f"{type(e).__name__}: {e}. Without network access, download the split once and set "
        f"{_path_key(split)} to the local {'/'.join(FILE_FORMATS)} file.") from e
  return loaded.to_list()


def _read_file(path: str) -> list[dict]:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"dataset file {path!r} does not exist (check data.train_path / data.test_path)")
  ext = os.path.splitext(path)[1].lower()
  if ext == ".parquet":
    return pq.read_table(path).to_pylist()
  if ext not in (".jsonl", ".json"):
    raise ValueError(f"dataset file {path!r}: unsupported format {ext!r}; use one of {', '.join(FILE_FORMATS)}")
  with open(path, encoding="utf-8") as f:
    text = f.read()
  if ext == ".json" and text.lstrip().startswith("["):  # a JSON array; otherwise JSON Lines, as `datasets` reads it
    try:
      rows = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"dataset file {path!r}: invalid JSON: {e}") from None
  else:
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


def _field(row: dict, name: str, i: int, where: str) -> Any:
  value = row.get(name)
  if value is None:
    raise ValueError(f"{where} row {i}: missing field {name!r} (fields present: {sorted(row)})")
  return value


def _text_field(row: dict, name: str, i: int, where: str) -> str:
  value = _field(row, name, i, where)
  if not isinstance(value, str) or not value.strip():
    raise ValueError(f"{where} row {i}: field {name!r} must be a non-empty string, got {value!r}")
  return value


def _example(dataset: str, split: str, i: int, row: dict, where: str) -> Example:
  question = _text_field(row, "question", i, where)
  answer = _text_field(row, "answer", i, where)
  raw_id = row.get("id", row.get("_id"))
  example_id = f"{split}-{i}" if raw_id is None else str(raw_id)
  if dataset == "hotpotqa":
    context = _render_context(_field(row, "context", i, where), i, where)
    return Example(example_id, question, answer, gold=answer.strip(), context=context)
  gold = scoring.extract_gsm8k(answer)  # this record's own answer field, nothing else
  if gold is None:
    raise ValueError(f"{where} row {i}: field 'answer' has no '#### <number>' line to take the gold "
                     f"answer from: {answer[-80:]!r}")
  return Example(example_id, question, answer, gold=gold)


def _render_context(context: Any, i: int, where: str) -> str:
  """Titled paragraphs separated by blank lines. Reads the HF distractor layout
  `{"title": [...], "sentences": [[...], ...]}` and the original files' `[[title, [sentences]], ...]`."""
  pairs = None
  if isinstance(context, dict):
    titles, sentences = context.get("title"), context.get("sentences")
    if isinstance(titles, list) and isinstance(sentences, list) and len(titles) == len(sentences):
      pairs = list(zip(titles, sentences))
  elif isinstance(context, list) and all(isinstance(p, list) and len(p) == 2 for p in context):
    pairs = [tuple(p) for p in context]
  if not pairs or not all(isinstance(t, str) and isinstance(s, list) and all(isinstance(x, str) for x in s)
                          for t, s in pairs):
    raise ValueError(f"{where} row {i}: field 'context' must be {{'title': [str], 'sentences': [[str]]}} with one "
                     f"sentence list per title (HotpotQA distractor format), got {str(context)[:120]!r}")
  # HotpotQA sentences carry their own leading spaces, so they join with "".
  return CONTEXT_SEPARATOR.join(f"{title}: {''.join(sentences).strip()}" for title, sentences in pairs)
