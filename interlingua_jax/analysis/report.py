"""A run's report, regenerated from its saved outputs alone: `report.md` and PNG plots.

    python -m interlingua_jax.main --config=... --workdir=DIR --mode=report
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from interlingua_jax.core import outputs


def _interval(ci: list[float] | None, sign: str = "") -> str:
  """`[lo, hi]`, or -- for an aggregate written before that interval existed."""
  return f"[{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]" if ci else "--"


def methods_table(agg: dict) -> str:
  """Markdown table of accuracy per method with its exact and cluster intervals, KV bytes, latency and warm-up;
  then the routers derived from the single models' records (`routing`)."""
  lines = ["| method | accuracy | 95% CI (exact) | 95% CI (cluster) | mean KV-cache bytes | latency p50 / p90 (s) "
           "| warm-up (s) |", "|---|---|---|---|---|---|---|"]
  routers = {f"{name} (router, derived)": m for name, m in agg.get("routing", {}).items() if "accuracy" in m}
  for name, m in {**agg["methods"], **routers}.items():
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


def wire_table(result: dict) -> str:
  """A plain-text table; every level larger than the text it replaces is flagged as such."""
  text = result["text_bytes_mean"]
  shape = result.get("soft_shape")
  sent = (f"latent {result['num_soft_tokens']} soft tokens ({shape[0]} x {shape[1]} numbers)" if result["num_soft_tokens"]
          else f"a cache of {result['packet_rows_mean']:.1f} x {result['packet_cols']} numbers on average")
  lines = [f"Wire: {result['num_samples']} questions; text prompt {text:.0f} B UTF-8, "
           f"{result['text_tokens_mean']:.1f} tokens; {sent}",
           f"{'level':>8} {'packet B':>10} {'text/packet':>12} {'accuracy':>9}  verdict"]
  for fmt, v in result["levels"].items():
    verdict = (f"packet is {v['packet_bytes'] / text:.1f}x LARGER than the text" if v["packet_bytes"] > text
               else f"packet is {text / v['packet_bytes']:.1f}x smaller than the text")
    lines.append(f"{fmt:>8} {v['packet_bytes']:>10,} {v['bytes_ratio_vs_text']:>12.4f} {v['accuracy']:>9.3f}  {verdict}")
  if not result["num_soft_tokens"]:  # a cache bridge: the target reads its whole prompt as well
    return "\n".join(lines)
  tokens_saved = result["text_tokens_mean"] - result["num_soft_tokens"]
  lines.append(f"KV-cache view: the target holds {result['num_soft_tokens']} soft tokens instead of "
               f"{result['text_tokens_mean']:.1f} prompt tokens ({tokens_saved:+.1f} tokens saved per question).")
  return "\n".join(lines)


def views_report(agg: dict) -> list[str]:
  """An aggregate with one table per view (`targets`: a bridge read by several targets): each view's methods table, F1
  and latent's paired F1 differences."""
  lines = [f"# {agg['bridge']} on {agg['dataset']}\n"]
  for name, table in agg["targets"].items():
    lines += [f"## Target {name} ({table['num_questions']} test questions)\n", methods_table(table), "",
              "| method | F1 | 95% CI |", "|---|---|---|"]
    lines += [f"| {m} | {v['f1']:.3f} | [{v['f1_ci95'][0]:.3f}, {v['f1_ci95'][1]:.3f}] |"
              for m, v in table["methods"].items() if "f1" in v]
    if "pca" in table:
      lines.append(f"\nPCA: explained variance {table['pca']['explained_variance']:.4f} "
                   f"({table['pca']['fit_texts']} training texts, <= {table['pca']['max_len']} tokens)")
    lines += ["", "| latent vs | F1 difference | 95% paired interval |", "|---|---|---|"]
    lines += [f"| {k[len('latent_vs_'):]} | {c['diff']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] |"
              for k, c in table.get("f1_comparisons", {}).items()] + [""]
  return lines


def write(workdir: str) -> str:
  """Writes report.md (and its PNGs) into `workdir`; returns the report's path."""
  agg = outputs.read_json(os.path.join(workdir, outputs.AGGREGATE))
  if agg is not None and "targets" in agg:
    path = os.path.join(workdir, "report.md")
    with open(path, "w") as f:
      f.write("\n".join(views_report(agg)))
    return path
  train_rows, eval_rows, _ = outputs.read_metrics(workdir)
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
    lines += ["", "## Wire", "", "```", wire_table(comp), "```"]
  path = os.path.join(workdir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
