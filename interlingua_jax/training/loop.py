"""The training loop around any bridge kind's step.

It evaluates the validation score every `train.eval_every` steps (and at step 0), stops early after
`train.patience` evaluations without improvement (decided identically on every process), keeps the latest
checkpoints and a separate on-disk copy of the best one (checkpoints.py), and resumes from the latest with
optimizer, dropout-RNG and data-iterator state. `fit` takes the state and two small objects: `Loop` (what it
drives) and `LoopSettings` (how long, how often).
"""
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from interlingua_jax.core.errors import TrainingDiverged
from interlingua_jax.training.checkpoints import Checkpoints
from interlingua_jax.training.state import TrainState, global_batch


class MetricsLog:
  """metrics.jsonl (one JSON object per logged step) and TensorBoard event files; process 0 only.

  Opening it for a run resumed at `resume_step` first drops every row past that step (and a
  half-written last line): those steps are about to be run again.
  """

  def __init__(self, workdir: str, resume_step: int = -1):
    self.enabled = jax.process_index() == 0
    if self.enabled:
      from tensorboardX import SummaryWriter
      path = os.path.join(workdir, "metrics.jsonl")
      _truncate_rows(path, resume_step)
      self.jsonl = open(path, "a")
      self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, row: dict) -> None:
    if not self.enabled:
      return
    self.jsonl.write(json.dumps(row) + "\n")
    self.jsonl.flush()
    for k, v in row.items():
      if k != "step" and isinstance(v, (int, float)):
        self.tb.add_scalar(k, v, row["step"])
    self.tb.flush()

  def close(self) -> None:
    if self.enabled:
      self.jsonl.close()
      self.tb.close()


def _truncate_rows(path: str, last_step: int) -> None:
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        break  # a half-written last line
      if row.get("step", 0) > last_step:
        break
      kept.append(line)
  with open(path + ".tmp", "w") as f:
    f.writelines(kept)
  os.replace(path + ".tmp", path)


@dataclasses.dataclass
class EarlyStopping:
  """Patience counted in evaluations without a new best validation score."""
  patience: int
  enabled: bool
  best_accuracy: float = -1.0
  best_step: int = -1
  since_best: int = 0

  def update(self, step: int, accuracy: float) -> tuple[bool, bool]:
    """Returns (is_new_best, should_stop)."""
    if accuracy > self.best_accuracy:
      self.best_accuracy, self.best_step, self.since_best = accuracy, step, 0
      return True, False
    self.since_best += 1
    return False, self.enabled and self.since_best >= self.patience


def same_on_all_processes(flag: bool) -> bool:
  """Process 0's decision, broadcast: no worker may stop (or go on) alone (docs/DESIGN.md §3.14)."""
  if jax.process_count() == 1:
    return flag
  return bool(multihost_utils.broadcast_one_to_all(np.array(flag)))


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """How long the loop runs and how often it logs, evaluates and traces (`train.*`, `profile.*`)."""
  total_steps: int
  log_every: int
  eval_every: int
  global_batch_size: int
  profile_dir: str | None = None
  profile_steps: tuple[int, int] = (-1, 0)  # (first step, number of steps)
  progress: bool = True


@dataclasses.dataclass
class Loop:
  """What the loop drives: the step, the data, and where evaluations and checkpoints go."""
  step_fn: Callable  # (state, frozen_params, batch) -> (state, metrics)
  frozen_params: Any
  data_iter: Any  # a grain iterator: next(), get_state(), set_state()
  mesh: Mesh
  evaluate: Callable[[TrainState], float]  # the validation score of a state (higher is better)
  checkpoints: Checkpoints
  metrics: MetricsLog
  stopper: EarlyStopping

  def evaluate_and_save(self, state: TrainState, step: int) -> tuple[float, bool]:
    """Evaluates, checkpoints (best too, if it is), and returns (accuracy, should_stop)."""
    check_finite(state_metrics=None, state=state, step=step)
    accuracy = self.evaluate(state)
    is_best, stop = self.stopper.update(step, accuracy)
    is_best, stop = same_on_all_processes(is_best), same_on_all_processes(stop)
    self.metrics.write({"step": step, "bridged_accuracy": accuracy})
    self.checkpoints.save(step, state, self.data_iter.get_state(), dataclasses.asdict(self.stopper), best=is_best)
    return accuracy, stop


def fit(state: TrainState, loop: Loop, settings: LoopSettings) -> tuple[TrainState, dict]:
  """Runs steps until `settings.total_steps` or early stop; returns the final state and a summary."""
  from tqdm import tqdm
  s = settings
  step = int(state.step)
  bar = tqdm(total=s.total_steps, initial=step, disable=not s.progress or jax.process_index() != 0,
             dynamic_ncols=True, desc="train")
  stop, accuracy = False, None
  try:  # even when a step raises (a crash, Ctrl-C), the checkpoint being written commits before we leave
    if step == 0 and loop.stopper.best_step < 0:
      accuracy, stop = loop.evaluate_and_save(state, 0)
    t0, steps_since = time.perf_counter(), 0
    while step < s.total_steps and not stop:
      if step == s.profile_steps[0] and s.profile_dir:
        jax.profiler.start_trace(s.profile_dir)
      state, step_metrics = loop.step_fn(state, loop.frozen_params, global_batch(next(loop.data_iter), loop.mesh))
      step += 1
      steps_since += 1
      if s.profile_dir and step == s.profile_steps[0] + s.profile_steps[1]:
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
      if step % s.log_every == 0 or step == s.total_steps:
        row = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        check_finite(state_metrics=row, state=None, step=step)
        elapsed = time.perf_counter() - t0
        row.update(step=step, samples_per_s=steps_since * s.global_batch_size / max(elapsed, 1e-9))
        loop.metrics.write(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", sps=f"{row['samples_per_s']:.1f}")
        t0, steps_since = time.perf_counter(), 0
      bar.update(1)
      if step % s.eval_every == 0 or step == s.total_steps:
        accuracy, stop = loop.evaluate_and_save(state, step)
  finally:
    loop.checkpoints.wait()
    bar.close()
  summary = {"best_step": loop.stopper.best_step, "best_accuracy": loop.stopper.best_accuracy, "final_step": step,
             "final_accuracy": accuracy, "stopped_early": stop}
  return state, summary


def check_finite(*, state_metrics: dict | None, state: TrainState | None, step: int) -> None:
  """Stops the run on a NaN/inf loss or parameter, before anything non-finite can be checkpointed."""
  if state_metrics is not None and not all(math.isfinite(v) for v in state_metrics.values()):
    bad = {k: v for k, v in state_metrics.items() if not math.isfinite(v)}
    raise TrainingDiverged(f"non-finite training metrics at step {step}: {bad}. Nothing was saved for this "
                             "step; lower optim.learning_rate or check the data.")
  if state is not None:
    finite = jax.tree.reduce(lambda a, b: a & b,
                             jax.tree.map(lambda x: jnp.all(jnp.isfinite(x)), state.params), jnp.array(True))
    if not bool(finite):
      raise TrainingDiverged(f"non-finite bridge parameters at step {step}; refusing to checkpoint them. "
                               "Lower optim.learning_rate or check the data.")
