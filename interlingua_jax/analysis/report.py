"""A run's report, regenerated from its saved outputs alone: `report.md` and PNG plots.

    python -m interlingua_jax.main --config=... --workdir=DIR --mode=report
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from interlingua_jax.core import outputs
from interlingua_jax.evaluation import compression


def _interval(ci: list[float] | None, sign: str = "") -> str:
  """`[lo, hi]`, or -- for an aggregate written before that interval existed."""
  return f"[{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]" if ci else "--"


def methods_table(agg: dict) -> str:
  """Markdown table of accuracy per method with its exact and cluster intervals, KV bytes, latency and warm-up."""
  lines = ["| method | accuracy | 95% CI (exact) | 95% CI (cluster) | mean KV-cache bytes | latency p50 / p90 (s) "
           "| warm-up (s) |", "|---|---|---|---|---|---|---|"]
  for name, m in agg["methods"].items():
    label = f"{name} (control)" if m.get("control") else name
    lines.append(f"| {label} | {m['accuracy']:.3f} | {_interval(m['ci95'])} | {_interval(m.get('ci95_cluster'))} | "
                 f"{m['mean_kv_bytes']:,.0f} | {m['latency_p50_s']:.4f} / {m['latency_p90_s']:.4f} | "
                 f"{m['warmup_s']:.2f} |")
  return "\n".join(lines)


def _splits_lines(agg: dict) -> list[str]:
  """The questions each split holds, so that a reader can check validation and test never met."""
  if not agg.get("split"):
    return []
  return ["Splits (size, sha256 of the sorted ids): " + "; ".join(
      f"{name} {v['size']} ({v['ids_sha256'][:12]})" for name, v in agg["split"].items()) + "."]


def plot_training(train_rows: list[dict], eval_rows: list[dict], path: str) -> None:
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  if train_rows:
    steps = [r["step"] for r in train_rows]
    ax1.plot(steps, [r["loss"] for r in train_rows], label="total loss")
    ax1.plot(steps, [r["ce"] for r in train_rows], label="answer cross-entropy", linestyle="--")
    if "infonce" in train_rows[0]:
      ax1.plot(steps, [r["infonce"] for r in train_rows], label="InfoNCE", linestyle=":")
  ax1.set(xlabel="training step", ylabel="loss (nats)", title="Training loss")
  ax1.legend()
  ax1.grid(alpha=0.3)
  if eval_rows:
    ax2.plot([r["step"] for r in eval_rows], [100 * r["bridged_accuracy"] for r in eval_rows], marker="o",
             label="bridged (latent) accuracy")
  ax2.set(xlabel="training step", ylabel="accuracy (%)", title="Bridged accuracy on held-out questions",
          ylim=(0, 105))
  ax2.legend(loc="lower right")
  ax2.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_methods(agg: dict, path: str) -> None:
  names = list(agg["methods"])
  acc = [100 * agg["methods"][n]["accuracy"] for n in names]
  err = [[100 * (agg["methods"][n]["accuracy"] - agg["methods"][n]["ci95"][0]) for n in names],
         [100 * (agg["methods"][n]["ci95"][1] - agg["methods"][n]["accuracy"]) for n in names]]
  fig, ax = plt.subplots(figsize=(8, 4))
  bars = ax.bar(names, acc, yerr=err, capsize=5, color="tab:blue", label="accuracy, exact 95% CI")
  for b, a, hi in zip(bars, acc, err[1]):
    ax.text(b.get_x() + b.get_width() / 2, a + hi + 1.5, f"{a:.1f}", ha="center")
  ax.set(xlabel="method", ylabel="accuracy (%)", ylim=(0, 112),
         title=f"Accuracy per method ({agg['num_questions']} questions, M = {agg['num_soft_tokens']})")
  ax.legend(loc="upper right")
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write(workdir: str) -> str:
  """Writes report.md (and its PNGs) into `workdir`; returns the report's path."""
  train_rows, eval_rows, _ = outputs.read_metrics(workdir)
  agg = outputs.read_json(os.path.join(workdir, outputs.AGGREGATE))
  comp = outputs.read_json(os.path.join(workdir, outputs.COMPRESSION))
  summary = outputs.read_json(os.path.join(workdir, outputs.TRAIN_SUMMARY))
  lines = [f"# Run report: {os.path.basename(os.path.abspath(workdir))}", ""]
  if summary:
    lines += ["## Training", "",
              f"Best bridged accuracy on the validation split {summary['best_accuracy']:.3f} at step {summary['best_step']}; "
              f"final step {summary['final_step']} ({'stopped early' if summary['stopped_early'] else 'ran to the end'}).",
              "", "![training curves](training_curves.png)", ""]
  if train_rows or eval_rows:
    plot_training(train_rows, eval_rows, os.path.join(workdir, "training_curves.png"))
  if agg:
    plot_methods(agg, os.path.join(workdir, "accuracy_by_method.png"))
    clusters = f" in {agg['num_clusters']} clusters" if "num_clusters" in agg else ""
    lines += [f"## Results ({agg['dataset']}, {agg['num_questions']} test questions{clusters}, "
              f"M = {agg['num_soft_tokens']} soft tokens)", "", methods_table(agg), "", *_splits_lines(agg), "",
              "![accuracy per method](accuracy_by_method.png)", "", "### Latent against each method (paired)", "",
              "| comparison | difference | 95% CI | 95% CI (cluster) | McNemar p | Holm-adjusted p |",
              "|---|---|---|---|---|---|"]
    for name, c in agg["comparisons"].items():
      lines.append(f"| {name} | {c['diff']:+.3f} | {_interval(c['ci95'], '+')} | "
                   f"{_interval(c.get('ci95_cluster'), '+')} | {c['mcnemar_p']:.2g} | {c['mcnemar_p_holm']:.2g} |")
    lines += ["", f"Scenario: **{agg['scenario']}**."]
    if agg.get("kv_saving"):
      k = agg["kv_saving"]
      lines += ["", f"KV cache held by the target: latent {k['latent_mean_kv_bytes']:,.0f} B vs target_alone "
                    f"{k['target_alone_mean_kv_bytes']:,.0f} B per question (saving {100 * k['saving_fraction']:.1f}%)."]
  if comp:
    lines += ["", "## Wire", "", "```", compression.table(comp), "```"]
  path = os.path.join(workdir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
