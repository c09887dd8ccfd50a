"""The runs of a suite, loaded from their saved outputs (through `interlingua_jax.core.outputs`) and summarised.

A missing or unreadable piece is named in the run's `problems` and skipped, never fatal. Runs of
one suite entry trained with several seeds (`<name>_s<seed>`, see `ablations`) form a group whose
headline numbers are reported per seed and as mean ± sd with an interval across seeds.
"""
import dataclasses
import json
from pathlib import Path
from typing import Any

from interlingua_jax.core import outputs, stats

_RUN_MARKERS = (outputs.CONFIG, outputs.METRICS, outputs.TRAIN_SUMMARY, "run.log", outputs.DONE, "eval")


@dataclasses.dataclass
class Run:
  """What one run directory holds; absent pieces stay None/empty and are named in `problems`."""
  name: str
  path: Path
  group: str = ""  # the suite entry it belongs to (its name without the seed suffix)
  seed: int | None = None
  done: bool = False
  config: dict | None = None
  train_rows: list[dict] = dataclasses.field(default_factory=list)
  eval_rows: list[dict] = dataclasses.field(default_factory=list)
  train_summary: dict | None = None
  aggregate: dict | None = None
  compression: dict | None = None
  world: dict | None = None  # a toy world's info.json (bits per question, chance), found beside its test data
  answers: dict[str, list] = dataclasses.field(default_factory=dict)  # per method, the extracted answers
  problems: list[str] = dataclasses.field(default_factory=list)


def fixes_label(fixes: bool | None) -> str:
  return {True: "with fixes", False: "no fixes", None: "fixes unknown"}[fixes]


def _dig(d: dict | None, dotted: str) -> Any:
  for key in dotted.split("."):
    if not isinstance(d, dict) or key not in d:
      return None
    d = d[key]
  return d


def _read_json(run_dir: Path, rel: str, problems: list[str]) -> dict | None:
  try:
    data = outputs.read_json(run_dir / rel)
  except (OSError, ValueError) as e:
    problems.append(f"unreadable {run_dir / rel}: {e}")
    return None
  if data is None:
    problems.append(f"missing {rel}")
  return data


def _entries_error(data: dict, rel: str, key: str, fields: tuple[str, ...]) -> str | None:
  """None when `data[key]` is a non-empty object whose every entry has numeric `fields`; else what is wrong."""
  entries = data.get(key)
  if not isinstance(entries, dict) or not entries:
    return f"{rel} has no `{key}` object"
  for name, entry in entries.items():
    if not isinstance(entry, dict) or not all(outputs.is_number(entry.get(f)) for f in fields):
      return f"{rel}: {key} entry {name!r} lacks numeric {'/'.join(fields)}"
  return None


def _targets_error(data: dict, rel: str) -> str | None:
  """None when every target's table of a latent kind's aggregate has methods with numeric F1."""
  targets = data.get("targets")
  if not isinstance(targets, dict) or not targets:
    return f"{rel} has no `targets` object"
  errors = (_entries_error(table if isinstance(table, dict) else {}, f"{rel} (target {name!r})", "methods", ("f1",))
            for name, table in targets.items())
  return next((e for e in errors if e), None)


def load_run(name: str, path: Path, group: str = "", seed: int | None = None) -> Run:
  run = Run(name=name, path=path, group=group or name, seed=seed)
  if not path.is_dir():
    run.problems.append(f"not started: no directory {path}")
    return run
  run.done = outputs.is_done(path)
  if not run.done:
    run.problems.append(f"no DONE: the run failed or is unfinished (see {path / 'run.log'})")
  if not any((path / f).exists() for f in (outputs.CONFIG, outputs.METRICS, "eval")):
    run.problems.append("no outputs at all: it failed (or is still starting) before training")
    return run
  run.config = _read_json(path, outputs.CONFIG, run.problems)
  if not (path / outputs.METRICS).exists():
    run.problems.append(f"missing {outputs.METRICS}")
  run.train_rows, run.eval_rows, bad = outputs.read_metrics(path)
  if bad:
    run.problems.append(f"{outputs.METRICS}: skipped {bad} unreadable row(s)")
  if (path / outputs.METRICS).exists() and not run.eval_rows:
    run.problems.append(f"{outputs.METRICS} has no eval rows (bridged_accuracy)")
  run.train_summary = _read_json(path, outputs.TRAIN_SUMMARY, run.problems)
  if not (path / outputs.AGGREGATE).exists() or "targets" not in (outputs.read_json(path / outputs.AGGREGATE) or {}):
    checks = (("aggregate", outputs.AGGREGATE, lambda d, rel: _entries_error(d, rel, "methods", ("accuracy",))),
              ("compression", outputs.COMPRESSION,
               lambda d, rel: _entries_error(d, rel, "levels", ("packet_bytes", "accuracy"))))
  else:  # one table per target (the sweep's, views.py), and a wire analysis per target under compression/<name>/
    checks = (("aggregate", outputs.AGGREGATE, _targets_error),)
  for attr, rel, check in checks:
    data = _read_json(path, rel, run.problems)
    error = check(data, rel) if data is not None else None
    if error:
      run.problems.append(error)
      data = None
    setattr(run, attr, data)
  test_path = _dig(run.config, "data.test_path")
  if test_path and (Path(test_path).parent / "info.json").exists():
    run.world = outputs.read_json(Path(test_path).parent / "info.json")
  for row in outputs.read_jsonl(path / outputs.SAMPLES) if (path / outputs.SAMPLES).exists() else ():
    run.answers.setdefault(row["method"], []).append(row.get("extracted"))
  return run


def find_runs(root: Path) -> list[dict]:
  """The runs the suite asked for (suite.json: name, group, seed), else every subdirectory that looks like a run."""
  if not root.is_dir():
    raise ValueError(f"--root={root}: no such directory; pass a suite root such as "
                     "DIR/20250101_120000")
  record = root / "suite.json"
  if record.exists():
    try:
      entries = [{"name": str(e["name"]), "group": str(e.get("group") or e["name"]), "seed": e.get("seed")}
                 for e in json.loads(record.read_text())["experiments"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
      raise ValueError(f"{record} is not a suite record written by interlingua_jax.ablations "
                       f"({e!r}); remove it to analyse every run directory instead") from e
  else:
    entries = [{"name": p.name, "group": p.name, "seed": None} for p in sorted(root.iterdir())
               if p.is_dir() and p.name != "analysis" and any((p / m).exists() for m in _RUN_MARKERS)]
  if not entries:
    raise ValueError(f"no runs under {root}: a run directory holds config.json, metrics.jsonl "
                     "or run.log; pass the timestamped suite root, not its parent")
  return [dict(e, path=root / e["name"]) for e in entries]


def summarize(run: Run) -> dict[str, Any]:
  """One run's entry in ablation_results.json."""
  infonce = _dig(run.config, "loss.infonce_weight")
  early_stop = _dig(run.config, "train.early_stopping")
  fixes = None if infonce is None or early_stop is None else bool(infonce > 0 and early_stop)
  out = {
      "name": run.name, "group": run.group, "seed": run.seed, "path": str(run.path), "complete": run.done,
      "problems": run.problems,
      "dataset": _dig(run.config, "data.dataset") or _dig(run.aggregate, "dataset"),
      "num_soft_tokens": _dig(run.aggregate, "num_soft_tokens") or _dig(run.compression, "num_soft_tokens"),
      "fixes": fixes,
  }
  if run.world:
    out["bits_per_question"] = run.world.get("bits_per_question")
  latent_answers = run.answers.get("latent")
  if latent_answers:  # a collapsed bridge answers everything alike: few distinct answers, one of them dominant
    out["distinct_answers"] = len(set(latent_answers))
    out["top_answer_share"] = max(latent_answers.count(a) for a in set(latent_answers)) / len(latent_answers)
  for key in ("soft_rms", "soft_similarity"):  # the collapse diagnostics, last logged value
    logged = [r[key] for r in run.train_rows if outputs.is_number(r.get(key))]
    if logged:
      out[f"final_{key}"] = logged[-1]
  if run.eval_rows:
    peak = max(run.eval_rows, key=lambda r: r["bridged_accuracy"])  # earliest step on ties
    final = run.eval_rows[-1]
    out.update(peak_accuracy=peak["bridged_accuracy"], peak_step=peak["step"],
               final_accuracy=final["bridged_accuracy"], final_step=final["step"],
               degradation=peak["bridged_accuracy"] - final["bridged_accuracy"])
  summary = run.train_summary or {}
  if "final_soft_rms" in out and summary.get("target_embedding_rms"):  # ~1 when calibrated; the seeds saw ~100x
    out["soft_rms_ratio"] = out["final_soft_rms"] / summary["target_embedding_rms"]
  last_train_step = run.train_rows[-1]["step"] if run.train_rows else None
  out["steps_run"] = summary.get("final_step", last_train_step)
  out["best_step"] = summary.get("best_step", out.get("peak_step"))
  out["stopped_early"] = summary.get("stopped_early")
  if run.aggregate:
    for key in ("methods", "comparisons", "kv_saving", "throughput", "scenario", "num_questions", "routing",
                "bridge_summary"):
      out[key] = run.aggregate.get(key)
  if run.compression:
    out["compression"] = {k: run.compression.get(k) for k in
                          ("num_samples", "text_bytes_mean", "text_tokens_mean", "levels")}
  return out


def headline(result: dict) -> dict[str, float]:
  """A run's headline numbers: every method's accuracy and the training curve's peak, final and degradation."""
  out = {f"{m}_accuracy": v["accuracy"] for m, v in (result.get("methods") or {}).items()
         if outputs.is_number(v.get("accuracy"))}
  out.update({k: result[k] for k in ("peak_accuracy", "final_accuracy", "degradation") if k in result})
  return out


def across_seeds(results: list[dict]) -> dict[str, dict]:
  """Per group: for each headline number, the per-seed values, mean, sd and a t interval across seeds."""
  groups: dict[str, list[dict]] = {}
  for r in results:
    groups.setdefault(r["group"], []).append(r)
  out = {}
  for group, members in groups.items():
    numbers = [headline(r) for r in members]
    keys = sorted({k for n in numbers for k in n})
    out[group] = {"seeds": [r["seed"] for r in members], "runs": [r["name"] for r in members], "numbers": {}}
    for key in keys:
      have = [(r["seed"], n[key]) for r, n in zip(members, numbers) if key in n]
      out[group]["numbers"][key] = {"per_seed": {str(s): v for s, v in have},
                                    **stats.mean_sd_interval([v for _, v in have])}
  return out
