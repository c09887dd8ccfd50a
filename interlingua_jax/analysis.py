r"""Turns a suite's saved run outputs into the paper's figures, LaTeX tables and a summary.

  python -m interlingua_jax.analysis --root=/runs/20250101_120000

Reads only what the runs saved (docs/CONTRACTS.md, "Run outputs"), so it can be rerun at
any time, e.g. while a suite is still running. A missing piece (a failed run, a run without
compression) is reported in `summary.md` and `ablation_results.json` and skipped, never fatal.
Accuracies are fractions in the JSON and percentages in figures and tables.
"""
import dataclasses
import json
import math
from pathlib import Path
import sys
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
from matplotlib.ticker import FuncFormatter  # pylint: disable=g-import-not-at-top

from interlingua_jax import cli  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

METHOD_ORDER = ("source_alone", "target_alone", "text_relay", "token_budget", "latent")
FIGURES = ("training_curves", "stability", "accuracy_vs_soft_tokens", "accuracy_vs_wire_bytes",
           "inference_costs")
TABLES = ("main_results", "comparisons", "ablations", "compression", "inference_costs")
_RUN_MARKERS = ("config.json", "metrics.jsonl", "train_summary.json", "run.log", "DONE", "eval")
_STYLE = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 9,
          "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True, "grid.alpha": 0.3}


@dataclasses.dataclass
class Run:
  """What one run directory holds; absent pieces stay None/empty and are named in `problems`."""
  name: str
  path: Path
  done: bool = False
  config: dict | None = None
  train_rows: list[dict] = dataclasses.field(default_factory=list)
  eval_rows: list[dict] = dataclasses.field(default_factory=list)
  train_summary: dict | None = None
  aggregate: dict | None = None
  compression: dict | None = None
  problems: list[str] = dataclasses.field(default_factory=list)


def _fixes_label(fixes: bool | None) -> str:
  return {True: "with fixes", False: "no fixes", None: "fixes unknown"}[fixes]


def _is_num(x: Any) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _dig(d: dict | None, dotted: str) -> Any:
  for key in dotted.split("."):
    if not isinstance(d, dict) or key not in d:
      return None
    d = d[key]
  return d


def _read_json(run_dir: Path, rel: str, problems: list[str]) -> dict | None:
  path = run_dir / rel
  if not path.exists():
    problems.append(f"missing {rel}")
    return None
  try:
    data = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    problems.append(f"unreadable {path}: {e}")
    return None
  if not isinstance(data, dict):
    problems.append(f"{path} holds a {type(data).__name__}, not a JSON object")
    return None
  return data


def _last_per_step(rows: list[dict]) -> list[dict]:
  """A resumed run may log a step twice; the later row is the one that counts."""
  by_step = {}
  for row in rows:
    by_step[row["step"]] = row
  return [by_step[s] for s in sorted(by_step)]


def _read_metrics(path: Path, problems: list[str]) -> tuple[list[dict], list[dict]]:
  """Train rows (with a numeric `loss`) and eval rows (with a numeric `bridged_accuracy`)."""
  if not path.exists():
    problems.append("missing metrics.jsonl")
    return [], []
  train, evals, bad = [], [], 0
  for line in path.read_text().splitlines():
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except ValueError:
      bad += 1
      continue
    if not isinstance(row, dict) or not _is_num(row.get("step")):
      bad += 1
      continue
    if _is_num(row.get("loss")):
      train.append(row)
    if _is_num(row.get("bridged_accuracy")):
      evals.append(row)
  if bad:
    problems.append(f"metrics.jsonl: skipped {bad} unreadable row(s)")
  if not evals:
    problems.append("metrics.jsonl has no eval rows (bridged_accuracy)")
  return _last_per_step(train), _last_per_step(evals)


def _aggregate_error(agg: dict) -> str | None:
  methods = agg.get("methods")
  if not isinstance(methods, dict) or not methods:
    return "eval/aggregate.json has no `methods` object"
  for name, m in methods.items():
    if not isinstance(m, dict) or not _is_num(m.get("accuracy")):
      return f"eval/aggregate.json: method {name!r} has no numeric accuracy"
  return None


def _compression_error(comp: dict) -> str | None:
  levels = comp.get("levels")
  if not isinstance(levels, dict) or not levels:
    return "compression/compression.json has no `levels` object"
  for fmt, level in levels.items():
    if not isinstance(level, dict) or not all(_is_num(level.get(k))
                                              for k in ("packet_bytes", "accuracy")):
      return f"compression/compression.json: level {fmt!r} lacks numeric packet_bytes/accuracy"
  return None


def load_run(name: str, path: Path) -> Run:
  run = Run(name=name, path=path)
  if not path.is_dir():
    run.problems.append(f"not started: no directory {path}")
    return run
  run.done = (path / "DONE").exists()
  if not run.done:
    run.problems.append(f"no DONE: the run failed or is unfinished (see {path / 'run.log'})")
  if not any((path / f).exists() for f in ("config.json", "metrics.jsonl", "eval")):
    run.problems.append("no outputs at all: it failed (or is still starting) before training")
    return run
  run.config = _read_json(path, "config.json", run.problems)
  run.train_rows, run.eval_rows = _read_metrics(path / "metrics.jsonl", run.problems)
  run.train_summary = _read_json(path, "train_summary.json", run.problems)
  for attr, rel, check in (("aggregate", "eval/aggregate.json", _aggregate_error),
                           ("compression", "compression/compression.json", _compression_error)):
    data = _read_json(path, rel, run.problems)
    error = check(data) if data is not None else None
    if error:
      run.problems.append(error)
      data = None
    setattr(run, attr, data)
  return run


def find_runs(root: Path) -> list[tuple[str, Path]]:
  """The runs the suite asked for (suite.json), else every subdirectory that looks like a run."""
  if not root.is_dir():
    raise ValueError(f"--root={root}: no such directory; pass a suite root such as "
                     "DIR/20250101_120000")
  record = root / "suite.json"
  if record.exists():
    try:
      names = [str(e["name"]) for e in json.loads(record.read_text())["experiments"]]
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"{record} is not a suite record written by interlingua_jax.ablations "
                       f"({e!r}); remove it to analyse every run directory instead") from e
  else:
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "analysis"
                   and any((p / m).exists() for m in _RUN_MARKERS))
  if not names:
    raise ValueError(f"no runs under {root}: a run directory holds config.json, metrics.jsonl "
                     "or run.log; pass the timestamped suite root, not its parent")
  return [(n, root / n) for n in names]


def summarize(run: Run) -> dict[str, Any]:
  """One run's entry in ablation_results.json."""
  infonce = _dig(run.config, "loss.infonce_weight")
  early_stop = _dig(run.config, "train.early_stopping")
  fixes = None if infonce is None or early_stop is None else bool(infonce > 0 and early_stop)
  out = {
      "name": run.name, "path": str(run.path), "complete": run.done, "problems": run.problems,
      "dataset": _dig(run.config, "data.dataset") or _dig(run.aggregate, "dataset"),
      "num_soft_tokens": (_dig(run.config, "translator.num_soft_tokens")
                          or _dig(run.aggregate, "num_soft_tokens")
                          or _dig(run.compression, "num_soft_tokens")),
      "fixes": fixes,
  }
  if run.eval_rows:
    peak = max(run.eval_rows, key=lambda r: r["bridged_accuracy"])  # earliest step on ties
    final = run.eval_rows[-1]
    out.update(peak_accuracy=peak["bridged_accuracy"], peak_step=peak["step"],
               final_accuracy=final["bridged_accuracy"], final_step=final["step"],
               degradation=peak["bridged_accuracy"] - final["bridged_accuracy"])
  summary = run.train_summary or {}
  last_train_step = run.train_rows[-1]["step"] if run.train_rows else None
  out["steps_run"] = summary.get("final_step", last_train_step)
  out["best_step"] = summary.get("best_step", out.get("peak_step"))
  out["stopped_early"] = summary.get("stopped_early")
  if run.aggregate:
    for key in ("methods", "comparisons", "kv_saving", "throughput", "scenario", "num_questions"):
      out[key] = run.aggregate.get(key)
  if run.compression:
    out["compression"] = {k: run.compression.get(k) for k in
                          ("num_samples", "text_bytes_mean", "text_tokens_mean", "levels")}
  return out


# ----------------------------------------------------------------------------- tables


@dataclasses.dataclass
class Table:
  """Plain-text cells; LaTeX escaping happens on output, so markdown reuses the same rows."""
  name: str
  caption: str
  columns: str  # tabular column spec, e.g. "lrr"
  header: list[str]
  groups: list[list[list[str]]]  # row groups, separated by \midrule


def _pct(x: Any) -> str:
  return f"{100 * x:.1f}" if _is_num(x) else "--"


def _acc_ci(m: dict | None) -> str:
  if not m or not _is_num(m.get("accuracy")):
    return "--"
  ci = m.get("ci95")
  if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_num(v) for v in ci):
    return f"{_pct(m['accuracy'])} [{_pct(ci[0])}, {_pct(ci[1])}]"
  return _pct(m["accuracy"])


def _int(x: Any) -> str:
  return f"{round(x):,}" if _is_num(x) else "--"


def _num(x: Any, digits: int) -> str:
  return f"{x:,.{digits}f}" if _is_num(x) else "--"


def _ratio(x: Any) -> str:
  if not _is_num(x):
    return "--"
  return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def _methods(results: list[dict]) -> list[str]:
  seen = {m for r in results for m in (r.get("methods") or {})}
  return [m for m in METHOD_ORDER if m in seen] + sorted(seen - set(METHOD_ORDER))


def main_results_table(results: list[dict]) -> Table | None:
  rows = [r for r in results if r.get("methods")]
  if not rows:
    return None
  methods = _methods(rows)
  return Table(
      "main_results",
      "Accuracy (%) of every method on the same test questions, with bootstrap 95% intervals.",
      "lll" + "r" * len(methods), ["Run", "Dataset", "M"] + methods,
      [[[r["name"], str(r["dataset"] or "--"), _int(r["num_soft_tokens"])]
        + [_acc_ci(r["methods"].get(m)) for m in methods] for r in rows]])


def comparisons_table(results: list[dict]) -> Table | None:
  groups = []
  for r in results:
    comps = r.get("comparisons") or {}
    rows = []
    for key, c in comps.items():
      if not isinstance(c, dict):
        continue
      ci = c.get("ci95") if isinstance(c.get("ci95"), (list, tuple)) else (None, None)
      p = c.get("mcnemar_p")
      rows.append([r["name"], key.replace("_vs_", " vs "), _pct(c.get("diff")),
                   f"[{_pct(ci[0])}, {_pct(ci[1])}]", f"{p:.3g}" if _is_num(p) else "--"])
    if rows:
      groups.append(rows)
  if not groups:
    return None
  return Table(
      "comparisons",
      "Paired differences in accuracy (latent minus the other method, percentage points) "
      "with paired-bootstrap 95% intervals and McNemar p-values.",
      "llrrr", ["Run", "Comparison", "Difference (pp)", "95% CI", "McNemar p"], groups)


def ablations_table(results: list[dict]) -> Table | None:
  rows = [r for r in results if "peak_accuracy" in r]
  if not rows:
    return None
  def yes_no(x):
    return "--" if x is None else ("yes" if x else "no")
  return Table(
      "ablations",
      "Stability ablation: bridged accuracy (%) during training at its peak and at the end; "
      "degradation = peak - final (percentage points). Fixes = InfoNCE + early stopping.",
      "lllrrrrrrl",
      ["Run", "Dataset", "M", "Fixes", "Peak (%)", "Peak step", "Final (%)", "Degradation (pp)",
       "Steps", "Stopped early"],
      [[[r["name"], str(r["dataset"] or "--"), _int(r["num_soft_tokens"]), yes_no(r["fixes"]),
         _pct(r["peak_accuracy"]), _int(r["peak_step"]), _pct(r["final_accuracy"]),
         _pct(r["degradation"]), _int(r["steps_run"]), yes_no(r["stopped_early"])]
        for r in rows]])


def compression_table(results: list[dict]) -> Table | None:
  groups = []
  for r in results:
    comp = r.get("compression")
    if not comp:
      continue
    rows = [[r["name"], "text (UTF-8)", _int(comp.get("text_bytes_mean")), "1.00", "--"]]
    levels = sorted(comp["levels"].items(), key=lambda kv: -kv[1]["packet_bytes"])
    rows += [[r["name"], fmt, _int(lv["packet_bytes"]), _ratio(lv.get("bytes_ratio_vs_text")),
              _acc_ci(lv)] for fmt, lv in levels]
    groups.append(rows)
  if not groups:
    return None
  return Table(
      "compression",
      "Wire size of the soft tokens per quantization level against the UTF-8 text prompt "
      "(mean bytes per question; a ratio above 1 means the packet is larger than the text), "
      "and bridged accuracy (%) after the round trip.",
      "llrrr", ["Run", "Format", "Bytes", "Bytes / text", "Accuracy (%)"], groups)


def inference_costs_table(results: list[dict]) -> Table | None:
  groups = []
  for r in results:
    methods = r.get("methods")
    if not methods:
      continue
    target_kv = (methods.get("target_alone") or {}).get("mean_kv_bytes")
    rows = []
    for name in _methods([r]):
      m = methods[name]
      kv = m.get("mean_kv_bytes")
      share = kv / target_kv if _is_num(kv) and _is_num(target_kv) and target_kv > 0 else None
      rows.append([r["name"], name, _num(m.get("mean_prompt_tokens"), 1),
                   _num(kv / 1024 if _is_num(kv) else None, 1), _num(share, 3),
                   _num(m.get("mean_latency_s"), 3), _num(m.get("mean_generated_tokens"), 1)])
    groups.append(rows)
  if not groups:
    return None
  return Table(
      "inference_costs",
      "Inference cost per question: target prompt tokens, KV-cache held (KiB; exact, with "
      "grouped-query attention), its share of target_alone's, latency (s), generated tokens.",
      "llrrrrr", ["Run", "Method", "Prompt tokens", "KV cache (KiB)", "KV / target_alone",
                  "Latency (s)", "Generated tokens"], groups)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                   "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                   "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
  return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
  """A booktabs table (needs \\usepackage{booktabs}); every cell escaped."""
  def row(cells):
    return " & ".join(latex_escape(c) for c in cells) + r" \\"
  lines = [r"\begin{table}[t]", r"\centering", r"\small",
           rf"\caption{{{latex_escape(table.caption)}}}", rf"\label{{tab:{table.name}}}",
           rf"\begin{{tabular}}{{{table.columns}}}", r"\toprule", row(table.header), r"\midrule"]
  for i, group in enumerate(table.groups):
    if i:
      lines.append(r"\midrule")
    lines += [row(cells) for cells in group]
  lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
  return "\n".join(lines) + "\n"


def to_markdown(table: Table) -> str:
  lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
  lines += ["| " + " | ".join(cells) + " |" for group in table.groups for cells in group]
  return f"*{table.caption}*\n\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- figures


def _save(fig: plt.Figure, out_dir: Path, stem: str) -> list[str]:
  files = []
  for ext in ("pdf", "png"):
    fig.savefig(out_dir / f"{stem}.{ext}", dpi=150, bbox_inches="tight")
    files.append(f"{stem}.{ext}")
  plt.close(fig)
  return files


def _steps(rows: list[dict], key: str, scale: float = 1.0) -> tuple[list, list]:
  return [r["step"] for r in rows], [scale * r[key] for r in rows]


def fig_training_curves(runs: list[Run], colors: dict[str, str]) -> plt.Figure | None:
  if not any(r.train_rows or r.eval_rows for r in runs):
    return None
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(13, 4.8))
  for r in runs:
    if r.train_rows:
      ax_loss.plot(*_steps(r.train_rows, "loss"), color=colors[r.name], lw=1.2, label=r.name)
    if r.eval_rows:
      ax_acc.plot(*_steps(r.eval_rows, "bridged_accuracy", 100), color=colors[r.name],
                  marker="o", ms=4, label=r.name)
  ax_loss.set(xlabel="training step", ylabel="training loss (nats per answer token)",
              title="Training loss")
  ax_acc.set(xlabel="training step", ylabel="bridged accuracy (%)",
             title="Bridged accuracy during training")
  for ax in (ax_loss, ax_acc):
    if ax.lines:
      ax.legend()
  fig.suptitle("Training curves", fontsize=14)
  fig.tight_layout()
  return fig


def fig_stability(runs: list[Run], results: dict[str, dict],
                  colors: dict[str, str]) -> plt.Figure | None:
  """Runs that have a twin (same dataset and M) with the opposite fixes; else every curve."""
  curves = [r for r in runs if r.eval_rows]
  key = lambda r: (results[r.name]["dataset"], results[r.name]["num_soft_tokens"])
  fixed = {key(r) for r in curves if results[r.name]["fixes"] is True}
  unfixed = {key(r) for r in curves if results[r.name]["fixes"] is False}
  chosen = [r for r in curves if key(r) in fixed & unfixed] or curves
  if not chosen:
    return None
  fig, ax = plt.subplots(figsize=(8.5, 5))
  for r in chosen:
    res = results[r.name]
    ax.plot(*_steps(r.eval_rows, "bridged_accuracy", 100), color=colors[r.name],
            ls="--" if res["fixes"] is False else "-", lw=1.8,
            label=f"{r.name} ({_fixes_label(res['fixes'])})")
    for step_key, acc_key, marker, dy in (("peak_step", "peak_accuracy", "*", 8),
                                          ("final_step", "final_accuracy", "o", -14)):
      x, y = res[step_key], 100 * res[acc_key]
      ax.plot(x, y, marker=marker, ms=15 if marker == "*" else 9, color=colors[r.name],
              mec="black", ls="none")
      ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(5, dy), fontsize=9)
  handles, _ = ax.get_legend_handles_labels()
  handles += [Line2D([], [], marker="*", ms=13, color="grey", mec="black", ls="none", label="peak"),
              Line2D([], [], marker="o", ms=8, color="grey", mec="black", ls="none", label="final")]
  ax.legend(handles=handles)
  ax.set(xlabel="training step", ylabel="bridged accuracy (%)",
         title="Stability: InfoNCE + early stopping vs no fixes")
  fig.tight_layout()
  return fig


def _errorbar(ax: plt.Axes, xs: list, entries: list[dict], **kwargs) -> None:
  ys = [100 * e["accuracy"] for e in entries]
  lo, hi = [], []
  for y, e in zip(ys, entries):
    ci = e.get("ci95")
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_num(v) for v in ci)
    lo.append(max(0.0, y - 100 * ci[0]) if ok else 0.0)
    hi.append(max(0.0, 100 * ci[1] - y) if ok else 0.0)
  ax.errorbar(xs, ys, yerr=[lo, hi], capsize=4, lw=1.8, ms=7, **kwargs)


def fig_accuracy_vs_soft_tokens(results: list[dict]) -> plt.Figure | None:
  """Eval accuracy of the runs with fixes against M, beside plain truncation to M tokens."""
  runs = [r for r in results if r.get("methods") and "latent" in r["methods"]
          and r["fixes"] is not False and _is_num(r["num_soft_tokens"])]
  if not runs:
    return None
  datasets = sorted({str(r["dataset"]) for r in runs})
  fig, ax = plt.subplots(figsize=(8, 5))
  styles = {"latent": ("o", "-"), "token_budget": ("s", "--"), "target_alone": ("^", ":")}
  for ds in datasets:
    ds_runs = sorted((r for r in runs if str(r["dataset"]) == ds),
                     key=lambda r: r["num_soft_tokens"])
    for method, (marker, ls) in styles.items():
      pts = [(r["num_soft_tokens"], r["methods"][method])
             for r in ds_runs if method in r["methods"]]
      if pts:
        label = method if len(datasets) == 1 else f"{method} ({ds})"
        _errorbar(ax, [p[0] for p in pts], [p[1] for p in pts], marker=marker, ls=ls, label=label)
  ax.set_xticks(sorted({r["num_soft_tokens"] for r in runs}))
  ax.set(xlabel="soft tokens M (tokens given to the target)", ylabel="accuracy (%)",
         title="Accuracy against the number of soft tokens")
  ax.legend()
  fig.tight_layout()
  return fig


def _bytes_label(x: float) -> str:
  for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
    if x >= size:
      return f"{x / size:g} {unit}"
  return f"{x:g} B"


def fig_accuracy_vs_wire_bytes(results: list[dict], colors: dict[str, str]) -> plt.Figure | None:
  runs = [r for r in results if r.get("compression")]
  if not runs:
    return None
  fig, ax = plt.subplots(figsize=(9, 5))
  for r in runs:
    levels = sorted(r["compression"]["levels"].items(), key=lambda kv: kv[1]["packet_bytes"])
    xs = [lv["packet_bytes"] for _, lv in levels]
    _errorbar(ax, xs, [lv for _, lv in levels], marker="o", color=colors[r["name"]],
              label=f"{r['name']}: soft tokens")
    for (fmt, lv), x in zip(levels, xs):
      ax.annotate(fmt, (x, 100 * lv["accuracy"]), textcoords="offset points", xytext=(4, 6),
                  fontsize=9)
    text_bytes = r["compression"].get("text_bytes_mean")
    if _is_num(text_bytes) and text_bytes > 0:
      ax.axvline(text_bytes, color=colors[r["name"]], ls=":", lw=1.5,
                 label=f"{r['name']}: text prompt (UTF-8)")
  ax.set_xscale("log", base=2)
  ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _bytes_label(x)))
  ax.set(xlabel="bytes on the wire per question (log scale)", ylabel="bridged accuracy (%)",
         title="Accuracy against wire size per quantization level")
  ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
  fig.tight_layout()
  return fig


def fig_inference_costs(results: list[dict], colors: dict[str, str]) -> plt.Figure | None:
  runs = [r for r in results if r.get("methods")]
  if not runs:
    return None
  methods = _methods(runs)
  kv_max = max((m["mean_kv_bytes"] for r in runs for m in r["methods"].values()
                if _is_num(m.get("mean_kv_bytes"))), default=0)
  unit, scale = ("MiB", 2.0**20) if kv_max >= 10 * 2**20 else ("KiB", 1024.0)
  fig, (ax_kv, ax_lat) = plt.subplots(1, 2, figsize=(13, 4.8))
  width = 0.8 / len(runs)
  for j, r in enumerate(runs):
    xs = [i + (j - (len(runs) - 1) / 2) * width for i in range(len(methods))]
    def values(key, div=1.0):
      vals = [(r["methods"].get(m) or {}).get(key) for m in methods]
      return [v / div if _is_num(v) else math.nan for v in vals]
    ax_kv.bar(xs, values("mean_kv_bytes", scale), width, color=colors[r["name"]], label=r["name"])
    ax_lat.bar(xs, values("mean_latency_s"), width, color=colors[r["name"]], label=r["name"])
  for ax in (ax_kv, ax_lat):
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
    ax.set_xlabel("method")
    ax.legend()
  ax_kv.set(ylabel=f"mean KV cache per question ({unit})",
            title="KV-cache memory held by the model")
  ax_lat.set(ylabel="mean latency per question (s)", title="Latency")
  fig.suptitle("Inference costs per method", fontsize=14)
  fig.tight_layout()
  return fig


# ----------------------------------------------------------------------------- driver


def _markdown_summary(root: Path, results: list[dict], tables: list[Table], written: list[str],
                      skipped: list[str]) -> str:
  lines = ["# Ablation summary\n", f"Suite root: `{root}`\n", "## Runs\n"]
  for r in results:
    state = "complete" if r["complete"] else "INCOMPLETE"
    lines.append(f"- **{r['name']}** ({state}; dataset {r['dataset'] or '--'}, "
                 f"M={r['num_soft_tokens'] or '--'}, "
                 f"{_fixes_label(r['fixes'])}; scenario: {r.get('scenario') or '--'})")
    lines += [f"  - {p}" for p in r["problems"]]
  for t in tables:
    lines += ["", f"## {t.name.replace('_', ' ').capitalize()}\n", to_markdown(t)]
  lines += ["", "## Files\n"] + [f"- `{f}`" for f in written]
  if skipped:
    lines += ["", "## Not produced (no data)\n"] + [f"- {s}" for s in skipped]
  return "\n".join(lines) + "\n"


def analyze(root: Path) -> dict[str, Any]:
  """Writes everything into `root/analysis/` and returns what ablation_results.json holds."""
  root = Path(root)
  runs = [load_run(name, path) for name, path in find_runs(root)]
  results = [summarize(r) for r in runs]
  by_name = {r["name"]: r for r in results}
  colors = {r.name: f"C{i % 10}" for i, r in enumerate(runs)}
  out_dir = root / "analysis"
  out_dir.mkdir(exist_ok=True)
  written, skipped = [], []

  def stale(stem: str, exts: Sequence[str], why: str) -> None:
    skipped.append(f"{stem}.{'/'.join(exts)}: {why}")
    for ext in exts:  # never leave an older version behind that looks current
      (out_dir / f"{stem}.{ext}").unlink(missing_ok=True)

  with plt.rc_context(_STYLE):
    figures = {
        "training_curves": lambda: fig_training_curves(runs, colors),
        "stability": lambda: fig_stability(runs, by_name, colors),
        "accuracy_vs_soft_tokens": lambda: fig_accuracy_vs_soft_tokens(results),
        "accuracy_vs_wire_bytes": lambda: fig_accuracy_vs_wire_bytes(results, colors),
        "inference_costs": lambda: fig_inference_costs(results, colors),
    }
    for stem, make in figures.items():
      fig = make()
      if fig is None:
        stale(stem, ("pdf", "png"), "no run has the data for this figure")
      else:
        written += _save(fig, out_dir, stem)

  tables = []
  for make in (main_results_table, comparisons_table, ablations_table, compression_table,
               inference_costs_table):
    table = make(results)
    stem = make.__name__.removesuffix("_table")
    if table is None:
      stale(stem, ("tex",), "no run has the data for this table")
      continue
    tables.append(table)
    (out_dir / f"{stem}.tex").write_text(to_latex(table))
    written.append(f"{stem}.tex")

  written += ["summary.md", "ablation_results.json"]
  (out_dir / "summary.md").write_text(_markdown_summary(root, results, tables, written, skipped))
  report = {"root": str(root), "runs": results, "files": written, "not_produced": skipped}
  (out_dir / "ablation_results.json").write_text(json.dumps(report, indent=2) + "\n")
  return report


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.root:
    sys.exit("analysis: --root=DIR is required (the timestamped suite root)")
  try:
    report = analyze(Path(FLAGS.root))
  except ValueError as e:
    sys.exit(f"analysis: {e}")
  for r in report["runs"]:
    for p in r["problems"]:
      logging.warning("%s: %s", r["name"], p)
  for s in report["not_produced"]:
    logging.warning("not produced: %s", s)
  print(f"Wrote {len(report['files'])} files to {Path(FLAGS.root) / 'analysis'}")


if __name__ == "__main__":
  # Defined here, not at import: tests import this beside modules that also have --root.
  flags.DEFINE_string("root", None, "Suite root: the directory holding one dir per run.")
  sys.exit(cli.run(lambda argv: main(cli.parse_absl(argv)), sys.argv))
