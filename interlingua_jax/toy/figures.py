"""The toy study's two figures, read from finished run directories (to move into the analysis package).

`capacity_figure`: accuracy against M and against bits per question, the bridge with the token
budget, the target alone and the controls on the same axes (configs/suites/toy_capacity.py).
`stability_summary` / `stability_figure`: peak vs final accuracy during training and the
collapse diagnostics of each run (configs/suites/toy_stability.py).
"""
import json
import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from interlingua_jax import scoring  # noqa: E402

# Methods drawn beside the bridge, with their style; absent methods are skipped.
_REFERENCES = {"token_budget": ("tab:red", "--"), "target_alone": ("black", ":"),
               "latent_shuffled": ("grey", "-."), "no_latent": ("grey", ":"), "chance": ("silver", "--")}


def _read_json(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def _jsonl(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def capacity_point(run_dir: str) -> dict:
  """One run: its world's bits per question, M, and every method's accuracy with its interval."""
  config = _read_json(os.path.join(run_dir, "config.json"))
  info = _read_json(os.path.join(os.path.dirname(config["data"]["test_path"]), "info.json"))
  agg = _read_json(os.path.join(run_dir, "eval", "aggregate.json"))
  return {"run": os.path.basename(run_dir.rstrip("/")), "bits": info["bits_per_question"],
          "m": config["translator"]["num_soft_tokens"],
          "methods": {m: (v["accuracy"], *v["ci95"]) for m, v in agg["methods"].items()}}


def _errorbar(ax, xs: Sequence[float], values: Sequence[tuple], **style) -> None:
  acc = [100 * v[0] for v in values]
  err = [[100 * (v[0] - v[1]) for v in values], [100 * (v[2] - v[0]) for v in values]]
  ax.errorbar(xs, acc, yerr=err, capsize=3, marker="o", **style)


def capacity_figure(points: Sequence[dict], path: str) -> None:
  """Left: accuracy vs M, one bridge line per difficulty; right: accuracy vs bits, one line per M."""
  fig, (by_m, by_bits) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  levels = sorted({p["bits"] for p in points})
  for bits in levels:
    row = sorted((p for p in points if p["bits"] == bits), key=lambda p: p["m"])
    ms = [p["m"] for p in row]
    _errorbar(by_m, ms, [p["methods"]["latent"] for p in row], label=f"latent, {bits:.1f} bits")
    for method, (color, style) in _REFERENCES.items():
      if all(method in p["methods"] for p in row):
        _errorbar(by_m, ms, [p["methods"][method] for p in row], color=color, linestyle=style, alpha=0.7,
                  label=f"{method}, {bits:.1f} bits")
  for m in sorted({p["m"] for p in points}):
    row = sorted((p for p in points if p["m"] == m), key=lambda p: p["bits"])
    _errorbar(by_bits, [p["bits"] for p in row], [p["methods"]["latent"] for p in row], label=f"latent, M={m}")
    if all("token_budget" in p["methods"] for p in row):
      _errorbar(by_bits, [p["bits"] for p in row], [p["methods"]["token_budget"] for p in row],
                color="tab:red", linestyle="--", alpha=0.4, label=f"token_budget, M={m}")
  by_m.set_xscale("log", base=2)
  by_m.set(xlabel="soft tokens M", ylabel="accuracy (%), 95% CI", title="accuracy vs M")
  by_bits.set(xlabel="bits per question", title="accuracy vs information")
  for ax in (by_m, by_bits):
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def stability_summary(run_dir: str) -> dict:
  """Peak and final accuracy during training, the collapse diagnostics, the bridge's answer diversity."""
  rows = _jsonl(os.path.join(run_dir, "metrics.jsonl"))
  evals = [(r["step"], r["bridged_accuracy"]) for r in rows if "bridged_accuracy" in r]
  logged = [r for r in rows if "soft_similarity" in r]
  samples = [r for r in _jsonl(os.path.join(run_dir, "eval", "samples.jsonl")) if r["method"] == "latent"]
  answers = [scoring.extract_gsm8k(r["prediction"]) for r in samples]
  return {
      "run": os.path.basename(run_dir.rstrip("/")),
      "peak_accuracy": max(a for _, a in evals), "final_accuracy": evals[-1][1], "eval_curve": evals,
      "diagnostics": {k: [(r["step"], r[k]) for r in logged] for k in ("soft_rms", "soft_similarity")},
      "answer_diversity": len(set(answers)) / max(len(answers), 1),
      "test_accuracy": sum(r["correct"] for r in samples) / max(len(samples), 1)}


def stability_figure(summaries: Sequence[dict], path: str) -> None:
  """Validation accuracy, soft-token RMS and pairwise similarity over training, one line per run."""
  fig, axes = plt.subplots(1, 3, figsize=(14, 4))
  for s in summaries:
    style = dict(linestyle="--" if "no_fixes" in s["run"] else "-", label=s["run"])
    axes[0].plot(*zip(*[(step, 100 * a) for step, a in s["eval_curve"]]), marker="o", **style)
    for ax, key in zip(axes[1:], ("soft_rms", "soft_similarity")):
      ax.plot(*zip(*s["diagnostics"][key]), **style)
  for ax, title in zip(axes, ("bridged accuracy during training (%)", "soft-token RMS",
                              "pairwise cosine of different questions' soft tokens")):
    ax.set(xlabel="step", title=title)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
