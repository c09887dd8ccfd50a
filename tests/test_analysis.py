"""Analysis from synthetic run outputs (docs/CONTRACTS.md "Run outputs") written here."""
import json
import os
from pathlib import Path
import re
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from interlingua_jax import analysis

KV_PER_TOKEN = 2 * 2 * 2 * 16 * 2  # a toy target: 2 layers, 2 kv heads, head_dim 16, bf16
LEVELS = {"fp16": 2048, "int8": 1152, "int4": 640}


def _method(acc: float, lo: float, hi: float, prompt_tokens: float, latency: float) -> dict:
  return {"accuracy": acc, "ci95": [lo, hi], "n": 100, "mean_latency_s": latency,
          "mean_kv_bytes": prompt_tokens * KV_PER_TOKEN, "mean_prompt_tokens": prompt_tokens,
          "mean_generated_tokens": 12.0}


def _aggregate(m: int, latent: float) -> dict:
  return {
      "dataset": "toy", "num_questions": 100, "num_soft_tokens": m,
      "methods": {
          "source_alone": _method(0.80, 0.72, 0.87, 120, 0.050),
          "target_alone": _method(0.75, 0.66, 0.83, 150, 0.060),
          "token_budget": _method(0.05, 0.01, 0.10, m, 0.020),
          "latent": {**_method(latent, latent - 0.07, latent + 0.07, m + 6, 0.030),
                     "ci95_cluster": [latent - 0.15, latent + 0.12]},  # the others as old runs: no clusters
      },
      "comparisons": {"latent_vs_target_alone": {"diff": latent - 0.75, "ci95": [-0.2, -0.05],
                                                 "ci95_cluster": [-0.3, 0.01],
                                                 "mcnemar_p": 0.0123, "mcnemar_p_holm": 0.0246}},
      "kv_saving": {"latent_mean_kv_bytes": (m + 6) * KV_PER_TOKEN,
                    "target_alone_mean_kv_bytes": 150 * KV_PER_TOKEN,
                    "saving_fraction": 1 - (m + 6) / 150},
      "throughput": {"latent": {"1": {"latency_s": 0.03, "samples_per_s": 33.0,
                                      "peak_memory_bytes": None}}},
      "scenario": "latent below the source",
  }


def _compression(m: int, top: float) -> dict:
  return {"num_samples": 50, "num_soft_tokens": m, "text_bytes_mean": 400.0,
          "text_tokens_mean": 150.0,
          "levels": {fmt: {"packet_bytes": b, "bytes_ratio_vs_text": b / 400.0,
                           "accuracy": top - 0.1 * i,
                           "ci95": [top - 0.1 * (i + 1), top - 0.1 * (i - 1)]}
                     for i, (fmt, b) in enumerate(LEVELS.items())}}


def write_run(root: Path, name: str, *, m: int, fixes: bool, evals: list[tuple[int, float]],
              steps: int, stopped_early: bool, latent: float | None = None,
              compression: bool = True, done: bool = True, extra_lines: tuple[str, ...] = (),
              bits: float = 6.8, answers: tuple[str | None, ...] = ("3", "5", "5", None)):
  """A run directory as main.py leaves it; `latent=None` leaves out the evaluation. Its toy world
  (`info.json` with `bits` per question) sits beside the test data the config names."""
  run = root / name
  run.mkdir(parents=True)
  world = root / f"world_{bits}"
  world.mkdir(exist_ok=True)
  (world / "info.json").write_text(json.dumps({"bits_per_question": bits}))
  config = {"name": name, "data": {"dataset": "toy", "test_path": str(world / "test.jsonl")},
            "translator": {"num_soft_tokens": m},
            "loss": {"infonce_weight": 0.05 if fixes else 0.0},
            "train": {"early_stopping": fixes}}
  (run / "config.json").write_text(json.dumps(config))
  rows = [{"step": s, "loss": 3.0 / (1 + s), "ce": 3.0 / (1 + s), "infonce": 0.1, "lr": 1e-3,
           "grad_norm": 1.0, "samples_per_s": 100.0, "soft_rms": 0.04,
           "soft_similarity": 0.5 + (s / steps / 4 if not fixes else 0.0)} for s in range(0, steps + 1, 10)]
  rows += [{"step": s, "bridged_accuracy": a, "eval_num_samples": 32} for s, a in evals]
  lines = [json.dumps(r) for r in rows] + list(extra_lines)
  (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
  best = max(evals, key=lambda e: e[1])
  (run / "train_summary.json").write_text(json.dumps(
      {"best_step": best[0], "best_accuracy": best[1], "final_step": steps,
       "final_accuracy": evals[-1][1], "stopped_early": stopped_early, "target_embedding_rms": 0.016}))
  if latent is not None:
    (run / "eval").mkdir()
    (run / "eval" / "aggregate.json").write_text(json.dumps(_aggregate(m, latent)))
    (run / "eval" / "samples.jsonl").write_text("".join(
        json.dumps({"id": str(i), "method": "latent", "extracted": a}) + "\n" for i, a in enumerate(answers)))
  if compression:
    (run / "compression").mkdir()
    (run / "compression" / "compression.json").write_text(json.dumps(_compression(m, latent)))
  if done:
    (run / "DONE").write_text("")


def write_suite(root: Path) -> None:
  names = ["toy_stable_8", "toy_baseline_8", "toy_stable_6", "toy_stable_4"]
  write_run(root, "toy_stable_8", m=8, fixes=True, steps=80, stopped_early=True, latent=0.62,
            evals=[(0, 0.10), (20, 0.40), (40, 0.60), (60, 0.55), (80, 0.58)])
  # A resumed run logged step 50 twice (the later row counts) and one line is torn.
  write_run(root, "toy_baseline_8", m=8, fixes=False, steps=100, stopped_early=False,
            latent=0.20, evals=[(0, 0.10), (25, 0.50), (50, 0.90), (50, 0.30), (75, 0.20),
                                (100, 0.20)],
            extra_lines=('{"step": 101, "loss": ',))
  write_run(root, "toy_stable_4", m=4, fixes=True, steps=60, stopped_early=True, latent=0.35,
            evals=[(0, 0.05), (30, 0.30), (60, 0.33)], compression=False, done=False, bits=10.5)
  (root / "toy_stable_6").mkdir()  # failed at once: only its log
  (root / "toy_stable_6" / "run.log").write_text("Traceback ...\n")
  (root / "suite.json").write_text(json.dumps(
      {"experiments": [{"name": n, "config": "configs/toy.py", "overrides": {}} for n in names]}))


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
  root = tmp_path_factory.mktemp("suite")
  write_suite(root)
  return root, analysis.analyze(root)


def parse_booktabs(text: str) -> tuple[str, list[str], list[list[str]]]:
  """Column spec, header cells and body rows of the one booktabs tabular in `text`."""
  match = re.search(r"\\begin\{tabular\}\{([lcr]+)\}\n(.*?)\n\\end\{tabular\}", text, re.S)
  assert match, text
  spec, body = match.group(1), match.group(2).split("\n")
  assert body[0] == r"\toprule" and body[2] == r"\midrule" and body[-1] == r"\bottomrule", body
  rows = []
  for line in body[1:-1]:
    if line == r"\midrule":
      continue
    assert line.endswith(r" \\"), line
    cells = [c.strip() for c in re.split(r"(?<!\\)&", line[:-3])]
    assert len(cells) == len(spec), (spec, cells)
    rows.append(cells)
  for line in text.split("\n"):  # a bare %, _, # or $ would break LaTeX
    assert not re.search(r"(?<!\\)[%_#$]", re.sub(r"\\label\{[^}]*\}", "", line)), line
  return spec, rows[0], rows[1:]


def _row(rows: list[list[str]], *first: str) -> list[str]:
  matches = [r for r in rows if r[:len(first)] == list(first)]
  assert len(matches) == 1, (first, rows)
  return matches[0]


def test_every_file_is_written_and_figures_are_real(analysed):
  root, report = analysed
  out = root / "analysis"
  expected = ({f"{f}.{ext}" for f in analysis.FIGURES for ext in ("pdf", "png")}
              | {f"{t}.tex" for t in analysis.TABLES} | {"summary.md", "ablation_results.json"})
  assert set(report["files"]) == expected and report["not_produced"] == []
  for name in expected:
    assert (out / name).stat().st_size > 0, name
  for fig in analysis.FIGURES:
    png, pdf = out / f"{fig}.png", out / f"{fig}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, fig
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000, fig
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 500 and image.shape[1] > 900, (fig, image.shape)
    assert np.std(image[..., :3]) > 0.05, fig  # drawn on, not a blank canvas


def test_results_json_numbers(analysed):
  root, report = analysed
  saved = json.loads((root / "analysis" / "ablation_results.json").read_text())
  assert saved == report
  runs = {r["name"]: r for r in saved["runs"]}
  assert list(runs) == ["toy_stable_8", "toy_baseline_8", "toy_stable_6", "toy_stable_4"]
  stable, base = runs["toy_stable_8"], runs["toy_baseline_8"]
  assert (stable["peak_accuracy"], stable["peak_step"]) == (0.60, 40)
  assert stable["final_accuracy"] == 0.58
  assert stable["degradation"] == pytest.approx(0.02)
  assert (stable["steps_run"], stable["best_step"], stable["stopped_early"]) == (80, 40, True)
  assert (stable["fixes"], stable["num_soft_tokens"], stable["dataset"]) == (True, 8, "toy")
  # The duplicate step 50 resolves to its later row (0.30), so the peak is step 25.
  assert (base["peak_accuracy"], base["peak_step"], base["final_accuracy"]) == (0.50, 25, 0.20)
  assert base["degradation"] == pytest.approx(0.30)
  assert (base["fixes"], base["steps_run"], base["stopped_early"]) == (False, 100, False)
  assert base["methods"]["latent"]["ci95"] == [0.13, 0.27]
  assert base["kv_saving"]["saving_fraction"] == pytest.approx(1 - 14 / 150)
  assert base["compression"]["levels"]["int8"]["bytes_ratio_vs_text"] == 1152 / 400
  assert any("skipped 1 unreadable row" in p for p in base["problems"])
  assert stable["problems"] == [] and stable["complete"]


def test_missing_pieces_are_reported_not_fatal(analysed):
  root, report = analysed
  runs = {r["name"]: r for r in report["runs"]}
  partial, failed = runs["toy_stable_4"], runs["toy_stable_6"]
  assert not partial["complete"] and "compression" not in partial
  assert any("no DONE" in p for p in partial["problems"])
  assert any("compression/compression.json" in p for p in partial["problems"])
  assert partial["methods"]["latent"]["accuracy"] == 0.35  # what it has is still used
  assert not failed["complete"] and "peak_accuracy" not in failed and "methods" not in failed
  assert any("no outputs at all" in p for p in failed["problems"])
  summary = (root / "analysis" / "summary.md").read_text()
  assert "toy_stable_6** (INCOMPLETE" in summary and "no DONE" in summary


def test_ablations_table(analysed):
  root, _ = analysed
  spec, header, rows = parse_booktabs((root / "analysis" / "ablations.tex").read_text())
  assert spec == "lllrrrrrrlrrrr"
  assert header[:5] == ["Run", "Dataset", "M", "Fixes", r"Peak (\%)"]
  assert header[-4:] == ["Distinct answers", r"Top answer (\%)", "Soft-token cosine", "Soft / embedding RMS"]
  assert [r[0] for r in rows] == [r"toy\_stable\_8", r"toy\_baseline\_8", r"toy\_stable\_4"]
  # 3 distinct answers ("3", "5", none) among 4 predictions, "5" half of them; the no-fixes run's cosine rose to 0.75;
  # soft-token RMS 0.04 over the target's embedding RMS 0.016.
  assert _row(rows, r"toy\_baseline\_8") == [r"toy\_baseline\_8", "toy", "8", "no", "50.0", "25",
                                              "20.0", "30.0", "100", "no", "3", "50.0", "0.750", "2.50"]
  assert _row(rows, r"toy\_stable\_8")[3:] == ["yes", "60.0", "40", "58.0", "2.0", "80", "yes", "3", "50.0", "0.500",
                                              "2.50"]


def test_main_results_and_comparisons_tables(analysed):
  root, _ = analysed
  _, header, rows = parse_booktabs((root / "analysis" / "main_results.tex").read_text())
  assert header == ["Run", "Dataset", "M", r"source\_alone", r"target\_alone", r"token\_budget",
                    "latent"]
  assert _row(rows, r"toy\_stable\_8")[3:] == ["80.0 [72.0, 87.0]", "75.0 [66.0, 83.0]",
                                              "5.0 [1.0, 10.0]", "62.0 [47.0, 74.0]"]  # latent's cluster interval
  assert _row(rows, r"toy\_stable\_4")[2] == "4"
  assert "cluster-bootstrap intervals" in (root / "analysis" / "main_results.tex").read_text()
  _, header, rows = parse_booktabs((root / "analysis" / "comparisons.tex").read_text())
  assert header[3:5] == [r"95\% CI", r"95\% CI (cluster)"]
  assert _row(rows, r"toy\_baseline\_8") == [r"toy\_baseline\_8", r"latent vs target\_alone",
                                             "-55.0", "[-20.0, -5.0]", "[-30.0, 1.0]", "0.0123", "0.0246"]


def test_compression_and_cost_tables(analysed):
  root, _ = analysed
  _, header, rows = parse_booktabs((root / "analysis" / "compression.tex").read_text())
  assert header == ["Run", "Format", "Bytes", "Bytes / text", r"Accuracy (\%)"]
  assert {r[0] for r in rows} == {r"toy\_stable\_8", r"toy\_baseline\_8"}  # stable_4 has none
  assert _row(rows, r"toy\_stable\_8", "text (UTF-8)")[2:4] == ["400", "1.00"]
  assert _row(rows, r"toy\_stable\_8", "fp16")[2:] == ["2,048", "5.12", "62.0 [52.0, 72.0]"]
  assert _row(rows, r"toy\_baseline\_8", "int4")[2:] == ["640", "1.60", "0.0 [-10.0, 10.0]"]
  _, _, rows = parse_booktabs((root / "analysis" / "inference_costs.tex").read_text())
  latent = _row(rows, r"toy\_stable\_8", "latent")
  assert latent[2:] == ["14.0", f"{14 * KV_PER_TOKEN / 1024:.1f}", f"{14 / 150:.3f}", "0.030",
                        "12.0"]


def test_nothing_to_plot_is_reported_and_stale_outputs_removed(tmp_path):
  (tmp_path / "crashed").mkdir()
  (tmp_path / "crashed" / "run.log").write_text("boom\n")
  (tmp_path / "analysis").mkdir()
  (tmp_path / "analysis" / "stability.png").write_bytes(b"old")
  report = analysis.analyze(tmp_path)
  assert report["files"] == ["summary.md", "ablation_results.json"]
  assert len(report["not_produced"]) == len(analysis.FIGURES) + len(analysis.TABLES)
  assert "inference_costs.pdf/png: no run has the data for this figure" in report["not_produced"]
  assert "inference_costs.tex: no run has the data for this table" in report["not_produced"]
  assert not (tmp_path / "analysis" / "stability.png").exists()


def test_bad_root_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="no such directory"):
    analysis.analyze(tmp_path / "missing")
  (tmp_path / "toy_models").mkdir()
  with pytest.raises(ValueError, match="not its parent"):
    analysis.analyze(tmp_path)


def test_cli(tmp_path):
  repo = Path(__file__).resolve().parents[1]
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}

  def cli(root):
    return subprocess.run([sys.executable, "-m", "interlingua_jax.analysis", f"--root={root}"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=120)
  bad = cli(tmp_path / "missing")
  assert bad.returncode == 1 and "no such directory" in bad.stderr
  (tmp_path / "crashed").mkdir()
  (tmp_path / "crashed" / "run.log").write_text("boom\n")
  ok = cli(tmp_path)
  assert ok.returncode == 0, ok.stderr
  assert "Wrote 2 files" in ok.stdout and "crashed: no outputs at all" in ok.stderr


def test_seeds_are_reported_per_seed_and_as_mean_sd(tmp_path):
  """A suite entry trained with several seeds: every headline number per seed, mean ± sd, a t interval."""
  entries = []
  for seed, latent, peak in ((0, 0.60, 0.62), (1, 0.70, 0.74), (2, 0.80, 0.80)):
    name = f"toy_stable_8_s{seed}"
    write_run(tmp_path, name, m=8, fixes=True, steps=40, stopped_early=False, latent=latent,
              evals=[(0, 0.1), (20, peak), (40, peak - 0.02)])
    entries.append({"name": name, "group": "toy_stable_8", "seed": seed, "config": "configs/toy.py",
                    "overrides": {"seed": seed}})
  (tmp_path / "suite.json").write_text(json.dumps({"experiments": entries}))
  report = analysis.analyze(tmp_path)
  latent = report["seeds"]["toy_stable_8"]["numbers"]["latent_accuracy"]
  assert latent["per_seed"] == {"0": 0.60, "1": 0.70, "2": 0.80} and latent["n"] == 3
  assert latent["mean"] == pytest.approx(0.70) and latent["sd"] == pytest.approx(0.10)
  half = 4.302652729911275 * 0.10 / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
  assert latent["ci95"] == pytest.approx([0.70 - half, 0.70 + half])
  assert report["seeds"]["toy_stable_8"]["numbers"]["peak_accuracy"]["mean"] == pytest.approx(0.72)
  _, header, rows = parse_booktabs((tmp_path / "analysis" / "seeds.tex").read_text())
  assert header == ["Entry", "Number", "Seeds", "Per seed", r"Mean \textpm{} sd", "95\\% CI"]
  assert _row(rows, r"toy\_stable\_8", r"latent\_accuracy")[2:] == [
      "3", "s0: 60.0, s1: 70.0, s2: 80.0", r"70.0 \textpm{} 10.0", f"[{100 * (0.7 - half):.1f}, "
      f"{100 * (0.7 + half):.1f}]"]


def test_capacity_and_stability_figures_read_world_info_and_collapse_diagnostics(analysed):
  root, report = analysed
  runs = {r["name"]: r for r in report["runs"]}
  assert (runs["toy_stable_8"]["bits_per_question"], runs["toy_stable_4"]["bits_per_question"]) == (6.8, 10.5)
  assert (runs["toy_baseline_8"]["distinct_answers"], runs["toy_baseline_8"]["top_answer_share"]) == (3, 0.5)
  assert runs["toy_baseline_8"]["final_soft_similarity"] == pytest.approx(0.75)
  capacity = analysis.figures.fig_capacity(report["runs"])
  by_m, by_bits = capacity.axes  # two worlds: a second panel against bits per question
  assert {text.get_text() for text in by_m.get_legend().get_texts()} >= {
      "latent (toy, 6.8 bits)", "latent (toy, 10.5 bits)", "token_budget (toy, 6.8 bits)"}
  assert by_bits.get_xlabel().startswith("bits per question")
  loaded = [analysis.runs.load_run(e["name"], e["path"]) for e in analysis.runs.find_runs(root)]
  by_name = {r["name"]: r for r in report["runs"]}
  stability = analysis.figures.fig_stability(loaded, by_name, {r.name: "C0" for r in loaded})
  accuracy, similarity, rms = stability.axes
  assert similarity.get_title().startswith("cosine") and rms.get_title() == "soft-token RMS"
  assert max(similarity.lines[1].get_ydata()) == pytest.approx(0.75)  # toy_baseline_8, no fixes, rising


def test_a_latent_kinds_aggregate_is_checked_target_by_target():
  from interlingua_jax.analysis import runs
  llama = {"methods": {"latent": {"f1": 0.5}, "pca": {"f1": 0.2}}}
  assert runs._targets_error({"targets": {"llama": llama, "qwen": llama}}, "agg.json") is None
  error = runs._targets_error({"targets": {"llama": llama, "qwen": {"methods": {"latent": {"em": 0.4}}}}}, "agg.json")
  assert error == "agg.json (target 'qwen'): methods entry 'latent' lacks numeric f1"
  assert runs._targets_error({"targets": {}}, "agg.json") == "agg.json has no `targets` object"
  assert runs._targets_error({"methods": {}}, "agg.json") == "agg.json has no `targets` object"


def test_gates_figure_plots_each_runs_open_probabilities_and_only_where_gates_exist(tmp_path):
  from interlingua_jax.analysis import figures
  logits = [-2.0, 0.0, 3.0]
  gated = {"name": "kv_s0", "group": "kv",
           "bridge_summary": {"gates": [{"target_layer": i + 4, "source_layer": i, "logit": x, "open": x > 0}
                                        for i, x in enumerate(logits)]}}
  assert figures.fig_gates_per_layer([{"name": "soft", "group": "soft"}]) is None
  fig = figures.fig_gates_per_layer([gated, {"name": "soft", "group": "soft"}])
  (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "kv_s0"]
  np.testing.assert_array_equal(line.get_xdata(), [4, 5, 6])
  np.testing.assert_allclose(line.get_ydata(), 1 / (1 + np.exp(-np.array(logits))), rtol=1e-12)
