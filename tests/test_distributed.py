"""The multi-host code path for real: two processes joined by `jax.distributed` on localhost (CPU
collectives) train the tiny config to the same loss as one process holding both devices."""
import json
import os
import socket
import subprocess
import sys

import pytest

from tiny_system import write_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run(args: list[str], *, processes: int, devices: int) -> None:
  """Runs `args` as `processes` processes joined by `jax.distributed` on localhost, `devices` CPU devices in all;
  fails with every process's output if one fails or hangs."""
  env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices // processes), JAX_PLATFORMS="cpu")
  port = _free_port()
  procs = []
  for i in range(processes):
    extra = {} if processes == 1 else {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                                       "JAX_NUM_PROCESSES": str(processes), "JAX_PROCESS_ID": str(i),
                                       "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}
    procs.append(subprocess.Popen(args, cwd=REPO, env={**env, **extra}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  try:
    outputs = [p.communicate(timeout=300)[0] for p in procs]
  except subprocess.TimeoutExpired:  # one process waiting for another that died: show every process's output
    for p in procs:
      p.kill()
    pytest.fail("a process hung:\n" + "\n".join(f"--- process {i}:\n{p.communicate()[0][-3000:]}"
                                                  for i, p in enumerate(procs)))
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]


def _train(workdir, source, target, data, *, processes: int) -> list[dict]:
  _run([sys.executable, "-m", "interlingua_jax.main", "--config=configs/tiny.py", f"--workdir={workdir}",
        "--mode=train", f"--config.source.path={source}", f"--config.target.path={target}",
        "--config.source.dtype=float32", "--config.target.dtype=float32", "--config.data.dataset=gsm8k",
        f"--config.data.train_path={data[0]}", f"--config.data.test_path={data[1]}",
        "--config.data.num_shots=1", "--config.data.answer_anchor=A:", "--config.mesh.data=2",
        "--config.train.log_every=1", "--config.train.patience=1"], processes=processes, devices=2)
  with open(os.path.join(workdir, "train_summary.json")) as f:
    assert json.load(f)["stopped_early"]
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if "loss" in line]


def test_two_processes_train_like_one(tiny_mistral_dir, tiny_llama_dir, tmp_path):
  """Patience 1: the untrained bridge scores the same (0) at steps 0 and 3, so both processes must stop
  together at step 3 (the decision is process 0's, broadcast), not run on to step 6."""
  data = write_data(str(tmp_path))
  one = _train(str(tmp_path / "one"), tiny_mistral_dir, tiny_llama_dir, data, processes=1)
  two = _train(str(tmp_path / "two"), tiny_mistral_dir, tiny_llama_dir, data, processes=2)
  assert [r["step"] for r in one] == [r["step"] for r in two] == [1, 2, 3]
  for a, b in zip(one, two):
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)


_SAVE_BEST_AND_LATEST = """
import sys
import jax, numpy as np
from interlingua_jax.training.checkpoints import Checkpoints
from interlingua_jax.main import initialize_distributed
initialize_distributed()
sharding = jax.sharding.NamedSharding(jax.make_mesh((2,), ("data",)), jax.sharding.PartitionSpec("data"))
x = jax.make_array_from_callback((4, 8), sharding, lambda index: np.ones((4, 8), np.float32)[index])
checkpoints = Checkpoints(sys.argv[1], keep=2)
for step in range(20):
  checkpoints.save(step, {"x": x}, {"i": step}, {"step": step}, best=True)
checkpoints.wait()
"""


def test_two_processes_save_best_and_latest_of_one_step_without_a_barrier_clash(tmp_path):
  """The best and latest managers commit the same step concurrently on every process; with one shared barrier key
  the coordination service refused the second ("already ongoing") and a run hung, now and then, at a save."""
  _run([sys.executable, "-c", _SAVE_BEST_AND_LATEST, str(tmp_path / "w")], processes=2, devices=2)
  assert sorted(os.listdir(tmp_path / "w" / "checkpoints" / "latest")) == ["18", "19"]
