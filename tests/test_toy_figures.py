"""The toy study's figures read what the runs wrote: world info, aggregates, metrics and samples."""
import json

from interlingua_jax.toy import figures


def _run(root, name, *, m, bits, latent, metrics, predictions):
  world = root / f"world_{bits}"
  world.mkdir(exist_ok=True)
  (world / "info.json").write_text(json.dumps({"bits_per_question": bits}))
  run = root / name
  (run / "eval").mkdir(parents=True)
  (run / "config.json").write_text(json.dumps({"data": {"test_path": str(world / "test.jsonl")},
                                               "translator": {"num_soft_tokens": m}}))
  methods = {"latent": {"accuracy": latent, "ci95": [latent - 0.05, latent + 0.05]},
             "token_budget": {"accuracy": 0.0, "ci95": [0.0, 0.0]},
             "target_alone": {"accuracy": 0.9, "ci95": [0.85, 0.95]}}
  (run / "eval" / "aggregate.json").write_text(json.dumps({"methods": methods}))
  (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
  (run / "eval" / "samples.jsonl").write_text("".join(
      json.dumps({"method": "latent", "prediction": p, "correct": c}) + "\n" for p, c in predictions))
  return str(run)


def test_capacity_points_and_figure(tmp_path):
  runs = [_run(tmp_path, f"cap_{bits}_{m}", m=m, bits=bits, latent=acc, metrics=[], predictions=[])
          for bits, m, acc in ((6.8, 1, 0.5), (6.8, 4, 0.9), (12.6, 1, 0.2), (12.6, 4, 0.7))]
  points = [figures.capacity_point(r) for r in runs]
  assert [(p["bits"], p["m"], p["methods"]["latent"][0]) for p in points] == [
      (6.8, 1, 0.5), (6.8, 4, 0.9), (12.6, 1, 0.2), (12.6, 4, 0.7)]
  assert points[0]["methods"]["target_alone"] == (0.9, 0.85, 0.95)
  figures.capacity_figure(points, str(tmp_path / "capacity.png"))
  assert (tmp_path / "capacity.png").stat().st_size > 10_000


def test_stability_summary_finds_peak_final_collapse_and_diversity(tmp_path):
  metrics = [{"step": 10, "soft_rms": 1.0, "soft_similarity": 0.2}, {"step": 20, "bridged_accuracy": 0.6},
             {"step": 20, "soft_rms": 2.0, "soft_similarity": 0.9}, {"step": 40, "bridged_accuracy": 0.3}]
  predictions = [("1 + 2 = 3\n#### 3", True), ("#### 3", False), ("#### 5", True), ("no answer", False)]
  run = _run(tmp_path, "stability_no_fixes_s0", m=4, bits=12.6, latent=0.5, metrics=metrics,
             predictions=predictions)
  s = figures.stability_summary(run)
  assert (s["peak_accuracy"], s["final_accuracy"], s["test_accuracy"]) == (0.6, 0.3, 0.5)
  assert s["diagnostics"] == {"soft_rms": [(10, 1.0), (20, 2.0)], "soft_similarity": [(10, 0.2), (20, 0.9)]}
  assert s["answer_diversity"] == 3 / 4  # "3", "5" and no answer
  figures.stability_figure([s], str(tmp_path / "stability.png"))
  assert (tmp_path / "stability.png").stat().st_size > 10_000
