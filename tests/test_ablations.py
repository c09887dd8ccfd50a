"""The suite runner, against a fake main (a tiny script) so no model is trained here."""
import io
import json
import os
from pathlib import Path
import subprocess
import sys

import ml_collections
import pytest

from configs.suites import paper
from configs.suites import toy
from interlingua_jax import ablations
from interlingua_jax import analysis
from interlingua_jax.core import outputs

REPO = Path(__file__).resolve().parents[1]

# Writes what it was given, then fails when its config's name says so, else writes DONE.
FAKE_MAIN = """
import pathlib, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
workdir = pathlib.Path(args["--workdir"])
workdir.mkdir(parents=True, exist_ok=True)
print("fake main:", " ".join(sys.argv[1:]))
with open(workdir / "calls", "a") as f:
  f.write(" ".join(sys.argv[1:]) + "\\n")
if "fail" in pathlib.Path(args["--config"]).name:
  print("boom: it broke", file=sys.stderr)
  sys.exit(3)
(workdir / "DONE").write_text("")
"""


def _env() -> dict[str, str]:
  path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
  return {**os.environ, "PYTHONPATH": path}


@pytest.fixture
def fake(tmp_path):
  """A fake main command template and three config files: two that succeed, one that fails."""
  script = tmp_path / "fake_main.py"
  script.write_text(FAKE_MAIN)
  for name in ("ok.py", "fail.py"):
    (tmp_path / name).write_text("")
  command = (sys.executable, str(script), "--config={config}", "--workdir={workdir}", "--mode=all")
  return tmp_path, command


def _suite(tmp_path: Path, experiments: list[tuple[str, str, dict]], common=None):
  c = ml_collections.ConfigDict()
  c.experiments = [dict(name=n, config=str(tmp_path / cfg), overrides=o)
                   for n, cfg, o in experiments]
  if common is not None:
    c.overrides = ml_collections.ConfigDict(common, allow_dotted_keys=True)
  return c


def test_overrides_merge_and_format(fake):
  tmp_path, command = fake
  suite = _suite(tmp_path, [("a", "ok.py", {"train.early_stopping": False,
                                            "eval": {"latency_batch_sizes": (1,)}})],
                 common={"toy.cache_dir": "{root}/toy_models", "train.early_stopping": True})
  (exp,) = ablations.parse_suite(suite)
  assert exp.config == tmp_path / "ok.py"
  assert exp.overrides == {"toy.cache_dir": "{root}/toy_models", "train.early_stopping": False,
                           "eval.latency_batch_sizes": (1,)}
  nested = ml_collections.ConfigDict({"toy": {"cache_dir": "x"}, "seed": 1})
  assert outputs.flatten(nested) == {"toy.cache_dir": "x", "seed": 1}
  cmd = ablations.build_command(exp, tmp_path / "root", command)
  assert cmd[1:] == [str(tmp_path / "fake_main.py"), f"--config={tmp_path / 'ok.py'}",
                     f"--workdir={tmp_path / 'root' / 'a'}", "--mode=all",
                     f"--config.toy.cache_dir={tmp_path / 'root'}/toy_models",
                     "--config.train.early_stopping=False",
                     "--config.eval.latency_batch_sizes=(1,)"]


@pytest.mark.parametrize("experiments, match", [
    ([], "has no `experiments`"),
    ([dict(name="a")], "needs at least `name` and `config`"),
    ([dict(name="a", config="ok.py"), dict(name="a", config="ok.py")], "appears twice"),
    ([dict(name="a/b", config="ok.py")], "not usable as a directory name"),
    ([dict(name="a", config="ok.py", override={})], r"unknown keys \['override'\]"),
    ([dict(name="a", config="missing.py")], "'a': config file 'missing.py' not found"),
    ([dict(name="a", config="ok.py", seeds=(1, 1))], "must be distinct integers"),
    ([dict(name="a", config="ok.py", seeds=(1,), overrides={"seed": 3})], "must be distinct integers"),
    ([dict(name="a", config="ok.py", seeds=(1,)), dict(name="a_s1", config="ok.py")], "appear twice"),
])
def test_bad_suites_are_clear_errors(fake, monkeypatch, experiments, match):
  tmp_path, _ = fake
  monkeypatch.chdir(tmp_path)
  c = ml_collections.ConfigDict()
  c.experiments = experiments
  with pytest.raises(ValueError, match=match):
    ablations.parse_suite(c)


def test_seeds_make_one_run_per_seed(fake):
  tmp_path, _ = fake
  c = _suite(tmp_path, [("a", "ok.py", {"x.y": 1}), ("b", "ok.py", {})])
  c.experiments[0]["seeds"] = (3, 7)
  exps = ablations.parse_suite(c)
  assert [(e.name, e.group, e.seed) for e in exps] == [("a_s3", "a", 3), ("a_s7", "a", 7), ("b", "b", None)]
  assert exps[1].overrides == {"x.y": 1, "seed": 7}
  assert "--config.seed=7" in ablations.build_command(exps[1], tmp_path)


def test_runner_skips_done_continues_past_failure_and_reports_it(fake):
  tmp_path, command = fake
  root = tmp_path / "root"
  exps = ablations.parse_suite(_suite(tmp_path, [
      ("finished", "ok.py", {}), ("broken", "fail.py", {}), ("fresh", "ok.py", {"x.y": 1})]))
  (root / "finished").mkdir(parents=True)
  (root / "finished" / "DONE").write_text("")
  console = io.StringIO()
  results = ablations.run_suite(exps, root, command=command, out=console)
  assert [(r.name, r.status, r.returncode) for r in results] == [
      ("finished", "skipped", None), ("broken", "failed", 3), ("fresh", "done", 0)]
  assert not (root / "finished" / "calls").exists()  # never started
  assert (root / "fresh" / "DONE").exists()  # ran although the one before it failed
  assert "--config.x.y=1" in (root / "fresh" / "calls").read_text()
  log = (root / "broken" / "run.log").read_text()
  assert "fake main:" in log and "boom: it broke" in log and "exit status 3" in log
  assert "boom: it broke" in console.getvalue()  # teed to the console too

  summary = io.StringIO()
  assert ablations.report(results, root, out=summary) == 1
  text = summary.getvalue()
  assert "1 done, 1 skipped, 1 failed" in text
  assert f"broken (exit status 3); log: {root / 'broken' / 'run.log'}" in text

  # Rerunning finishes nothing new but retries the failure, appending to its log.
  again = ablations.run_suite(exps, root, command=command, out=io.StringIO())
  assert [r.status for r in again] == ["skipped", "failed", "skipped"]
  assert (root / "broken" / "run.log").read_text().count("exit status 3") == 2
  assert ablations.report([r for r in again if r.name != "broken"], root, out=io.StringIO()) == 0


def test_other_processes_log_to_their_own_file(tmp_path, monkeypatch):
  monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
  assert ablations.log_path(tmp_path) == tmp_path / "run.log"
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  assert ablations.log_path(tmp_path) == tmp_path / "run.2.log"


def test_only_and_roots(fake):
  tmp_path, _ = fake
  exps = ablations.parse_suite(_suite(tmp_path, [("a", "ok.py", {}), ("b", "ok.py", {})]))
  assert [e.name for e in ablations.select(exps, ["b"])] == ["b"]
  with pytest.raises(ValueError, match=r"\['c'\] are not in the suite; its experiments are"):
    ablations.select(exps, ["c"])
  new = ablations.suite_root(str(tmp_path), None)
  assert new.parent == tmp_path and len(new.name) == len("20250101_120000") and not new.exists()
  assert ablations.suite_root(None, str(tmp_path)) == tmp_path
  for root, resume, match in ((None, None, "exactly one"), ("x", "y", "exactly one"),
                              (None, str(tmp_path / "nope"), "no such directory")):
    with pytest.raises(ValueError, match=match):
      ablations.suite_root(root, resume)


def test_paper_and_toy_suites(monkeypatch):
  monkeypatch.chdir(REPO)
  exps = ablations.parse_suite(paper.get_config())
  stability = [f"{arm}_s{seed}" for arm in ("stable_64", "baseline_64") for seed in paper.STABILITY_SEEDS]
  assert [e.name for e in exps] == stability + ["stable_48", "stable_32", "hotpotqa_64"]
  assert len(paper.STABILITY_SEEDS) >= 3
  assert all(e.config == REPO / "configs" / f"{e.group}.py" for e in exps)
  assert all(e.overrides == ({"seed": e.seed} if e.seed is not None else {}) for e in exps)

  suite = toy.get_config()
  runs = {e.name: e for e in ablations.parse_suite(suite)}
  assert {e.overrides["translator.num_soft_tokens"] for e in runs.values()} == {8, 6, 4}
  assert all(e.config == REPO / "configs" / "toy.py" for e in runs.values())
  for arm in ("toy_stable_8", "toy_baseline_8"):
    assert sorted(e.seed for e in runs.values() if e.group == arm) == [0, 1, 2]
  assert runs["toy_baseline_8_s0"].overrides["loss.infonce_weight"] == 0.0
  assert runs["toy_baseline_8_s0"].overrides["train.early_stopping"] is False
  assert dict(suite.overrides) == {"toy.cache_dir": "{root}/toy_models"}
  reduced = ablations.parse_suite(toy.get_config("reduced"))
  assert all(e.config == REPO / "configs" / "tiny.py" for e in reduced)
  assert [(e.group, e.seed) for e in reduced] == [("toy_stable_8", 0), ("toy_stable_8", 1), ("toy_baseline_8", 0)]
  with pytest.raises(ValueError, match="unknown toy suite variant 'tiny'"):
    toy.get_config("tiny")


def test_cli_dry_run_creates_nothing_and_bad_flags_fail_clearly(tmp_path):
  def cli(*flags):
    return subprocess.run([sys.executable, "-m", "interlingua_jax.ablations", *flags], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=60)
  done = cli("--suite=configs/suites/paper.py", f"--root={tmp_path}", "--only=stable_32,stable_64",
             "--dry_run")
  assert done.returncode == 0, done.stderr
  assert done.stdout.count("-m interlingua_jax.main") == 1 + len(paper.STABILITY_SEEDS)  # every seed of stable_64
  assert "stable_48" not in done.stdout
  assert list(tmp_path.iterdir()) == []
  bad = cli("--suite=configs/suites/paper.py", f"--root={tmp_path}", "--only=stable_16")
  assert bad.returncode == 1 and "--only names ['stable_16'] are not in the suite" in bad.stderr
  bad = cli("--suite=configs/suites/paper.py")
  assert bad.returncode == 1 and "exactly one of --root" in bad.stderr


def test_toy_suite_end_to_end(tmp_path):
  """The reduced toy suite through the real main, then the analysis: every file appears."""
  run = subprocess.run([sys.executable, "-m", "interlingua_jax.ablations",
                        "--suite=configs/suites/toy.py:reduced", f"--root={tmp_path}"],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
  (root,) = tmp_path.iterdir()
  names = [e.name for e in ablations.parse_suite(toy.get_config("reduced"))]
  for name in names:
    assert (root / name / "DONE").exists(), name
  assert (root / "toy_models").is_dir()  # pretrained once, shared
  run = subprocess.run([sys.executable, "-m", "interlingua_jax.analysis", f"--root={root}"],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-5000:]
  report = json.loads((root / "analysis" / "ablation_results.json").read_text())
  assert report["not_produced"] == [] and [r["name"] for r in report["runs"]] == names
  assert all(r["complete"] and not r["problems"] for r in report["runs"]), report["runs"]
  expected = ({f"{f}.{ext}" for f in analysis.FIGURES for ext in ("pdf", "png")}
              | {f"{t}.tex" for t in analysis.TABLES} | {"summary.md", "ablation_results.json"})
  for name in expected:
    assert (root / "analysis" / name).stat().st_size > 0, name
  latent = report["seeds"]["toy_stable_8"]["numbers"]["latent_accuracy"]  # two seeds: mean ± sd
  assert latent["n"] == 2 and latent["sd"] is not None and len(latent["per_seed"]) == 2
  latent = report["seeds"]["toy_baseline_8"]["numbers"]["latent_accuracy"]  # one seed: no spread
  assert latent["n"] == 1 and latent["sd"] is None
  assert "±" in (root / "analysis" / "summary.md").read_text()
  for run in report["runs"]:  # the controls are in every run's results
    assert {"latent_shuffled", "no_latent", "chance"} <= run["methods"].keys()
