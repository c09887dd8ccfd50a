"""Wires a config to the stages of a run: train → eval → compression → report.

This is the only place (with `main`) that reads a whole ConfigDict; everything it calls
takes explicit arguments.
"""
import dataclasses
import json
import logging
import os

import jax
from jax.experimental import multihost_utils
import ml_collections
from orbax.checkpoint import multihost

from interlingua_jax import ablations
from interlingua_jax.analysis import report
from interlingua_jax.bridges import kind as bridges
from interlingua_jax.bridges.translator import bridge, source_cache
from interlingua_jax.core import errors, outputs, workdir as workdir_lib
from interlingua_jax.evaluation import compression, harness as evaluate, methods, results
from interlingua_jax.run import preflight, validate
from interlingua_jax.training import train
from interlingua_jax.data import pipeline, splits, word_problems
from interlingua_jax.models.loading import load_model
from interlingua_jax.models.sharding import make_mesh
from interlingua_jax.nn.blocks import embedding_rms

# Config sections that may change between runs in one workdir: they do not shape the trained state (beyond float
# noise: the mesh, the attention impl, and cached source states, computed at their own bucket's pad width).
_FREE_KEYS = ("name", "eval", "compression", "profile", "mesh", "model.attention_impl", "toy.cache_dir",
              "train.log_every", "train.cache_source_states")
# May only be raised, and only when training: extends the run (schedule rule in `check_config`).
_EXTENDABLE = "train.steps"


@dataclasses.dataclass
class Setup:
  frozen: bridge.Frozen
  builder: pipeline.PromptBuilder
  pool: list  # what the translator trains on: the train split without exemplars and validation
  test: list  # evaluated once, at the end
  mesh: jax.sharding.Mesh
  validation: list = dataclasses.field(default_factory=list)  # carved from train: every decision in training
  splits: dict = dataclasses.field(default_factory=dict)  # sizes and id hashes of every split
  skipped: dict = dataclasses.field(default_factory=dict)  # per split, prompts over data.max_source_len


def check_config(cfg: ml_collections.ConfigDict, workdir: str, modes: tuple[str, ...] = ("train",)) -> None:
  """Refuses a workdir whose checkpoints were trained with a different config; records the config.

  Evaluation keys (`_FREE_KEYS`) may differ: the difference is logged. `train.steps` may be raised
  in a training mode to extend a finished or interrupted run. Schedule rule: the learning rate is the
  one a run of the new length would have, from the resumed step on (warmup unchanged, the linear
  decay re-spread to reach 0 at the new `train.steps`), so it steps up at the resume point.
  """
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  current = _comparable(ablations.flatten(json.loads(cfg.to_json_best_effort())))
  saved = workdir_lib.saved_config(workdir)
  has_checkpoints = os.path.isdir(os.path.join(workdir, "checkpoints"))
  if saved is not None and has_checkpoints:
    saved = _comparable(ablations.flatten(saved))
    free = lambda k: any(k == p or k.startswith(p + ".") for p in _FREE_KEYS)
    diff = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    extended = _EXTENDABLE in diff and "train" in modes and current[_EXTENDABLE] > saved.get(_EXTENDABLE, 0)
    refused = [k for k in diff if not free(k) and not (k == _EXTENDABLE and extended)]
    if refused:
      shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in refused[:6])
      hint = (f" ({_EXTENDABLE} can only be raised, in a training mode, to extend the run)"
              if _EXTENDABLE in refused else "")
      raise errors.ConfigError(f"{workdir} holds checkpoints of a different config ({shown}){hint}. Use a new "
                               "--workdir, or drop --config to use the saved one.")
    if extended:
      logging.warning("extending the run from train.steps=%d to %d", saved[_EXTENDABLE], current[_EXTENDABLE])
    changed = [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff if free(k)]
    if changed:
      logging.info("settings that differ from the saved config (allowed): %s", ", ".join(changed))
    if "train" not in modes:
      return  # config.json stays the record of what was trained
  if jax.process_index() == 0:  # the other processes may be reading it right now (saved_config above)
    outputs.write_json(path, json.loads(cfg.to_json_best_effort()))


def _comparable(flat: dict) -> dict:
  """A flattened config as two runs' are compared: a translator run's unused `interlingua.*` left out and the keys
  added since (`workdir.ADDED_KEYS`) defaulted, so a config.json saved before they existed still matches its run."""
  flat = workdir_lib.with_added_keys(flat)
  translator = flat["bridge.kind"] == "translator"
  return {k: v for k, v in flat.items() if not (translator and k.startswith("interlingua."))}


def resolve_toy(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """The toy world: write its data and pretrain its two LMs (cached), and point the config at them."""
  from interlingua_jax.toy import world
  paths = world.prepare(cfg.toy.cache_dir or os.path.join(workdir, "toy"), **cfg.toy.world.to_dict())
  with cfg.unlocked():
    cfg.source.path, cfg.target.path = paths["source"], paths["target"]
    cfg.data.train_path, cfg.data.test_path = paths["train"], paths["test"]


def resolve_word_problems(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Generated GSM8K-format word problems (`data/word_problems.py`): write them once under the workdir and point
  the data paths at them."""
  paths = word_problems.prepare(workdir, **cfg.word_problems.to_dict())
  with cfg.unlocked():
    cfg.data.train_path, cfg.data.test_path = paths["train"], paths["test"]


def setup(cfg: ml_collections.ConfigDict, workdir: str) -> Setup:
  """Preflight (config → tokenizers → data, no weight read), then the frozen weights onto the mesh."""
  with errors.as_input_error(ValueError, RuntimeError):  # preflight's messages name the input and the fix
    checked = preflight.run(cfg)
  mesh = make_mesh(cfg.mesh.data, cfg.mesh.model)
  if jax.process_count() > 1:
    # The first cross-process collective creates the CPU (gloo) communicators, which give up after a fixed
    # 30 s; processes that finished preflight far apart (a loaded host) would fail there. This barrier goes
    # through the coordination service (no collective, 10 min timeout), so they arrive together, and the
    # one-element collective right after it creates the communicators then, before either process spends
    # unequal time reading and casting weights.
    multihost.get_barrier_sync_fn()(key="interlingua_jax:before-weights", timeout_ms=600_000)
    multihost_utils.sync_global_devices("interlingua_jax:communicators")
  load = lambda model, dtype: load_model(model.directory, dtype=dtype, mesh=mesh,
                                         attention_impl=cfg.model.attention_impl)
  source, target = checked.source, checked.target
  frozen = bridge.Frozen(load(source, cfg.source.dtype), source.tokenizer, load(target, cfg.target.dtype),
                         target.tokenizer, checked.source_layer, source.stop_ids, target.stop_ids)
  sp = checked.splits
  return Setup(frozen, checked.builder, pool=list(sp.train), test=list(sp.test), mesh=mesh,
               validation=list(sp.validation), splits=sp.summary(), skipped=checked.skipped)


def context(cfg: ml_collections.ConfigDict, s: Setup) -> evaluate.Context:
  """The evaluation context of this config; variants (a translator, a batch size) are `dataclasses.replace`s."""
  return evaluate.Context(s.frozen, s.builder, cfg.data.answer_anchor, cfg.translator.num_soft_tokens,
                          decoding(cfg), s.mesh, control_seed=cfg.eval.control_seed,
                          prior=methods.prior_answers(s.pool + s.validation))


def decoding(cfg: ml_collections.ConfigDict) -> evaluate.Decoding:
  e = cfg.eval
  return evaluate.Decoding(max_new_tokens=e.max_new_tokens, stop_strings=tuple(e.stop_strings),
                           batch_size=e.batch_size, length_buckets=tuple(e.length_buckets),
                           repetition_penalty=e.repetition_penalty, no_repeat_ngram_size=e.no_repeat_ngram_size)


def new_translator(cfg: ml_collections.ConfigDict, s: Setup):
  t = cfg.translator
  return bridge.make_translator(frozen=s.frozen, num_soft_tokens=t.num_soft_tokens, bottleneck=t.bottleneck,
                                depth=t.depth, num_heads=t.num_heads, dropout=t.dropout,
                                calibrate_rms=t.calibrate_rms, seed=cfg.seed, reads_source=t.reads_source)


def training_data(cfg: ml_collections.ConfigDict, s: Setup,
                  examples: list | None = None) -> tuple[pipeline.Lengths, list[dict]]:
  """The static lengths (measured on the whole pool) and `examples` (default: the pool) encoded with them."""
  tok, m, anchor = s.frozen.target_tokenizer, cfg.translator.num_soft_tokens, cfg.data.answer_anchor
  lengths = pipeline.measure_lengths(s.pool, builder=s.builder, target_tokenizer=tok, anchor=anchor,
                                     num_soft_tokens=m, max_answer_len=cfg.data.max_answer_len)
  logging.info("static lengths: %s", lengths)
  encoded = train.encode_pool(s.pool if examples is None else examples, builder=s.builder, target_tokenizer=tok,
                              anchor=anchor, num_soft_tokens=m, lengths=lengths)
  return lengths, encoded


def loss_spec(cfg: ml_collections.ConfigDict, lengths: pipeline.Lengths) -> train.LossSpec:
  return train.LossSpec(infonce_weight=cfg.loss.infonce_weight, infonce_start_step=cfg.loss.infonce_start_step,
                        temperature=cfg.loss.temperature, answer_window=lengths.answer + 2, remat=cfg.train.remat,
                        attention_impl=cfg.model.attention_impl)


@dataclasses.dataclass(frozen=True)
class TrainingStep:
  """What a config makes of the translator and optimizer, ready for `train.fit`, a test or a benchmark."""
  spec: train.LossSpec
  tx: object  # optax.GradientTransformation
  schedule: object  # step -> base learning rate
  graphdef: object
  state: train.TrainState  # the translator's initial state, replicated over s.mesh
  step_fn: object  # the jitted train step: (state, frozen_params, batch) -> (state, metrics)


def training_step(cfg: ml_collections.ConfigDict, s: Setup, lengths: pipeline.Lengths,
                  translator=None) -> TrainingStep:
  """The one wiring of a config into a train step on `s.mesh`: loss spec, optimizer, initial state (of
  `translator`, default a fresh one of the config) and the jitted step."""
  tx, schedule = train.make_optimizer(cfg, cfg.train.steps)
  graphdef, state = train.init_state(translator or new_translator(cfg, s), tx, s.mesh)
  spec = loss_spec(cfg, lengths)
  step_fn = train.make_train_step(mesh=s.mesh, frozen=s.frozen, graphdef=graphdef, tx=tx, schedule=schedule,
                                  spec=spec)
  return TrainingStep(spec, tx, schedule, graphdef, state, step_fn)


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


def resume(cfg: ml_collections.ConfigDict, workdir: str, state: train.TrainState, data_iter):
  """(checkpoints, state, early stopping, restored?): the latest checkpoint's, when there is one."""
  checkpoints = train.Checkpoints(workdir, cfg.train.keep_checkpoints)
  stopper = train.EarlyStopping(patience=cfg.train.patience, enabled=cfg.train.early_stopping)
  restored = checkpoints.restore_latest(train.abstract_like(state))
  if restored is None:
    return checkpoints, state, stopper, False
  state, data_state, loop_state = restored
  data_iter.set_state(data_state)
  logging.info("resumed from step %d", int(state.step))
  return checkpoints, state, train.EarlyStopping(**loop_state), True


def loop_settings(cfg: ml_collections.ConfigDict, workdir: str) -> train.LoopSettings:
  p = cfg.profile
  return train.LoopSettings(total_steps=cfg.train.steps, log_every=cfg.train.log_every,
                            eval_every=cfg.train.eval_every, global_batch_size=cfg.train.batch_size,
                            profile_dir=os.path.join(workdir, "profile") if p.start_step >= 0 else None,
                            profile_steps=(p.start_step, p.num_steps))


def write_summary(summary: dict, workdir: str) -> None:
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, outputs.TRAIN_SUMMARY), summary)
  logging.info("training summary: %s", summary)


def train_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  if (summary := finished_training(cfg, workdir)) is not None:
    return summary
  lengths, encoded = training_data(cfg, s)
  t = training_step(cfg, s, lengths)
  buckets = tuple(cfg.data.length_buckets)
  shapes = pipeline.compiled_shapes(encoded, buckets)
  logging.info("training batches padded to source lengths %s and target lengths %s: at most %d compiled "
               "train-step shapes", shapes["source"], shapes["target"], len(shapes["source"]) * len(shapes["target"]))
  states = None  # the frozen source's states of the pool, computed once into the workdir (source_cache)
  if cfg.train.cache_source_states:
    states = source_cache.load_or_build(
        os.path.join(workdir, source_cache.CACHE_DIR), encoded, model_path=cfg.source.path,
        params=s.frozen.source.params, config=s.frozen.source.config, layer=s.frozen.source_layer,
        dtype=cfg.source.dtype, attention_impl=cfg.model.attention_impl, mesh=s.mesh, length_buckets=buckets,
        batch_size=cfg.train.batch_size)
  data_iter = iter(pipeline.train_dataset(encoded, global_batch_size=cfg.train.batch_size,
                                          seed=cfg.data.shuffle_seed, length_buckets=buckets,
                                          process_index=jax.process_index(), process_count=jax.process_count(),
                                          source_states=states))
  logging.info("translator parameters: %s", f"{bridge.count_params(t.state.params):,}")
  checkpoints, state, stopper, restored = resume(cfg, workdir, t.state, data_iter)
  ctx = context(cfg, s)

  def bridged_accuracy(st: train.TrainState) -> float:  # on the validation split, never the test split
    return evaluate.bridged_accuracy(dataclasses.replace(ctx, translator=(t.graphdef, st.params, st.rngs)),
                                     s.validation)

  loop = train.Loop(step_fn=t.step_fn, frozen_params=(s.frozen.source.params, s.frozen.target.params),
                    data_iter=data_iter, mesh=s.mesh, evaluate=bridged_accuracy, checkpoints=checkpoints,
                    metrics=train.MetricsLog(workdir, resume_step=int(state.step) if restored else -1),
                    stopper=stopper)
  state, summary = train.fit(state, loop, loop_settings(cfg, workdir))
  loop.metrics.close()
  summary["splits"] = s.splits
  summary["skipped_long_prompts"] = s.skipped
  # The scale the soft tokens' logged `soft_rms` is read against (calibrated translators output exactly it).
  summary["target_embedding_rms"] = embedding_rms(s.frozen.target.params["embed"])
  write_summary(summary, workdir)
  return summary


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


def restore(cfg: ml_collections.ConfigDict, workdir: str, module, mesh, which: str = "best") -> tuple:
  """(graphdef, params, rngs) of the "best" or "final" checkpoint of a bridge shaped like `module` (any kind)."""
  tx, _ = train.make_optimizer(cfg, cfg.train.steps)
  graphdef, params, rngs, step = train.restore_translator(workdir, module, tx, mesh, which)
  logging.info("evaluating the %s checkpoint (step %d)", which, step)
  return graphdef, params, rngs


def translator_at(cfg: ml_collections.ConfigDict, s: Setup, workdir: str, which: str) -> tuple:
  return restore(cfg, workdir, new_translator(cfg, s), s.mesh, which)


def eval_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  """Every method of `eval.methods` on a seeded subset of eval.num_samples test questions, once, with the
  translator of `evaluated_checkpoint`; `latent` also with the other checkpoint (`latent_at_best` or
  `latent_at_final`), so that every run reports both."""
  e = cfg.eval
  ctx = context(cfg, s)
  which = evaluated_checkpoint(cfg)
  soft = any(methods.get(m).soft_from is not None for m in e.methods)
  if soft:
    ctx = dataclasses.replace(ctx, translator=translator_at(cfg, s, workdir, which))
  examples, evaluated = splits.evaluation_subset(s.test, e.num_samples, e.subset_seed)
  if len(examples) < e.num_samples:
    logging.warning("eval.num_samples=%d but the test split has %d questions", e.num_samples, len(examples))
  samples = os.path.join(workdir, outputs.SAMPLES)
  records = evaluate.run_methods(ctx, list(e.methods), examples, samples)
  if soft and "latent" in e.methods:
    other = other_checkpoint(cfg)
    other_ctx = dataclasses.replace(ctx, translator=translator_at(cfg, s, workdir, other))
    records = evaluate.run_methods(other_ctx, [f"latent_at_{other}"], examples, samples)
  relayed = {r["id"]: r["prediction"] for r in records if r["method"] == "source_alone"}
  throughput = evaluate.measure_throughput(ctx, list(e.methods), examples, tuple(e.latency_batch_sizes),
                                           relayed=relayed)
  latency = evaluate.measure_latency(ctx, list(e.methods), examples, e.latency_samples, relayed=relayed)
  split = dict(s.splits, evaluated=evaluated)
  agg = results.aggregate([r for r in records if r["id"] in {x.id for x in examples}], dataset=cfg.data.dataset,
                          num_soft_tokens=cfg.translator.num_soft_tokens, bootstrap_samples=e.bootstrap_samples,
                          seed=cfg.seed, throughput=throughput, split=split)
  agg["latency_batch1"] = latency
  agg["checkpoint"] = checkpoint_record(cfg, workdir)
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, outputs.AGGREGATE), agg)
  print(report.methods_table(agg))
  return agg


def compression_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  c = cfg.compression
  ctx = dataclasses.replace(context(cfg, s), translator=translator_at(cfg, s, workdir, evaluated_checkpoint(cfg)))
  examples = splits.evaluation_subset(s.test, c.num_samples, cfg.eval.subset_seed)[0]
  result = compression.analyse(ctx, examples, formats=tuple(c.formats), group_size=c.group_size,
                               out_dir=os.path.join(workdir, "compression"))
  print(compression.table(result))
  return result


def run(cfg: ml_collections.ConfigDict, workdir: str, modes: tuple[str, ...]) -> dict:
  """The stages of `modes`, as the config's bridge kind runs them (`bridges`)."""
  validate.check(cfg, device_count=jax.device_count())  # every value, before the toy pretrains or anything loads
  os.makedirs(workdir, exist_ok=True)
  return bridges.get(cfg.bridge.kind).run(cfg, workdir, modes)


def run_translator(cfg: ml_collections.ConfigDict, workdir: str, modes: tuple[str, ...]) -> dict:
  if "diagnostics" in modes:
    raise errors.ConfigError("--mode=diagnostics measures a latent bridge kind's adapters; bridge.kind="
                             f"{cfg.bridge.kind!r} has none (set bridge.kind, e.g. 'interlingua').")
  if cfg.data.dataset == "toy":
    resolve_toy(cfg, workdir)
  if "word_problems" in cfg:
    resolve_word_problems(cfg, workdir)
  check_config(cfg, workdir, modes)
  out = {}
  s = setup(cfg, workdir) if set(modes) - {"report"} else None
  if "train" in modes:
    out["train"] = train_stage(cfg, s, workdir)
  if "eval" in modes:
    out["eval_scenario"] = eval_stage(cfg, s, workdir)["scenario"]
  if "compression" in modes:
    compression_stage(cfg, s, workdir)
  if "report" in modes and jax.process_index() == 0:
    out["report"] = report.write(workdir)
  return out
