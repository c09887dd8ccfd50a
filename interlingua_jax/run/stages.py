"""The stages every bridge kind runs: train → eval → compression, the kind's parts asked of `Kind`.

    train        the kind's rows and loss, one optimizer, the seeded data order, `training.loop.fit` with
                 checkpoints, exact resume and best-on-validation selection (`evaluation.validation`)
    eval         every method of `eval.methods` on a seeded subset of the test split, in every view of the kind
                 (one, or one per target), with the checkpoint `evaluated_checkpoint` names; `latent` also with
                 the other one; throughput and batch-1 latency; the aggregate with its intervals
    compression  the wire: `latent` after an encode → decode round trip of its soft tokens at each precision
"""
import dataclasses
import logging
import math
import os

import jax
import ml_collections

from interlingua_jax.bridges.kind import Kind, Setup, Training
from interlingua_jax.core import outputs
from interlingua_jax.core.context import Run
from interlingua_jax.data import pipeline, splits
from interlingua_jax.evaluation import compression, latency, methods, results
from interlingua_jax.evaluation.harness import run_methods
from interlingua_jax.evaluation.validation import validation_pass
from interlingua_jax.training import optim
from interlingua_jax.training.checkpoints import Checkpoints, abstract_like
from interlingua_jax.training.loop import EarlyStopping, Loop, LoopSettings, MetricsLog, fit
from interlingua_jax.training.state import TrainState, count_params, init_state, restore_module
from interlingua_jax.training.step import make_train_step


def evaluated_checkpoint(cfg: ml_collections.ConfigDict) -> str:
  """Which checkpoint the test split reads: the best (on validation) when early stopping is on, else the final one,
  so that a run without the fixes keeps none of early stopping's benefit and can show a collapse."""
  return "best" if cfg.train.early_stopping else "final"


def other_checkpoint(cfg: ml_collections.ConfigDict) -> str:
  """The checkpoint the test split does not read, evaluated for `latent` alone (`latent_at_<it>`)."""
  return "final" if evaluated_checkpoint(cfg) == "best" else "best"


def checkpoint_record(cfg: ml_collections.ConfigDict, workdir: str) -> dict:
  """The aggregate's note of which checkpoint the test split read, and the steps of both."""
  summary = outputs.read_json(os.path.join(workdir, outputs.TRAIN_SUMMARY)) or {}
  return {"evaluated": evaluated_checkpoint(cfg), "best_step": summary.get("best_step"),
          "final_step": summary.get("final_step")}


def restore(run: Run, kind: Kind, s: Setup, which: str) -> tuple:
  """(graphdef, params, rest) of the kind's module at the "best" or "final" checkpoint."""
  tx, _ = optim.from_config(run.cfg.optim, run.cfg.train.steps)
  graphdef, params, rest, step = restore_module(run.workdir, kind.new_module(run, s), tx, s.mesh, which)
  logging.info("evaluating the %s checkpoint (step %d)", which, step)
  return graphdef, params, rest


# --------------------------------------------------------------------------------------------------
# Training


def finished_training(cfg: ml_collections.ConfigDict, workdir: str) -> dict | None:
  """The summary of a run whose training already finished (stopped early or reached train.steps), else None."""
  path = os.path.join(workdir, outputs.TRAIN_SUMMARY)
  summary = outputs.read_json(path)
  if summary is None:
    return None
  if summary["stopped_early"] or summary["final_step"] >= cfg.train.steps:
    logging.info("training already finished (%s); skipping", path)
    return summary
  return None


def resume(cfg: ml_collections.ConfigDict, workdir: str, state: TrainState, data_iter):
  """(checkpoints, state, early stopping, restored?): the latest checkpoint's, when there is one."""
  checkpoints = Checkpoints(workdir, cfg.train.keep_checkpoints)
  stopper = EarlyStopping(patience=cfg.train.patience, enabled=cfg.train.early_stopping)
  restored = checkpoints.restore_latest(abstract_like(state))
  if restored is None:
    return checkpoints, state, stopper, False
  state, data_state, loop_state = restored
  data_iter.set_state(data_state)
  logging.info("resumed from step %d", int(state.step))
  return checkpoints, state, EarlyStopping(**loop_state), True


def loop_settings(cfg: ml_collections.ConfigDict, workdir: str) -> LoopSettings:
  p = cfg.profile
  return LoopSettings(total_steps=cfg.train.steps, log_every=cfg.train.log_every, eval_every=cfg.train.eval_every,
                      global_batch_size=cfg.train.batch_size,
                      profile_dir=os.path.join(workdir, "profile") if p.start_step >= 0 else None,
                      profile_steps=(p.start_step, p.num_steps))


@dataclasses.dataclass(frozen=True)
class TrainingStep:
  """What a config makes of a kind's module and optimizer, ready for `fit`, a test or a benchmark."""
  training: Training  # the kind's rows, loss and frozen params
  tx: object  # optax.GradientTransformation
  schedule: object  # step -> base learning rate
  graphdef: object
  state: TrainState  # the module's initial state, replicated over the mesh
  step_fn: object  # the jitted train step: (state, frozen_params, batch) -> (state, metrics)


def training_step(run: Run, kind: Kind, s: Setup, module=None) -> TrainingStep:
  """The one wiring of a config into a train step on the mesh: the kind's training pieces, the optimizer, the
  initial state (of `module`, default a fresh one of the kind) and the jitted step."""
  t = kind.training(run, s)
  tx, schedule = optim.from_config(run.cfg.optim, run.cfg.train.steps)
  graphdef, state = init_state(module or kind.new_module(run, s), tx, s.mesh)
  step_fn = make_train_step(mesh=s.mesh, loss=t.loss, frozen_shardings=t.frozen_shardings, graphdef=graphdef,
                            tx=tx, schedule=schedule)
  return TrainingStep(t, tx, schedule, graphdef, state, step_fn)


def train_stage(run: Run, kind: Kind, s: Setup) -> dict:
  cfg, workdir = run.cfg, run.workdir
  if (summary := finished_training(cfg, workdir)) is not None:
    return summary
  step = training_step(run, kind, s)
  t, graphdef = step.training, step.graphdef
  buckets = tuple(cfg.data.length_buckets)
  shapes = pipeline.compiled_shapes(t.rows, buckets, t.parts)
  logging.info("training batches padded to lengths %s: at most %d compiled train-step shapes", shapes,
               math.prod(len(v) for v in shapes.values()))
  data_iter = iter(pipeline.train_dataset(t.rows, parts=t.parts, global_batch_size=cfg.train.batch_size,
                                          seed=cfg.data.shuffle_seed, length_buckets=buckets,
                                          process_index=jax.process_index(), process_count=jax.process_count(),
                                          source_states=t.source_states))
  logging.info("%s parameters: %s", kind.name, f"{count_params(step.state.params):,}")
  checkpoints, state, stopper, restored = resume(cfg, workdir, step.state, data_iter)
  log = MetricsLog(workdir, resume_step=int(state.step) if restored else -1)

  def score(st: TrainState) -> float:  # on the validation split, never the test split
    value, row = validation_pass(kind.contexts(run, s, (graphdef, st.params, st.rngs)), s.validation, int(st.step))
    log.write(row)
    return value

  loop = Loop(step_fn=step.step_fn, frozen_params=t.frozen_params, data_iter=data_iter, mesh=s.mesh, evaluate=score,
              checkpoints=checkpoints, metrics=log, stopper=stopper)
  state, summary = fit(state, loop, loop_settings(cfg, workdir))
  log.close()
  summary.update(splits=s.splits, skipped_long_prompts=s.skipped, **t.summary)
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, outputs.TRAIN_SUMMARY), summary)
  logging.info("training summary: %s", summary)
  return summary


# --------------------------------------------------------------------------------------------------
# Evaluation


def samples_path(workdir: str, label: str | None) -> str:
  """Where a view's per-sample records go: eval/samples.jsonl, or eval/<label>/samples.jsonl."""
  return os.path.join(workdir, outputs.SAMPLES) if label is None else os.path.join(workdir, "eval", label,
                                                                                   "samples.jsonl")


def eval_view(run: Run, kind: Kind, s: Setup, label: str | None, ctx, other_ctx, examples, split: dict) -> dict:
  """One view's records (appended to its samples file as they come) and its aggregate."""
  e, path = run.cfg.eval, samples_path(run.workdir, label)
  own = kind.method_contexts(run, s, label, ctx)
  shared = [m for m in e.methods if m not in own]
  records = run_methods(ctx, shared, examples, path)
  if other_ctx is not None:
    records = run_methods(other_ctx, [f"latent_at_{other_checkpoint(run.cfg)}"], examples, path)
  for name, method_ctx in own.items():
    records = run_methods(method_ctx, [name], examples, path)
  relayed = {r["id"]: r["prediction"] for r in records if r["method"] == "source_alone"}
  throughput = latency.measure_throughput(ctx, shared, examples, tuple(e.latency_batch_sizes), relayed=relayed)
  agg = results.aggregate([r for r in records if r["id"] in {x.id for x in examples}], dataset=run.cfg.data.dataset,
                          num_soft_tokens=kind.num_soft_tokens(run.cfg), bootstrap_samples=e.bootstrap_samples,
                          seed=run.cfg.seed, throughput=throughput, split=split)
  agg["latency_batch1"] = latency.measure_latency(ctx, shared, examples, e.latency_samples, relayed=relayed)
  agg["f1_comparisons"] = {f"latent_vs_{m}": c for m in e.methods if m != "latent"
                           if (c := results.paired_f1(records, m, bootstrap_samples=e.bootstrap_samples,
                                                      seed=run.cfg.seed))}
  if hasattr(ctx.bridge, "summary"):  # what the bridge records of itself (a cache bridge's learned gates)
    agg["bridge_summary"] = ctx.bridge.summary()
  for name, method_ctx in own.items():  # what a method's own soft source records of itself (a fitted PCA)
    if hasattr(method_ctx.soft_source, "summary"):
      agg[name] = method_ctx.soft_source.summary()
  return agg


def eval_stage(run: Run, kind: Kind, s: Setup) -> dict:
  """Every method of `eval.methods` on a seeded subset of eval.num_samples test questions, once, in every view,
  with the module of `evaluated_checkpoint`; `latent` also with the other checkpoint (`latent_at_best` or
  `latent_at_final`), so that every run reports both. One view: its aggregate; several: one per label."""
  cfg, e = run.cfg, run.cfg.eval
  soft = any(methods.get(m).soft_from is not None for m in e.methods)
  module = restore(run, kind, s, evaluated_checkpoint(cfg)) if soft else None
  others = (kind.contexts(run, s, restore(run, kind, s, other_checkpoint(cfg)))
            if soft and "latent" in e.methods else {})
  examples, evaluated = splits.evaluation_subset(s.test, e.num_samples, e.subset_seed)
  if len(examples) < e.num_samples:
    logging.warning("eval.num_samples=%d but the test split has %d questions", e.num_samples, len(examples))
  split = dict(s.splits, evaluated=evaluated)
  views = {label: eval_view(run, kind, s, label, ctx, others.get(label), examples, split)
           for label, ctx in kind.contexts(run, s, module).items()}
  out = views[None] if list(views) == [None] else {"bridge": kind.name, "dataset": cfg.data.dataset,
                                                     "targets": views}
  out["checkpoint"] = checkpoint_record(cfg, run.workdir)
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(run.workdir, outputs.AGGREGATE), out)
  return out


def compression_stage(run: Run, kind: Kind, s: Setup) -> dict:
  """The wire analysis of every view, into compression/ (one view) or compression/<label>/."""
  c = run.cfg.compression
  examples = splits.evaluation_subset(s.test, c.num_samples, run.cfg.eval.subset_seed)[0]
  contexts = kind.contexts(run, s, restore(run, kind, s, evaluated_checkpoint(run.cfg)))
  return {label: compression.analyse(ctx, examples, formats=tuple(c.formats), group_size=c.group_size,
                                     out_dir=os.path.join(run.workdir, "compression", *([label] if label else [])))
          for label, ctx in contexts.items()}
