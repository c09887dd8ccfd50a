"""Translator training: a jitted, sharded train step and the loop around it.

    h_src = source_L(question)                 frozen, outside the gradient; read from the batch when cached
    soft  = translator(h_src)                  the only trainable parameters (float32 master)
    loss  = CE(target([BOS][soft][anchor][answer][EOS]))  on answer + EOS only
          + λ · 1[step ≥ start] · InfoNCE(mean(soft), mean(target_embed(question)))

The loop evaluates bridged accuracy every `train.eval_every` steps (and at step 0), stops
early after `train.patience` evaluations without improvement (decided identically on
every process), keeps the latest checkpoints and a separate on-disk copy of the best one
(checkpoints.py), and resumes from the latest with optimizer, dropout-RNG and data-iterator state.
`fit` takes the state and two small objects: `Loop` (what it drives) and `LoopSettings` (how long,
how often).
"""
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax.bridges.translator import bridge
from interlingua_jax.nn import losses
from interlingua_jax.training import optim
from interlingua_jax.training.checkpoints import Checkpoints, abstract_like
from interlingua_jax.data import pipeline
from interlingua_jax.core.errors import TrainingDiverged
from interlingua_jax.models import embed, forward, lm_head
from interlingua_jax.models.sharding import param_shardings


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
  """Everything that changes during training; the frozen LLMs are deliberately not in here."""
  step: jax.Array
  params: nnx.State  # translator parameters, float32
  rngs: nnx.State  # the translator's dropout stream as raw key data + counter (why: bridge.py, "dropout RNG")
  opt_state: optax.OptState


@dataclasses.dataclass(frozen=True)
class LossSpec:
  infonce_weight: float
  infonce_start_step: int
  temperature: float
  answer_window: int  # the last positions of a row that can hold answer tokens or the EOS
  remat: bool = False  # recompute the target's layers in the backward pass (memory for time)
  attention_impl: str | None = None  # model.attention_impl, for both frozen models


def loss_fn(params, state: TrainState, graphdef, frozen_params, batch, *, frozen_configs, layer: int,
            spec: LossSpec):
  source_params, target_params = frozen_params
  source_config, target_config = frozen_configs
  translator = bridge.merge_translator(graphdef, params, state.rngs)
  hidden = batch.get(pipeline.SOURCE_STATES)  # cached (source_cache): the same states, without the source forward
  if hidden is None:
    hidden = bridge.source_states(source_params, source_config, batch["source_ids"], batch["source_mask"], layer,
                                  spec.attention_impl)
  soft = translator(hidden, batch["source_mask"], deterministic=False)
  inputs = bridge.target_inputs(target_params, target_config, soft, batch["target_token_ids"],
                                batch["target_soft_index"])
  out = forward(target_params, target_config, inputs_embeds=inputs, attention_mask=batch["target_attention_mask"],
                positions=batch["target_positions"], compute_logits=False, output_hidden_states=False,
                remat=spec.remat, attention_impl=spec.attention_impl)
  # Logits only where answers live (the rows are left-padded, so answers end every row): a (B, S, V)
  # float32 logit tensor for a 128k vocabulary would dominate memory for nothing.
  window = slice(-spec.answer_window, None)
  logits = lm_head(target_params, target_config, out.hidden_states[-1][:, window])
  labels, mask = batch["target_labels"][:, window], batch["target_loss_mask"][:, window]
  ce = losses.answer_cross_entropy(logits, labels, mask)
  metrics = {"ce": ce, "token_accuracy": losses.answer_accuracy(logits, labels, mask),
             **losses.collapse_diagnostics(soft)}
  loss = ce
  if spec.infonce_weight > 0:
    anchors = losses.mean_pool(soft)
    positives = losses.mean_pool(embed(target_params, target_config, batch["question_ids"]), batch["question_mask"])
    nce = losses.info_nce(anchors, positives, spec.temperature)
    on = (state.step >= spec.infonce_start_step).astype(jnp.float32)
    loss = loss + spec.infonce_weight * on * nce
    metrics["infonce"] = nce
  new_rngs = bridge.translator_rngs(translator)
  return loss, (metrics, new_rngs)


def train_step(state: TrainState, frozen_params, batch, *, graphdef, tx, schedule, frozen_configs, layer, spec):
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, (metrics, rngs)), grads = grad_fn(state.params, state, graphdef, frozen_params, batch,
                                           frozen_configs=frozen_configs, layer=layer, spec=spec)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), lr=schedule(state.step))
  return TrainState(state.step + 1, params, rngs, opt_state), metrics


def make_train_step(*, mesh: Mesh, frozen: bridge.Frozen, graphdef, tx, schedule, spec: LossSpec) -> Callable:
  """jax.jit with explicit shardings: batch over "data", frozen weights over "model", state replicated.

  The state buffers are donated: the optimizer update happens in place.
  """
  replicated = NamedSharding(mesh, P())
  frozen_shardings = (param_shardings(frozen.source.config, mesh), param_shardings(frozen.target.config, mesh))
  fn = lambda state, frozen_params, batch: train_step(
      state, frozen_params, batch, graphdef=graphdef, tx=tx, schedule=schedule,
      frozen_configs=(frozen.source.config, frozen.target.config), layer=frozen.source_layer, spec=spec)
  return jax.jit(fn, in_shardings=(replicated, frozen_shardings, NamedSharding(mesh, P("data"))),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def init_state(translator, tx, mesh: Mesh) -> tuple[object, TrainState]:
  graphdef, params, rngs = bridge.split_translator(translator)
  state = TrainState(jnp.zeros((), jnp.int32), params, rngs, tx.init(params))
  return graphdef, replicate(state, mesh)


def replicate(tree, mesh: Mesh):
  """Every leaf as a global array replicated over the mesh, built from this process's identical copy.

  Unlike `jax.device_put`, this also yields proper global arrays when the mesh spans several processes.
  """
  sharding = NamedSharding(mesh, P())

  def put(x):
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  return jax.tree.map(put, tree)


def global_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's rows → one global array per field, split over "data"."""
  sharding = NamedSharding(mesh, P("data"))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def restore_translator(workdir: str, translator, tx, mesh: Mesh, which: str = "best"):
  """The translator of the "best" or the "final" (latest) checkpoint: (graphdef, params, rngs, step). A clear error
  if there is none."""
  if which not in ("best", "final"):
    raise ValueError(f"which checkpoint: 'best' or 'final', got {which!r}")
  ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints", "best" if which == "best" else "latest")
  manager = ocp.CheckpointManager(ckpt_dir, item_names=Checkpoints.ITEMS)
  if manager.latest_step() is None:
    raise FileNotFoundError(f"no {which} checkpoint under {ckpt_dir}: train first "
                            f"(python -m interlingua_jax.main --workdir={workdir} --mode=train).")
  graphdef, state = init_state(translator, tx, mesh)
  restored, _, _ = Checkpoints.restore(manager, abstract_like(state))
  return graphdef, restored.params, restored.rngs, int(restored.step)


# --------------------------------------------------------------------------------------------------
# The loop


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
  """Patience counted in evaluations without a new best bridged accuracy."""
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
  evaluate: Callable[[TrainState], float]  # bridged accuracy of a state
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
      raise TrainingDiverged(f"non-finite translator parameters at step {step}; refusing to checkpoint them. "
                               "Lower optim.learning_rate or check the data.")


def encode_pool(examples: Sequence, **kwargs) -> list[dict[str, np.ndarray]]:
  return [pipeline.encode_example(e, **kwargs) for e in examples]


def make_optimizer(cfg, total_steps: int):
  o = cfg.optim
  tx = optim.make_optimizer(learning_rate=o.learning_rate, warmup_steps=o.warmup_steps, total_steps=total_steps,
                            b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                            gate_lr_multiplier=o.gate_lr_multiplier, clip_norm=o.clip_norm)
  schedule = optim.make_schedule(learning_rate=o.learning_rate, warmup_steps=o.warmup_steps,
                                 total_steps=total_steps)
  return tx, schedule
