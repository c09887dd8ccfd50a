"""The analysis tables: one plain-text table model, written as booktabs LaTeX and as markdown."""
import dataclasses
from typing import Any

from interlingua_jax.core.outputs import is_number as _is_num

METHOD_ORDER = ("source_alone", "target_alone", "text_relay", "token_budget", "token_budget_prompt", "latent",
                "latent_shuffled", "no_latent", "chance")


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


def _is_interval(ci: Any) -> bool:
  return isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_is_num(v) for v in ci)


def _interval(ci: Any) -> str:
  return f"[{_pct(ci[0])}, {_pct(ci[1])}]" if _is_interval(ci) else "--"


def _acc_ci(m: dict | None, keys: tuple[str, ...] = ("ci95",)) -> str:
  """Accuracy and the first of the intervals `keys` that `m` has."""
  if not m or not _is_num(m.get("accuracy")):
    return "--"
  ci = next((m[k] for k in keys if _is_interval(m.get(k))), None)
  return f"{_pct(m['accuracy'])} {_interval(ci)}" if ci else _pct(m["accuracy"])


def _int(x: Any) -> str:
  return f"{round(x):,}" if _is_num(x) else "--"


def _num(x: Any, digits: int) -> str:
  return f"{x:,.{digits}f}" if _is_num(x) else "--"


def _ratio(x: Any) -> str:
  if not _is_num(x):
    return "--"
  return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def methods_in(results: list[dict]) -> list[str]:
  seen = {m for r in results for m in (r.get("methods") or {})}
  return [m for m in METHOD_ORDER if m in seen] + sorted(seen - set(METHOD_ORDER))


def main_results_table(results: list[dict]) -> Table | None:
  rows = [r for r in results if r.get("methods")]
  if not rows:
    return None
  methods = methods_in(rows)
  return Table(
      "main_results",
      "Accuracy (%) of every method on the same test questions, with 95% cluster-bootstrap intervals "
      "(resampling problems / articles, as near-duplicate questions are not independent; runs evaluated before "
      "clusters were recorded show exact Clopper-Pearson intervals). Exact per-question intervals are in "
      "aggregate.json. latent_shuffled, no_latent and chance are controls.",
      "lll" + "r" * len(methods), ["Run", "Dataset", "M"] + methods,
      [[[r["name"], str(r["dataset"] or "--"), _int(r["num_soft_tokens"])]
        + [_acc_ci(r["methods"].get(m), ("ci95_cluster", "ci95")) for m in methods] for r in rows]])


def _groups(results: list[dict], key: str, rows_of) -> list[list[list[str]]]:
  """One row group per run that has `key`: `rows_of(run, run[key])`, empty groups dropped."""
  groups = [rows_of(r, r[key]) for r in results if r.get(key)]
  return [g for g in groups if g]


def comparisons_table(results: list[dict]) -> Table | None:
  def rows_of(r: dict, comps: dict) -> list[list[str]]:
    rows = []
    for key, c in comps.items():
      if not isinstance(c, dict):
        continue
      p, holm = c.get("mcnemar_p"), c.get("mcnemar_p_holm")
      rows.append([r["name"], key.replace("_vs_", " vs "), _pct(c.get("diff")), _interval(c.get("ci95")),
                   _interval(c.get("ci95_cluster")), f"{p:.3g}" if _is_num(p) else "--",
                   f"{holm:.3g}" if _is_num(holm) else "--"])
    return rows

  groups = _groups(results, "comparisons", rows_of)
  if not groups:
    return None
  return Table(
      "comparisons",
      "Paired differences in accuracy (latent minus the other method, percentage points) "
      "with paired-bootstrap 95% intervals over questions and over clusters (problems / articles: "
      "near-duplicate questions resampled together), exact McNemar p-values and the same p-values "
      "Holm-adjusted across the comparisons of the run.",
      "llrrrrr", ["Run", "Comparison", "Difference (pp)", "95% CI", "95% CI (cluster)", "McNemar p", "Holm p"],
      groups)


def ablations_table(results: list[dict]) -> Table | None:
  rows = [r for r in results if "peak_accuracy" in r]
  if not rows:
    return None
  def yes_no(x):
    return "--" if x is None else ("yes" if x else "no")
  return Table(
      "ablations",
      "Stability ablation: bridged accuracy (%) on the validation split during training at its peak and at "
      "the end; degradation = peak - final (percentage points). Fixes = InfoNCE + early stopping. Collapse "
      "diagnostics: distinct answers among the bridge's test predictions, the share of its most common answer (%), "
      "the last logged cosine between different questions' soft tokens, and their last logged RMS over the "
      "target's token-embedding RMS.",
      "lllrrrrrrlrrrr",
      ["Run", "Dataset", "M", "Fixes", "Peak (%)", "Peak step", "Final (%)", "Degradation (pp)",
       "Steps", "Stopped early", "Distinct answers", "Top answer (%)", "Soft-token cosine", "Soft / embedding RMS"],
      [[[r["name"], str(r["dataset"] or "--"), _int(r["num_soft_tokens"]), yes_no(r["fixes"]),
         _pct(r["peak_accuracy"]), _int(r["peak_step"]), _pct(r["final_accuracy"]),
         _pct(r["degradation"]), _int(r["steps_run"]), yes_no(r["stopped_early"]),
         _int(r.get("distinct_answers")), _pct(r.get("top_answer_share")), _num(r.get("final_soft_similarity"), 3),
         _num(r.get("soft_rms_ratio"), 2)]
        for r in rows]])


def compression_table(results: list[dict]) -> Table | None:
  def rows_of(r: dict, comp: dict) -> list[list[str]]:
    levels = sorted(comp["levels"].items(), key=lambda kv: -kv[1]["packet_bytes"])
    return [[r["name"], "text (UTF-8)", _int(comp.get("text_bytes_mean")), "1.00", "--"]] + [
        [r["name"], fmt, _int(lv["packet_bytes"]), _ratio(lv.get("bytes_ratio_vs_text")), _acc_ci(lv)]
        for fmt, lv in levels]

  groups = _groups(results, "compression", rows_of)
  if not groups:
    return None
  return Table(
      "compression",
      "Wire size of the soft tokens per quantization level against the UTF-8 text prompt "
      "(mean bytes per question; a ratio above 1 means the packet is larger than the text), "
      "and bridged accuracy (%) after the round trip.",
      "llrrr", ["Run", "Format", "Bytes", "Bytes / text", "Accuracy (%)"], groups)


def inference_costs_table(results: list[dict]) -> Table | None:
  def rows_of(r: dict, methods: dict) -> list[list[str]]:
    target_kv = (methods.get("target_alone") or {}).get("mean_kv_bytes")
    rows = []
    for name in methods_in([r]):
      m = methods[name]
      kv = m.get("mean_kv_bytes")
      share = kv / target_kv if _is_num(kv) and _is_num(target_kv) and target_kv > 0 else None
      rows.append([r["name"], name, _num(m.get("mean_prompt_tokens"), 1),
                   _num(kv / 1024 if _is_num(kv) else None, 1), _num(share, 3),
                   _num(m.get("mean_latency_s"), 3), _num(m.get("mean_generated_tokens"), 1)])
    return rows

  groups = _groups(results, "methods", rows_of)
  if not groups:
    return None
  return Table(
      "inference_costs",
      "Inference cost per question: target prompt tokens, KV-cache held (KiB; exact, with "
      "grouped-query attention), its share of target_alone's, latency (s), generated tokens.",
      "llrrrrr", ["Run", "Method", "Prompt tokens", "KV cache (KiB)", "KV / target_alone",
                  "Latency (s)", "Generated tokens"], groups)


def seeds_table(groups: dict[str, dict]) -> Table | None:
  """Every headline number of each suite entry: per seed, then mean ± sd and a 95% t interval across seeds."""
  rows = []
  for group, g in groups.items():
    block = []
    for key, v in g["numbers"].items():
      per_seed = ", ".join(f"s{s}: {_pct(x)}" for s, x in v["per_seed"].items())
      spread = f"{_pct(v['mean'])} ± {_pct(v['sd'])}" if v["sd"] is not None else _pct(v["mean"])
      ci = f"[{_pct(v['ci95'][0])}, {_pct(v['ci95'][1])}]" if v["ci95"] else "--"
      block.append([group, key, str(v["n"]), per_seed, spread, ci])
    if block:
      rows.append(block)
  if not rows:
    return None
  return Table(
      "seeds",
      "Headline numbers (%) across training seeds: per seed, mean ± sample sd, and a Student-t 95% "
      "interval for the mean (one seed: no spread).",
      "llrlrr", ["Entry", "Number", "Seeds", "Per seed", "Mean ± sd", "95% CI"], rows)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                   "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                   "^": r"\textasciicircum{}", "±": r"\textpm{}"}


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

