"""Reliability (issue 14): one `error:` line for every bad input, a locked workdir, checkpoints that survive
crashes and corruption, evaluation from the workdir alone, a quiet console.

The command line runs in-process (`main.run(argv)` returns the exit status), so the table of bad inputs
costs no interpreter start-ups; only the two-process lock test starts real processes.
"""
import copy
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from interlingua_jax import main
from interlingua_jax.core import cli, outputs, workdir as workdir_lib
from interlingua_jax.models import inputs
from interlingua_jax.run import experiment, stages
from interlingua_jax.training.checkpoints import Checkpoints, abstract_like
from interlingua_jax.training.loop import EarlyStopping, Loop, LoopSettings, MetricsLog, fit
from interlingua_jax.training.state import TrainState, global_batch
from interlingua_jax.data import pipeline
from interlingua_jax.core.errors import ConfigError, InputError, WorkdirError
from interlingua_jax.models import CheckpointError
from tiny_system import write_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tiny_mistral_dir, tiny_llama_dir, tiny_tokenizer, tmp_path_factory):
  root = tmp_path_factory.mktemp("reliability")
  return dict(source=tiny_mistral_dir, target=tiny_llama_dir, tokenizer=tiny_tokenizer, root=root,
              data=write_data(str(root)))


def tiny_argv(workdir, source, target, data, *extra) -> list[str]:
  """The tiny config on the conftest checkpoints: a valid command line that `extra` then spoils."""
  return ["main", "--config=configs/tiny.py", f"--workdir={workdir}", "--mode=train",
          f"--config.source.path={source}", f"--config.target.path={target}", "--config.source.dtype=float32",
          "--config.target.dtype=float32", "--config.data.dataset=gsm8k", f"--config.data.train_path={data[0]}",
          f"--config.data.test_path={data[1]}", "--config.data.num_shots=1", "--config.data.answer_anchor=A:",
          "--config.mesh.data=1", *extra]


# --------------------------------------------------------------------------------------------------
# Bad inputs, each built from a scratch directory `d` and the tiny fixtures `t`.


def _copy_model(t, d, which="source", **kwargs) -> str:
  path = str(d / f"model_{which}")
  shutil.copytree(t[which], path, **kwargs)
  return path


def _edit_config(t, d, **fields) -> str:
  path = _copy_model(t, d)
  with open(os.path.join(path, "config.json")) as f:
    hf = json.load(f)
  hf.update(fields)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(hf, f)
  return path


def _edit_tensor(t, d, edit) -> str:
  path = _copy_model(t, d)
  file = os.path.join(path, "model.safetensors")
  tensors = load_file(file)
  name = "model.embed_tokens.weight"
  tensors[name] = edit(tensors[name])
  save_file(tensors, file, metadata={"format": "pt"})
  return path


def _broken_config(t, d) -> str:
  path = _copy_model(t, d)
  with open(os.path.join(path, "config.json"), "w") as f:
    f.write("{")
  return path


def _nan(w):
  w = w.copy()
  w[3, 5] = np.nan
  return w


def _extra_token(t, d) -> str:
  path = _copy_model(t, d)
  tok = copy.deepcopy(t["tokenizer"])
  tok.add_tokens(["<beyond_the_vocabulary>"])
  tok.save_pretrained(path)
  return path


def _write(d, name: str, text: str = "") -> str:
  (d / name).write_text(text)
  return str(d / name)


def _held_workdir(d):
  lock = workdir_lib.Lock(str(d / "work"))
  os.makedirs(str(d / "work"), exist_ok=True)
  lock.acquire()
  return lock


NO_ANSWER_ROW = '{"question": "What is 1 + 1?"}\n'
OK_ROW = '{"question": "What is 1 + 1?", "answer": "1 + 1 = 2\\n#### 2"}\n'
# (name, extra argv given (tmp dir d, fixtures t), words the one error line must hold)
CASES = [
    ("config file missing", lambda d, t: ["--config=configs/nope.py"], "nope.py"),
    ("config file syntax error", lambda d, t: [f"--config={_write(d, 'my_config.py', 'def get_config(:')}"],
     "my_config.py"),
    ("config file without get_config", lambda d, t: [f"--config={_write(d, 'my_config.py', 'x = 1')}"], "get_config"),
    ("unknown override", lambda d, t: ["--config.optim.learnin_rate=3"], "learnin_rate"),
    ("override of the wrong type", lambda d, t: ["--config.train.steps=abc"], "abc"),
    ("unknown mode", lambda d, t: ["--mode=bogus"], "mode"),
    ("unknown flag", lambda d, t: ["--wrokdir=x"], "wrokdir"),
    ("two config files", lambda d, t: ["--config=configs/tiny.py", "--config=configs/toy.py"],
     "--config is given twice"),
    ("workdir is a file", lambda d, t: [f"--workdir={_write(d, 'a_file')}"], "is a file"),
    ("workdir under a file", lambda d, t: [f"--workdir={_write(d, 'a_file')}/sub"], "cannot be created"),
    ("workdir held by another run", lambda d, t: [f"--workdir={d / 'work'}"] if _held_workdir(d) else [],
     f"in use by another run (pid {os.getpid()}"),
    ("train.eval_every=0", lambda d, t: ["--config.train.eval_every=0"], "train.eval_every=0"),
    ("train.steps=0", lambda d, t: ["--config.train.steps=0"], "train.steps=0"),
    ("train.batch_size=0", lambda d, t: ["--config.train.batch_size=0"], "train.batch_size=0"),
    ("train.log_every=0", lambda d, t: ["--config.train.log_every=0"], "train.log_every=0"),
    ("train.patience=0", lambda d, t: ["--config.train.patience=0"], "train.patience=0"),
    ("train.keep_checkpoints=0", lambda d, t: ["--config.train.keep_checkpoints=0"], "train.keep_checkpoints=0"),
    ("train.eval_num_samples=0", lambda d, t: ["--config.train.eval_num_samples=0"], "train.eval_num_samples"),
    ("num_soft_tokens=0", lambda d, t: ["--config.translator.num_soft_tokens=0"], "translator.num_soft_tokens"),
    ("bottleneck not divisible", lambda d, t: ["--config.translator.bottleneck=31"],
     "divisible by translator.num_heads"),
    ("dropout 1.5", lambda d, t: ["--config.translator.dropout=1.5"], "translator.dropout=1.5"),
    ("depth 0", lambda d, t: ["--config.translator.depth=0"], "translator.depth=0"),
    ("temperature 0", lambda d, t: ["--config.loss.temperature=0"], "loss.temperature"),
    ("negative infonce weight", lambda d, t: ["--config.loss.infonce_weight=-1"], "loss.infonce_weight"),
    ("negative learning rate", lambda d, t: ["--config.optim.learning_rate=-0.1"], "optim.learning_rate"),
    ("warmup beyond the run", lambda d, t: ["--config.optim.warmup_steps=100"], "below train.steps=6"),
    ("b2 = 1", lambda d, t: ["--config.optim.b2=1.0"], "optim.b2"),
    ("clip_norm 0", lambda d, t: ["--config.optim.clip_norm=0"], "optim.clip_norm"),
    ("unknown eval method", lambda d, t: ["--config.eval.methods=('latent', 'oracle')"], "oracle"),
    ("eval.num_samples=0", lambda d, t: ["--config.eval.num_samples=0"], "eval.num_samples"),
    ("eval.batch_size=0", lambda d, t: ["--config.eval.batch_size=0"], "eval.batch_size"),
    ("eval.max_new_tokens=0", lambda d, t: ["--config.eval.max_new_tokens=0"], "eval.max_new_tokens"),
    ("decreasing buckets", lambda d, t: ["--config.eval.length_buckets=(64, 32)"], "eval.length_buckets"),
    ("unknown wire format", lambda d, t: ["--config.compression.formats=('int3',)"], "int3"),
    ("group_size 0", lambda d, t: ["--config.compression.group_size=0"], "compression.group_size"),
    ("mesh larger than the devices", lambda d, t: ["--config.mesh.data=8"], "needs 8 devices but 4 exist"),
    ("mesh.model not dividing", lambda d, t: ["--config.mesh.data=-1", "--config.mesh.model=3"], "mesh.model=3"),
    ("mesh.data=0", lambda d, t: ["--config.mesh.data=0"], "mesh.data=0"),
    ("batch not divisible by the mesh", lambda d, t: ["--config.mesh.data=4", "--config.train.batch_size=6"],
     "divisible by the mesh's data axis"),
    ("unknown dtype", lambda d, t: ["--config.source.dtype=float13"], "source.dtype"),
    ("unknown dataset", lambda d, t: ["--config.data.dataset=mmlu"], "data.dataset"),
    ("max_source_len=0", lambda d, t: ["--config.data.max_source_len=0"], "data.max_source_len"),
    ("profile start below -1", lambda d, t: ["--config.profile.start_step=-5"], "profile.start_step"),
    ("missing data file", lambda d, t: [f"--config.data.train_path={d}/none.jsonl"], "data.train_path"),
    ("empty model path", lambda d, t: ["--config.source.path="], "source.path"),
    ("model path that does not exist", lambda d, t: [f"--config.source.path={d}/none"], "not a checkpoint directory"),
    # Found while reading the inputs, before (or while) the weights load.
    ("data line of 2 MB", lambda d, t: [f"--config.data.train_path={_write(d, 'bad.jsonl', OK_ROW + 'x' * 2**21)}"],
     "line 2: longer than"),
    ("data line not JSON", lambda d, t: [f"--config.data.train_path={_write(d, 'bad.jsonl', OK_ROW + '{oops')}"],
     "line 2: invalid JSON"),
    ("data row without answer", lambda d, t: [f"--config.data.train_path={_write(d, 'bad.jsonl', NO_ANSWER_ROW)}"],
     "missing field 'answer'"),
    ("num_hidden_layers 'two'", lambda d, t: [f"--config.source.path={_edit_config(t, d, num_hidden_layers='two')}"],
     "config.json"),
    ("config.json not JSON", lambda d, t: [f"--config.source.path={_broken_config(t, d)}"], "not valid JSON"),
    ("int32 weight", lambda d, t: [f"--config.source.path={_edit_tensor(t, d, lambda w: w.astype(np.int32))}"],
     "stored as I32"),
    ("NaN weight", lambda d, t: [f"--config.source.path={_edit_tensor(t, d, _nan)}"], "1 NaN/inf values"),
    ("missing weights", lambda d, t: [
        f"--config.source.path={_copy_model(t, d, ignore=shutil.ignore_patterns('*.safetensors'))}"],
     "no weights"),
    ("missing tokenizer files", lambda d, t: [
        f"--config.source.path={_copy_model(t, d, ignore=shutil.ignore_patterns('tokenizer*', 'special*'))}"],
     "no tokenizer files"),
    ("token ids beyond the vocabulary", lambda d, t: [f"--config.source.path={_extra_token(t, d)}"],
     "largest token id is 384"),
    ("source.layer out of range", lambda d, t: ["--config.source.layer=9"], "source.layer=9"),
    ("eval without a trained checkpoint", lambda d, t: ["--mode=eval", "--config.eval.methods=('latent',)"],
     "no best checkpoint"),
]


@pytest.mark.parametrize("name,extra,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_error_line(tiny, tmp_path, capsys, name, extra, expected):
  argv = tiny_argv(tmp_path / "run", tiny["source"], tiny["target"], tiny["data"])
  extra = extra(tmp_path, tiny)
  if any(a.startswith("--config=") for a in extra):  # a config file replaces tiny.py, before the overrides
    argv = [argv[0], *extra, *(a for a in argv[1:] if not a.startswith("--config="))]
  else:
    argv += extra
  status = main.run(argv)
  out = capsys.readouterr()
  assert status == cli.EXIT_USER_ERROR, out.err[-3000:]
  assert "Traceback" not in out.err + out.out
  last = out.err.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, last


def test_the_table_has_at_least_forty_cases():
  assert len(CASES) >= 40


def test_verbose_adds_the_traceback(tiny, tmp_path, capsys):
  argv = tiny_argv(tmp_path, tiny["source"], tiny["target"], tiny["data"], "--config.train.steps=0", "--verbose")
  assert main.run(argv) == cli.EXIT_USER_ERROR
  err = capsys.readouterr().err
  assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: config key train.steps=0")


def test_a_bug_keeps_its_traceback(monkeypatch):
  def buggy(argv):
    raise KeyError("a bug in this code, not in the input")
  with pytest.raises(KeyError):
    cli.run(buggy, ["prog"])


def test_data_line_guard_reads_no_more_than_the_limit(tmp_path):
  path = tmp_path / "huge.jsonl"
  path.write_text("y" * 5000)
  with pytest.raises(InputError, match="line 1: longer than 4,096 bytes"):
    inputs.check_data_file(str(path), max_line_bytes=4096)
  array = tmp_path / "rows.json"
  array.write_text("[" + ", ".join([OK_ROW.strip()] * 100) + "]")
  inputs.check_data_file(str(array), max_line_bytes=4096)  # a JSON array is one record set, not one line


# --------------------------------------------------------------------------------------------------
# The workdir lock.


def test_lock_names_its_holder_and_is_released(tmp_path):
  with workdir_lib.Lock(str(tmp_path)):
    with pytest.raises(WorkdirError, match=f"pid {os.getpid()} on .*, since 20"):
      workdir_lib.Lock(str(tmp_path)).acquire()
  with workdir_lib.Lock(str(tmp_path)):  # released: free again
    pass


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
  (tmp_path / "lock").write_text(f"{dead.stdout.strip()} otherhost 2026-01-01T00:00:00Z\n")
  with caplog.at_level(logging.WARNING), workdir_lib.Lock(str(tmp_path)):
    assert (tmp_path / "lock").read_text().split()[0] == str(os.getpid())
  assert f"pid {dead.stdout.strip()} on otherhost" in caplog.text


def test_second_process_on_a_workdir_exits_at_once_and_the_first_completes(tiny, tmp_path, capsys):
  """The first run is this process (in a thread, so the evaluation below reuses its compiled functions),
  the second a real `python -m interlingua_jax.main` on the same workdir."""
  workdir = tmp_path / "run"
  extra = ("--config.train.steps=2", "--config.optim.warmup_steps=1", "--config.train.eval_every=2",
           "--config.eval.methods=('latent',)", "--config.eval.num_samples=4", "--config.eval.latency_batch_sizes=(1,)")
  argv = tiny_argv(workdir, tiny["source"], tiny["target"], tiny["data"], *extra)
  status = []
  first = threading.Thread(target=lambda: status.append(main.run(argv)))
  first.start()
  lock = workdir / "lock"
  while not (lock.exists() and lock.read_text().strip()) and first.is_alive():
    time.sleep(0.05)
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  start = time.perf_counter()
  second = subprocess.run([sys.executable, "-m", "interlingua_jax.main", *argv[1:]], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
  seconds = time.perf_counter() - start
  first.join(timeout=600)
  console = capsys.readouterr()
  assert status == [0], console.err[-3000:]
  assert second.returncode == cli.EXIT_USER_ERROR and seconds < 5, (seconds, second.stderr)
  assert second.stderr.strip().splitlines() == [second.stderr.strip()]  # one line
  assert f"pid {os.getpid()}" in second.stderr and "in use by another run" in second.stderr
  # A quiet console: the first run's output holds no library's INFO record; the log file keeps them.
  for noise in ("orbax", "Finished saving", "Save Finalize", "Unable to initialize backend", "PyTorch was not found"):
    assert noise not in console.out + console.err, noise
  assert "orbax" in (workdir / "log.txt").read_text().lower()
  # The workdir is usable again, and evaluates from the workdir alone: no --config, none of its overrides.
  assert main.run(["main", f"--workdir={workdir}", "--mode=eval"]) == 0, capsys.readouterr().err[-3000:]
  with open(workdir / "eval" / "aggregate.json") as f:
    assert json.load(f)["methods"]["latent"]["n"] == 4


def _trained_workdir(tiny, workdir):
  os.makedirs(workdir / "checkpoints")
  cfg = main.parse_flags(tiny_argv(workdir, tiny["source"], tiny["target"], tiny["data"]))["config"].value
  with open(workdir / "config.json", "w") as f:
    f.write(cfg.to_json_best_effort())
  return cfg


def test_train_steps_may_only_be_raised_and_only_to_train(tiny, tmp_path, capsys, caplog):
  workdir = tmp_path / "run"
  cfg = _trained_workdir(tiny, workdir)
  assert main.run(["main", f"--workdir={workdir}", "--config.train.steps=3"]) == cli.EXIT_USER_ERROR
  last = capsys.readouterr().err.strip().splitlines()[-1]
  assert "train.steps: 6 -> 3" in last and "can only be raised" in last
  longer = main.effective_config(main.parse_flags(["main", f"--workdir={workdir}", "--config.train.steps=9"]),
                                 str(workdir))
  assert longer.train.steps == 9 and longer.translator.to_dict() == cfg.translator.to_dict()
  with pytest.raises(ConfigError, match="train.steps: 6 -> 9"):
    experiment.start(longer, str(workdir), ("eval",))
  with caplog.at_level(logging.INFO):
    experiment.start(longer, str(workdir), ("train", "eval"))
  assert "extending the run from train.steps=6 to 9" in caplog.text
  assert json.load(open(workdir / "config.json"))["train"]["steps"] == 9  # the record of what is trained


def test_eval_keys_may_differ_and_are_logged_without_rewriting_the_record(tiny, tmp_path, caplog):
  workdir = tmp_path / "run"
  _trained_workdir(tiny, workdir)
  cfg = main.effective_config(main.parse_flags(["main", f"--workdir={workdir}", "--config.eval.num_samples=3"]),
                              str(workdir))
  with caplog.at_level(logging.INFO):
    experiment.start(cfg, str(workdir), ("eval",))
  assert "eval.num_samples: 8 -> 3" in caplog.text
  saved = json.load(open(workdir / "config.json"))
  assert saved["eval"]["num_samples"] == 8
  del saved["toy"]  # a workdir of a non-toy config
  (workdir / "config.json").write_text(json.dumps(saved))
  with pytest.raises(ConfigError, match="--config.toy.cache_dir: the config saved in .* has no such key"):
    main.effective_config(main.parse_flags(["main", f"--workdir={workdir}", "--config.toy.cache_dir=x"]),
                          str(workdir))


# --------------------------------------------------------------------------------------------------
# Crash-consistent checkpoints, driven by `train.fit` with a scripted step (no model involved).


def _scripted_fit(workdir, total_steps, accuracies, *, keep=3, fail_latest_at=None, metrics_resume=None):
  """fit() on a one-parameter state whose step adds 1: checkpoints every 2 steps, accuracy from `accuracies`."""
  import jax
  from jax.sharding import Mesh
  mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "model"))
  state = TrainState(jnp.zeros((), jnp.int32), {"w": jnp.zeros(3)}, {}, ())
  checkpoints = Checkpoints(str(workdir), keep=keep)
  if fail_latest_at is not None:
    real_save = checkpoints.latest.save

    def killed(step, **kwargs):
      if step == fail_latest_at:
        checkpoints.best.wait_until_finished()
        raise KeyboardInterrupt("killed between the best and the latest commit")
      return real_save(step, **kwargs)
    checkpoints.latest.save = killed
  data_iter = iter(pipeline.train_dataset([{"x": np.zeros(2, np.int32)}] * 8, global_batch_size=2, seed=0, parts={}))
  stopper = EarlyStopping(patience=10, enabled=False)
  restored = checkpoints.restore_latest(abstract_like(state))
  if restored is not None:
    state, data_state, loop_state = restored
    data_iter.set_state(data_state)
    stopper = EarlyStopping(**loop_state)

  def step_fn(state, frozen, batch):
    return TrainState(state.step + 1, {"w": state.params["w"] + 1}, {}, ()), {"loss": jnp.float32(1.0),
                                                                                  "lr": jnp.float32(0.1)}

  loop = Loop(step_fn=step_fn, frozen_params=None, data_iter=data_iter, mesh=mesh,
                    evaluate=lambda st: accuracies[int(st.step)], checkpoints=checkpoints,
                    metrics=MetricsLog(str(workdir), resume_step=int(state.step) if restored else -1),
                    stopper=stopper)
  settings = LoopSettings(total_steps=total_steps, log_every=1, eval_every=2, global_batch_size=2,
                                progress=False)
  try:
    return fit(state, loop, settings)
  finally:
    loop.metrics.close()
    checkpoints.wait()


def _steps(workdir, which):
  return Checkpoints(str(workdir), keep=3).__getattribute__(which).all_steps()


def _metric_steps(workdir):
  return [(r["step"], "loss" in r) for r in map(json.loads, open(os.path.join(workdir, "metrics.jsonl")))]


def _expected_rows(total_steps):
  """(step, is a training row) of an uninterrupted run: a training row every step, an evaluation every 2."""
  return [(0, False)] + [(s, k) for s in range(1, total_steps + 1) for k in ((True, False) if s % 2 == 0 else (True,))]


ACCURACY = {0: 0.1, 2: 0.5, 4: 0.9, 6: 0.2}  # best at step 4


def test_kill_between_the_best_and_the_latest_commit_resumes(tmp_path):
  with pytest.raises(KeyboardInterrupt):
    _scripted_fit(tmp_path, 6, ACCURACY, fail_latest_at=4)
  assert _steps(tmp_path, "best") == [4] and max(_steps(tmp_path, "latest")) == 2  # the state of the crash
  state, summary = _scripted_fit(tmp_path, 6, ACCURACY)
  assert summary["best_step"] == 4 and int(state.step) == 6
  assert _steps(tmp_path, "best") == [4] and _steps(tmp_path, "latest") == [2, 4, 6]
  assert _metric_steps(tmp_path) == _expected_rows(6)  # no row twice, none lost


def test_corrupt_latest_step_falls_back_to_the_previous_one(tmp_path, caplog):
  _scripted_fit(tmp_path, 6, ACCURACY)
  step_dir = tmp_path / "checkpoints" / "latest" / "6"
  victims = [os.path.join(d, f) for d, _, files in os.walk(step_dir / "state") for f in files
             if os.path.getsize(os.path.join(d, f)) > 0]
  for file in victims:
    with open(file, "r+b") as f:
      f.truncate(os.path.getsize(file) // 2)
  with caplog.at_level(logging.WARNING):
    state, summary = _scripted_fit(tmp_path, 8, {**ACCURACY, 8: 0.3})
  assert f"{step_dir}: checkpoint cannot be restored" in caplog.text
  assert "resumed from step 4 instead of [6]" in caplog.text
  assert int(state.step) == 8 and _steps(tmp_path, "latest") == [4, 6, 8]
  assert float(state.params["w"][0]) == 8  # steps 5..8 replayed from step 4's weights
  assert os.listdir(tmp_path / "checkpoints" / "corrupt")[0].startswith("latest-6-")
  assert _metric_steps(tmp_path) == _expected_rows(8)


def test_no_restorable_step_is_one_clear_error(tmp_path):
  _scripted_fit(tmp_path, 2, ACCURACY, keep=1)
  for d, _, files in os.walk(tmp_path / "checkpoints" / "latest" / "2"):
    for f in files:
      with open(os.path.join(d, f), "w") as handle:
        handle.write("{")
  with pytest.raises(CheckpointError, match="no checkpoint under .*latest can be restored"):
    _scripted_fit(tmp_path, 4, ACCURACY)


# --------------------------------------------------------------------------------------------------
# The console.


def test_console_hides_library_info_and_harmless_notices(tmp_path, capsys):
  def noisy(argv):
    with cli.log_to(str(tmp_path / "log.txt")):
      logging.getLogger("absl").info("Finished saving checkpoint")
      logging.getLogger("jax._src.xla_bridge").warning("Unable to initialize backend 'tpu'")
      logging.getLogger("orbax").warning("a warning that matters")

  assert cli.run(noisy, ["prog"]) == 0
  err = capsys.readouterr().err
  assert "Finished saving" not in err and "Unable to initialize" not in err
  assert "a warning that matters" in err
  assert "Finished saving checkpoint" in (tmp_path / "log.txt").read_text()
  assert cli.run(noisy, ["prog", "--verbose"]) == 0
  assert "Finished saving" in capsys.readouterr().err


def test_a_run_record_is_replaced_whole_or_not_at_all(tmp_path):
  """config.json is written by process 0 while the other hosts read it (run.config.check_config): a write
  that truncates first lets a reader see an empty file, which once failed the two-process run."""
  path = tmp_path / "config.json"
  outputs.write_json(path, {"seed": 0})
  with pytest.raises(TypeError):  # fails half-way through serialising: the old record must survive
    outputs.write_json(path, {"seed": 1, "bad": object()})
  assert json.loads(path.read_text()) == {"seed": 0}
  outputs.write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}, {"a": 2}])
  assert outputs.read_jsonl(tmp_path / "rows.jsonl") == [{"a": 1}, {"a": 2}]
