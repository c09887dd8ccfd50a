r"""The analysis driver and its command line: every figure and table of a suite root, and a summary.

  python -m interlingua_jax.analysis --root=/runs/20250101_120000
"""
import json
from pathlib import Path
import sys
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import matplotlib.pyplot as plt

from interlingua_jax.core import cli as one_line_errors
from interlingua_jax.analysis import figures, runs as runs_lib, tables, views
from interlingua_jax.analysis.tables import Table

FLAGS = flags.FLAGS
FIGURES = ("training_curves", "stability", "capacity", "accuracy_vs_wire_bytes",
           "inference_costs")
TABLES = ("main_results", "comparisons", "ablations", "compression", "inference_costs", "seeds")


def _markdown_summary(root: Path, results: list[dict], made: list[Table], written: list[str],
                      skipped: list[str]) -> str:
  lines = ["# Ablation summary\n", f"Suite root: `{root}`\n", "## Runs\n"]
  for r in results:
    state = "complete" if r["complete"] else "INCOMPLETE"
    lines.append(f"- **{r['name']}** ({state}; dataset {r['dataset'] or '--'}, "
                 f"M={r['num_soft_tokens'] or '--'}, "
                 f"{runs_lib.fixes_label(r['fixes'])}; scenario: {r.get('scenario') or '--'})")
    lines += [f"  - {p}" for p in r["problems"]]
  for t in made:
    lines += ["", f"## {t.name.replace('_', ' ').capitalize()}\n", tables.to_markdown(t)]
  lines += ["", "## Files\n"] + [f"- `{f}`" for f in written]
  if skipped:
    lines += ["", "## Not produced (no data)\n"] + [f"- {s}" for s in skipped]
  return "\n".join(lines) + "\n"


def analyze(root: Path) -> dict[str, Any]:
  """Writes everything into `root/analysis/` and returns what ablation_results.json holds."""
  root = Path(root)
  runs = [runs_lib.load_run(e["name"], e["path"], e["group"], e["seed"]) for e in runs_lib.find_runs(root)]
  results = [runs_lib.summarize(r) for r in runs]
  groups = runs_lib.across_seeds(results)
  by_name = {r["name"]: r for r in results}
  colors = {r.name: f"C{i % 10}" for i, r in enumerate(runs)}
  out_dir = root / "analysis"
  out_dir.mkdir(exist_ok=True)
  written, skipped = [], []

  def stale(stem: str, exts: Sequence[str], why: str) -> None:
    skipped.append(f"{stem}.{'/'.join(exts)}: {why}")
    for ext in exts:  # never leave an older version behind that looks current
      (out_dir / f"{stem}.{ext}").unlink(missing_ok=True)

  with plt.rc_context(figures.STYLE):
    made_figures = {
        "training_curves": lambda: figures.fig_training_curves(runs, colors),
        "stability": lambda: figures.fig_stability(runs, by_name, colors),
        "capacity": lambda: figures.fig_capacity(results),
        "accuracy_vs_wire_bytes": lambda: figures.fig_accuracy_vs_wire_bytes(results, colors),
        "inference_costs": lambda: figures.fig_inference_costs(results, colors),
    }
    for stem, make in made_figures.items():
      fig = make()
      if fig is None:
        stale(stem, ("pdf", "png"), "no run has the data for this figure")
      else:
        written += figures.save(fig, out_dir, stem)
    gates = figures.fig_gates_per_layer(results)  # only a bridge with gates has it: absent, not "not produced"
    if gates is None:
      for ext in ("pdf", "png"):
        (out_dir / f"gates_per_layer.{ext}").unlink(missing_ok=True)
    else:
      written += figures.save(gates, out_dir, "gates_per_layer")

  made = []
  for stem, table in (("main_results", tables.main_results_table(results)),
                      ("comparisons", tables.comparisons_table(results)),
                      ("ablations", tables.ablations_table(results)),
                      ("compression", tables.compression_table(results)),
                      ("inference_costs", tables.inference_costs_table(results)),
                      ("seeds", tables.seeds_table(groups))):
    if table is None:
      stale(stem, ("tex",), "no run has the data for this table")
      continue
    made.append(table)
    (out_dir / f"{stem}.tex").write_text(tables.to_latex(table))
    written.append(f"{stem}.tex")

  with plt.rc_context(figures.STYLE):  # runs with one table per target: their sweep's table and figure
    files, sweep = views.write(root, [r.name for r in runs], out_dir)
  written, made = written + files, made + sweep
  written += ["summary.md", "ablation_results.json"]
  (out_dir / "summary.md").write_text(_markdown_summary(root, results, made, written, skipped))
  report = {"root": str(root), "runs": results, "seeds": groups, "files": written, "not_produced": skipped}
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


def run() -> None:
  # Defined here, not at import: tests import this beside modules that also have --root.
  flags.DEFINE_string("root", None, "Suite root: the directory holding one dir per run.")
  sys.exit(one_line_errors.run(lambda argv: main(one_line_errors.parse_absl(argv)), sys.argv))
