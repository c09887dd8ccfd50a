"""The sweep of runs whose aggregate holds one table per target (a bridge read by several targets): one row per
run (M, then every config setting that differs between the runs), per target latent F1 next to the token budget
of the same M, PCA and the text baseline, with the paired intervals of latent − token budget and latent − PCA; and
the figure of latent F1 against M, one panel per target.
"""
from pathlib import Path

import matplotlib.pyplot as plt

from interlingua_jax.core import outputs
from interlingua_jax.analysis import figures, tables

BUDGET = "token_budget_text"
UNCOMPARED = ("name", "seed", "data.train_path", "data.test_path")  # not settings of the experiment


def load(root: Path, names: list[str]) -> list[dict]:
  """{name, settings {axis: value}, targets {target: aggregate}} of every run with per-target results; the axes
  are M and the config keys whose values differ between those runs."""
  found = []
  for name in names:
    agg = outputs.read_json(root / name / "eval" / "aggregate.json")
    config = outputs.read_json(root / name / "config.json")
    if agg is None or "targets" not in agg or config is None:
      continue
    flat = {k: v for k, v in outputs.flatten(config).items() if k not in UNCOMPARED and not isinstance(v, list)}
    m = next(iter(agg["targets"].values()))["num_soft_tokens"]
    found.append((name, flat, m, agg["targets"]))
  keys = sorted({k for _, flat, _, _ in found for k in flat}
                - {k for k in found[0][1] if all(flat.get(k) == found[0][1][k] for _, flat, _, _ in found)}
                ) if found else []
  return [{"name": name, "settings": {"M": m, **{k: flat.get(k) for k in keys}}, "targets": targets}
          for name, flat, m, targets in found]


def _axes(runs: list[dict]) -> list[str]:
  return list(runs[0]["settings"])


def _f1(table: dict, method: str) -> str:
  return tables._pct((table["methods"].get(method) or {}).get("f1"))


def _diff(table: dict, other: str) -> str:
  c = table.get("f1_comparisons", {}).get(f"latent_vs_{other}")
  ci = c.get("ci95_cluster", c["ci95"]) if c else None  # the cluster interval (by article), else an old run's
  return "--" if not c else f"{100 * c['diff']:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def sweep_table(runs: list[dict]) -> tables.Table | None:
  if not runs:
    return None
  names = sorted({t for r in runs for t in r["targets"]})
  header = ["run", *_axes(runs)]
  for t in names:
    header += [f"{t} latent F1", f"{t} budget F1", f"{t} latent-budget", f"{t} PCA F1", f"{t} latent-PCA",
               f"{t} text F1"]
  rows = []
  number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
  order = lambda r: [(v is not None, v if number(v) else 0, str(v)) for v in (r["settings"][a] for a in _axes(runs))]
  for r in sorted(runs, key=order):  # by settings; one a run lacks (saved before it existed) sorts first
    row = [r["name"], *(str(r["settings"][a]) for a in _axes(runs))]
    for t in names:
      table = r["targets"].get(t)
      row += ["--"] * 6 if table is None else [_f1(table, "latent"), _f1(table, BUDGET), _diff(table, BUDGET),
                                                _f1(table, "pca"), _diff(table, "pca"), _f1(table, "target_alone")]
    rows.append(row)
  return tables.Table("target_sweep", "Sweep of a bridge read by several targets: F1 (%) per target; latent − token budget "
                      "and latent − PCA with their paired 95% cluster-bootstrap intervals (points; by article for "
                      "SQuAD).", "l" + "r" * (len(header) - 1), header, [rows])


def sweep_figure(runs: list[dict]) -> plt.Figure | None:
  names = sorted({t for r in runs for t in r["targets"]})
  if not runs:
    return None
  fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
  for ax, target in zip(axes[0], names):
    for method, marker in (("latent", "o"), (BUDGET, "s"), ("target_alone", "^")):
      points = sorted((r["settings"]["M"], r["targets"][target]["methods"][method]["f1"]) for r in runs
                      if target in r["targets"] and method in r["targets"][target]["methods"])
      if points:
        ax.plot(*zip(*points), marker, label=method, alpha=0.7)
    ax.set(xlabel="M (latent vectors / budget tokens)", ylabel="F1", title=target, ylim=(0, 1))
    ax.legend()
  return fig


def write(root: Path, names: list[str], out_dir: Path) -> tuple[list[str], list[tables.Table]]:
  """The sweep's table (.tex) and figure (.pdf/.png) under out_dir, when any run has per-target results."""
  runs = load(root, names)
  table = sweep_table(runs)
  if table is None:
    return [], []
  (out_dir / "target_sweep.tex").write_text(tables.to_latex(table))
  return ["target_sweep.tex", *figures.save(sweep_figure(runs), out_dir, "target_sweep")], [table]
