"""Checkpoints of a training run: the latest ones (to resume) and a separate copy of the best (to evaluate).

Each checkpoint holds the train state, the data-iterator state and the loop's bookkeeping, with
Orbax. What this module adds is crash consistency (see `Checkpoints`): no kill, at any moment, and
no damaged latest step leaves a workdir that cannot resume.
"""
import logging
import os
import time

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from interlingua_jax.models import CheckpointError


class Checkpoints:
  """Latest checkpoints (for resuming) and a separate copy of the best one (for evaluation).

  Each checkpoint holds the train state, the data-iterator state and the loop's bookkeeping.
  The best checkpoint is written to its own directory at the moment it is best: a real copy
  on disk, never a reference to weights that keep training (docs/DESIGN.md §3.8).

  Crash consistency: the best copy is written before the latest, and writing a best step replaces
  any best step at or after it, so a run killed between the two commits (or killed anywhere) resumes
  from the latest and rewrites the same best step. A latest step that cannot be restored is named,
  moved to `checkpoints/corrupt/`, and the previous kept step is used; Orbax's unfinished temporary
  directories are removed when a manager opens.
  """

  ITEMS = ("state", "data", "loop")

  def __init__(self, workdir: str, keep: int):
    self.root = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.latest = _manager(self.root, "latest", keep)
    self.best = _manager(self.root, "best", 1)

  @staticmethod
  def _args(state, data_state, loop):
    return ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
                              loop=ocp.args.JsonSave(loop))

  def save(self, step: int, state, data_state: dict, loop: dict, *, best: bool) -> None:
    if best:
      self.best.wait_until_finished()
      for old in self.best.all_steps():
        if old >= step:  # left by a run that crashed after this best save and before its latest one
          self.best.delete(old)
      self.best.save(step, args=self._args(state, data_state, loop), force=True)
    self.latest.save(step, args=self._args(state, data_state, loop), force=True)

  def wait(self) -> None:
    self.best.wait_until_finished()
    self.latest.wait_until_finished()

  @staticmethod
  def restore(manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
    """(state, data state, loop dict) of `step` (default: the newest), None if there is none; a step that
    cannot be read raises CheckpointError naming its directory."""
    step = manager.latest_step() if step is None else step
    if step is None:
      return None
    try:
      out = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                          data=ocp.args.JsonRestore(), loop=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax surfaces a damaged step as any of a dozen types; all mean "unreadable"
      raise CheckpointError(f"{_step_dir(manager, step)}: checkpoint cannot be restored "
                            f"({type(e).__name__}: {' '.join(str(e).split())[:300]}).") from e
    return out.state, out.data, out.loop

  def restore_latest(self, abstract_state):
    """The newest latest step that restores, falling back over corrupt ones (said, and moved aside)."""
    failed = []
    for step in sorted(self.latest.all_steps(), reverse=True):
      try:
        restored = self.restore(self.latest, abstract_state, step)
      except CheckpointError as e:
        logging.warning("%s; falling back to the previous kept step", e)
        failed.append(step)
        continue
      if failed:
        self._set_aside(failed)
        logging.warning("resumed from step %d instead of %s (moved to %s)", step, failed,
                        os.path.join(self.root, "corrupt"))
      return restored
    if failed:
      raise CheckpointError(f"no checkpoint under {self.latest.directory} can be restored (steps {failed}, see the "
                            "warnings above); move that directory away to start over, or restore it from a backup.")
    return None

  def _set_aside(self, steps: list[int]) -> None:
    if jax.process_index() == 0:
      os.makedirs(os.path.join(self.root, "corrupt"), exist_ok=True)
      for step in steps:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        os.replace(_step_dir(self.latest, step), os.path.join(self.root, "corrupt", f"latest-{step}-{stamp}"))
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("checkpoints set aside")
    self.latest.reload()


def _manager(root: str, name: str, keep: int) -> ocp.CheckpointManager:
  """A manager of `root/name`. Its cross-process barriers are prefixed with `name`: the best and latest managers
  save the same step concurrently, and without a prefix both would wait at one barrier key (`async_write_complete.
  <step>`), which the coordination service refuses as "already ongoing" and the run hangs."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True,
                                         multiprocessing_options=ocp.options.MultiprocessingOptions(
                                             barrier_sync_key_prefix=name))
  return ocp.CheckpointManager(os.path.join(root, name), item_names=Checkpoints.ITEMS, options=options)


def _step_dir(manager: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(manager.directory), str(step))


def abstract_like(state):
  """Shapes, dtypes and shardings of a state: what Orbax restores into."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
