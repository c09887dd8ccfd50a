"""The interlingua sweep: one row per run (encoder, M, d_z, first-token weight, K, steps), per target latent F1
next to the token budget of the same M, PCA and the text baseline, with the paired intervals of latent − token
budget and latent − PCA; and the figure of latent F1 against M, one panel per target.

Runs are those of the suite root whose `eval/aggregate.json` holds per-target tables (a latent bridge kind).
"""
from pathlib import Path

import matplotlib.pyplot as plt

from interlingua_jax.core import outputs
from interlingua_jax.analysis import figures, tables
from interlingua_jax.analysis.runs import _dig

AXES = (("encoder", "interlingua.encoder"), ("M", "interlingua.num_latents"), ("d_z", "interlingua.latent_dim"),
        ("w_first", "interlingua.first_token_weight"), ("K", "interlingua.k_tokens"),
        ("RMS calibrated", "interlingua.calibrate_rms"), ("steps", "train.steps"))
BUDGET = "token_budget_text"


def load(root: Path, names: list[str]) -> list[dict]:
  """{name, settings {axis: value}, targets {target: aggregate}} of every latent-kind run with results."""
  out = []
  for name in names:
    agg = outputs.read_json(root / name / "eval" / "aggregate.json")
    config = outputs.read_json(root / name / "config.json")
    if agg is None or "targets" not in agg or config is None:
      continue
    out.append({"name": name, "settings": {axis: _dig(config, key) for axis, key in AXES},
                "targets": agg["targets"]})
  return out


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
  header = ["run", *(a for a, _ in AXES)]
  for t in names:
    header += [f"{t} latent F1", f"{t} budget F1", f"{t} latent-budget", f"{t} PCA F1", f"{t} latent-PCA",
               f"{t} text F1"]
  rows = []
  order = lambda r: [(v is not None, v if v is not None else 0) for v in (r["settings"][a] for a, _ in AXES)]
  for r in sorted(runs, key=order):  # by settings; one a run lacks (saved before it existed) sorts first
    row = [r["name"], *(str(r["settings"][a]) for a, _ in AXES)]
    for t in names:
      table = r["targets"].get(t)
      row += ["--"] * 6 if table is None else [_f1(table, "latent"), _f1(table, BUDGET), _diff(table, BUDGET),
                                                _f1(table, "pca"), _diff(table, "pca"), _f1(table, "target_alone")]
    rows.append(row)
  return tables.Table("interlingua_sweep", "Shared interlingua sweep: F1 (%) per target; latent − token budget "
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
  """The sweep's table (.tex) and figure (.pdf/.png) under out_dir, when any run is a latent-kind run."""
  runs = load(root, names)
  table = sweep_table(runs)
  if table is None:
    return [], []
  (out_dir / "interlingua_sweep.tex").write_text(tables.to_latex(table))
  return ["interlingua_sweep.tex", *figures.save(sweep_figure(runs), out_dir, "interlingua_sweep")], [table]
