"""The analysis figures (PDF + PNG), each from the loaded runs or their summaries; None when no run has the data."""
import math
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
from matplotlib.ticker import FuncFormatter  # pylint: disable=g-import-not-at-top

from interlingua_jax.analysis.runs import Run, fixes_label as _fixes_label  # noqa: E402
from interlingua_jax.analysis.tables import methods_in as _methods  # noqa: E402
from interlingua_jax.core import outputs  # noqa: E402
from interlingua_jax.core.outputs import is_number as _is_num  # noqa: E402

STYLE = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 9,
         "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True, "grid.alpha": 0.3}


save = outputs.save_figure


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
  """Bridged accuracy (peak and final marked) and the collapse diagnostics over training, per run.

  Runs that have a twin (same dataset and M) with the opposite fixes; else every curve. Dashed = no fixes.
  """
  curves = [r for r in runs if r.eval_rows]
  key = lambda r: (results[r.name]["dataset"], results[r.name]["num_soft_tokens"])
  fixed = {key(r) for r in curves if results[r.name]["fixes"] is True}
  unfixed = {key(r) for r in curves if results[r.name]["fixes"] is False}
  chosen = [r for r in curves if key(r) in fixed & unfixed] or curves
  if not chosen:
    return None
  diagnostics = [k for k in ("soft_similarity", "soft_rms") if any(k in row for r in chosen for row in r.train_rows)]
  fig, axes = plt.subplots(1, 1 + len(diagnostics), figsize=(8.5 + 5 * len(diagnostics), 5), squeeze=False)
  ax = axes[0, 0]
  for r in chosen:
    res = results[r.name]
    style = dict(color=colors[r.name], ls="--" if res["fixes"] is False else "-")
    ax.plot(*_steps(r.eval_rows, "bridged_accuracy", 100), lw=1.8, label=f"{r.name} ({_fixes_label(res['fixes'])})",
            **style)
    for step_key, acc_key, marker in (("peak_step", "peak_accuracy", "*"), ("final_step", "final_accuracy", "o")):
      ax.plot(res[step_key], 100 * res[acc_key], marker=marker, ms=15 if marker == "*" else 9, color=colors[r.name],
              mec="black", ls="none")
    for diag_ax, k in zip(axes[0, 1:], diagnostics):
      diag_ax.plot(*_steps([row for row in r.train_rows if k in row], k), lw=1.2, **style)
  handles, _ = ax.get_legend_handles_labels()
  handles += [Line2D([], [], marker="*", ms=13, color="grey", mec="black", ls="none", label="peak"),
              Line2D([], [], marker="o", ms=8, color="grey", mec="black", ls="none", label="final")]
  ax.legend(handles=handles, fontsize=7)
  ax.set(xlabel="training step", ylabel="bridged accuracy on validation (%)",
         title="InfoNCE + early stopping vs no fixes")
  titles = {"soft_similarity": "cosine between different questions' soft tokens", "soft_rms": "soft-token RMS"}
  for diag_ax, k in zip(axes[0, 1:], diagnostics):
    diag_ax.set(xlabel="training step", title=titles[k])
    diag_ax.ticklabel_format(axis="y", useOffset=False)  # a calibrated RMS is constant: show its value, not noise
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


_CAPACITY_STYLES = {"latent": ("o", "-"), "token_budget": ("s", "--"), "target_alone": ("^", ":"),
                    "latent_shuffled": ("x", "-."), "no_latent": ("v", ":"), "chance": ("d", ":")}


def _level(r: dict) -> str:
  """A difficulty level: the dataset, and a toy world's bits per question when known."""
  bits = r.get("bits_per_question")
  return f"{r['dataset']}, {bits:.1f} bits" if _is_num(bits) else str(r["dataset"])


def fig_capacity(results: list[dict]) -> plt.Figure | None:
  """Accuracy against M (one line per method and difficulty level) and, when the runs span several
  toy worlds, against bits per question (the bridge, one line per M): where do M soft tokens stop
  being enough? Runs with the fixes only, so the no-fixes arm of an ablation does not mix in."""
  runs = [r for r in results if r.get("methods") and "latent" in r["methods"]
          and r["fixes"] is not False and _is_num(r["num_soft_tokens"]) and r["num_soft_tokens"] > 0]
  if not runs:  # a cache bridge passes no soft tokens (M = 0): no curve over M
    return None
  levels = sorted({_level(r) for r in runs})
  by_bits = len({r.get("bits_per_question") for r in runs if _is_num(r.get("bits_per_question"))}) > 1
  fig, axes = plt.subplots(1, 2 if by_bits else 1, figsize=(16 if by_bits else 8.5, 5.5), squeeze=False)
  ax = axes[0, 0]
  for i, level in enumerate(levels):
    at_level = sorted((r for r in runs if _level(r) == level), key=lambda r: r["num_soft_tokens"])
    for method, (marker, ls) in _CAPACITY_STYLES.items():
      pts = [(r["num_soft_tokens"], r["methods"][method]) for r in at_level if method in r["methods"]]
      if pts:
        label = method if len(levels) == 1 else f"{method} ({level})"
        _errorbar(ax, [p[0] for p in pts], [p[1] for p in pts], marker=marker, ls=ls, color=f"C{i}",
                  alpha=1.0 if method == "latent" else 0.6, label=label)
  ax.set_xscale("log", base=2)
  ax.set_xticks(sorted({r["num_soft_tokens"] for r in runs}), [str(m) for m in sorted({r["num_soft_tokens"] for r in runs})])
  ax.set(xlabel="soft tokens M (tokens given to the target)", ylabel="accuracy (%), 95% CI",
         title="Accuracy against the number of soft tokens", ylim=(-2, 102))
  ax.legend(fontsize=7)
  if by_bits:
    ax = axes[0, 1]
    for m in sorted({r["num_soft_tokens"] for r in runs}):
      pts = sorted((r["bits_per_question"], r["methods"]["latent"]) for r in runs
                   if r["num_soft_tokens"] == m and _is_num(r.get("bits_per_question")))
      _errorbar(ax, [p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"latent, M={m}")
    ax.set(xlabel="bits per question (toy world info.json)", title="Accuracy against information", ylim=(-2, 102))
    ax.legend(fontsize=7)
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




def fig_gates_per_layer(results: list[dict]) -> plt.Figure | None:
  """The learned per-layer gates of the runs whose bridge has them (`bridge_summary.gates`): the gate's
  probability of being open, sigmoid(logit), against the target layer; one line per run, a suite entry's seeds
  in one color. At inference a gate is hard: open when the probability exceeds 0.5."""
  runs = [r for r in results if (r.get("bridge_summary") or {}).get("gates")]
  if not runs:
    return None
  groups = sorted({r["group"] for r in runs})
  fig, ax = plt.subplots(figsize=(9, 4.8))
  for r in runs:
    gates = r["bridge_summary"]["gates"]
    color = f"C{groups.index(r['group']) % 10}"
    ax.plot([g["target_layer"] for g in gates], [1 / (1 + math.exp(-g["logit"])) for g in gates], color=color,
            marker="o", ms=4, lw=1.2, alpha=0.8, label=r["name"])
  ax.axhline(0.5, color="k", ls=":", lw=1, label="open / closed at inference")
  layers = sorted({g["target_layer"] for r in runs for g in r["bridge_summary"]["gates"]})
  ax.set_xticks(layers if len(layers) <= 16 else layers[::max(1, len(layers) // 12)])
  ax.set(xlabel="target layer", ylabel="P(gate open) = sigmoid(logit)", ylim=(-0.02, 1.02),
         title="Learned fusion gates per layer")
  ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
  fig.tight_layout()
  return fig
