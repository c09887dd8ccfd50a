"""Reads a run directory's outputs (docs/CONTRACTS.md, "Run outputs"): the one reader used by the
evaluation's resume, the report, the analysis and the suite runner.

Tolerant where a run may legitimately be caught mid-write: a half-written last line of a
JSON-lines file (a crash, or a run still going) is skipped, and counted, never fatal.
"""
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

CONFIG = "config.json"
METRICS = "metrics.jsonl"
TRAIN_SUMMARY = "train_summary.json"
SAMPLES = os.path.join("eval", "samples.jsonl")
AGGREGATE = os.path.join("eval", "aggregate.json")
COMPRESSION = os.path.join("compression", "compression.json")
DONE = "DONE"


def write_json(path: str | Path, value: Any) -> None:
  """Writes whole or not at all (a temporary file, then a rename): another process reading `path` at the
  same moment, e.g. a second host checking a workdir's config.json, sees the old file or the new one."""
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2)
  os.replace(tmp, path)


def write_jsonl(path: str | Path, rows: Any) -> None:
  """JSON lines, written whole or not at all like `write_json`."""
  tmp = f"{path}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.writelines(json.dumps(row) + "\n" for row in rows)
  os.replace(tmp, path)


def is_number(x: Any) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def is_done(run_dir: str | Path) -> bool:
  """Every stage of the run finished (main writes DONE last)."""
  return os.path.exists(os.path.join(run_dir, DONE))


def read_jsonl_counted(path: str | Path) -> tuple[list[dict], int]:
  """The JSON objects of a JSON-lines file ([] if absent) and how many unreadable lines were skipped."""
  rows, bad = [], 0
  if not os.path.exists(path):
    return rows, bad
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        bad += 1
        continue
      if isinstance(row, dict):
        rows.append(row)
      else:
        bad += 1
  if bad:
    logging.warning("%s: skipped %d unreadable line(s) (an interrupted write)", path, bad)
  return rows, bad


def read_jsonl(path: str | Path) -> list[dict]:
  return read_jsonl_counted(path)[0]


def read_json(path: str | Path) -> dict | None:
  """A JSON object, or None if the file is absent. A file that is not a JSON object is a ValueError."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    data = json.load(f)
  if not isinstance(data, dict):
    raise ValueError(f"{path} holds a {type(data).__name__}, not a JSON object")
  return data


def _last_per_step(rows: list[dict]) -> list[dict]:
  """A resumed run may log a step twice; the later row is the one that counts."""
  by_step = {}
  for row in rows:
    by_step[row["step"]] = row
  return [by_step[s] for s in sorted(by_step)]


def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict], int]:
  """metrics.jsonl as train rows (a numeric `loss`) and eval rows (a numeric `bridged_accuracy`), one per
  step, and the number of unreadable rows skipped."""
  rows, bad = read_jsonl_counted(os.path.join(run_dir, METRICS))
  stepped = [r for r in rows if is_number(r.get("step"))]
  train = [r for r in stepped if is_number(r.get("loss"))]
  evals = [r for r in stepped if is_number(r.get("bridged_accuracy"))]
  return _last_per_step(train), _last_per_step(evals), bad + len(rows) - len(stepped)


def flatten(mapping, prefix: str = "") -> dict:
  """Dotted keys for nested mappings (dicts, ConfigDicts), so overrides may be written either way."""
  out = {}
  for key, value in mapping.items():
    dotted = f"{prefix}{key}"
    if hasattr(value, "items") and hasattr(value, "keys"):
      out.update(flatten(value, dotted + "."))
    else:
      out[dotted] = value
  return out


def save_figure(fig, out_dir, stem: str) -> list[str]:
  """`fig` as `<stem>.pdf` and `<stem>.png` in `out_dir`, then closed; the file names."""
  import matplotlib.pyplot as plt  # loaded only where figures are drawn
  files = []
  for ext in ("pdf", "png"):
    fig.savefig(os.path.join(out_dir, f"{stem}.{ext}"), dpi=150, bbox_inches="tight")
    files.append(f"{stem}.{ext}")
  plt.close(fig)
  return files
