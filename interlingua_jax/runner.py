"""Wires a config to the stages of a run: train → eval → compression → report.

This is the only place (with `main`) that reads a whole ConfigDict; everything it calls
takes explicit arguments.
"""
import dataclasses
import json
import logging
import os

import jax
import ml_collections

from interlingua_jax import ablations, bridge, compression, evaluate, methods, preflight, report, results, train
from interlingua_jax.data import pipeline, splits
from interlingua_jax.models.loading import load_model
from interlingua_jax.sharding import make_mesh

# Config sections that may change between runs in one workdir: they do not shape the trained state.
_FREE_KEYS = ("name", "eval", "compression", "profile", "mesh", "model.attention_impl", "toy.cache_dir",
              "train.log_every")


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


def check_config(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses a workdir whose checkpoints were trained with a different config; records the config."""
  path = os.path.join(workdir, "config.json")
  current = json.loads(cfg.to_json_best_effort())
  has_checkpoints = os.path.isdir(os.path.join(workdir, "checkpoints"))
  if os.path.exists(path) and has_checkpoints:
    with open(path) as f:
      saved = ablations.flatten(json.load(f))
    now = ablations.flatten(current)
    free = lambda k: any(k == p or k.startswith(p + ".") for p in _FREE_KEYS)
    diff = sorted(k for k in saved.keys() | now.keys() if not free(k) and saved.get(k) != now.get(k))
    if diff:
      shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff[:6])
      raise ValueError(f"{workdir} holds checkpoints of a different config ({shown}). Use a new --workdir, "
                       "or pass the same config to resume.")
  if jax.process_index() == 0:
    with open(path, "w") as f:
      json.dump(current, f, indent=2)


def resolve_toy(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """The toy world: write its data and pretrain its two LMs (cached), and point the config at them."""
  from interlingua_jax.toy import world
  paths = world.prepare(cfg.toy.cache_dir or os.path.join(workdir, "toy"), **cfg.toy.world.to_dict())
  with cfg.unlocked():
    cfg.source.path, cfg.target.path = paths["source"], paths["target"]
    cfg.data.train_path, cfg.data.test_path = paths["train"], paths["test"]


def setup(cfg: ml_collections.ConfigDict, workdir: str) -> Setup:
  """Preflight (config → tokenizers → data, no weight read), then the frozen weights onto the mesh."""
  checked = preflight.run(cfg)
  mesh = make_mesh(cfg.mesh.data, cfg.mesh.model)
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
  e = cfg.eval
  decoding = evaluate.Decoding(max_new_tokens=e.max_new_tokens, stop_strings=tuple(e.stop_strings),
                               batch_size=e.batch_size, length_buckets=tuple(e.length_buckets),
                               repetition_penalty=e.repetition_penalty, no_repeat_ngram_size=e.no_repeat_ngram_size)
  return evaluate.Context(s.frozen, s.builder, cfg.data.answer_anchor, cfg.translator.num_soft_tokens, decoding,
                          s.mesh, control_seed=e.control_seed)


def new_translator(cfg: ml_collections.ConfigDict, s: Setup):
  t = cfg.translator
  return bridge.make_translator(frozen=s.frozen, num_soft_tokens=t.num_soft_tokens, bottleneck=t.bottleneck,
                                depth=t.depth, num_heads=t.num_heads, dropout=t.dropout,
                                calibrate_rms=t.calibrate_rms, seed=cfg.seed)


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


def train_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  summary_path = os.path.join(workdir, "train_summary.json")
  if os.path.exists(summary_path):
    logging.info("training already finished (%s); skipping", summary_path)
    with open(summary_path) as f:
      return json.load(f)
  lengths, encoded = training_data(cfg, s)
  t = training_step(cfg, s, lengths)
  buckets = tuple(cfg.data.length_buckets)
  shapes = pipeline.compiled_shapes(encoded, buckets)
  logging.info("training batches padded to source lengths %s and target lengths %s: at most %d compiled "
               "train-step shapes", shapes["source"], shapes["target"], len(shapes["source"]) * len(shapes["target"]))
  data_iter = iter(pipeline.train_dataset(encoded, global_batch_size=cfg.train.batch_size,
                                          seed=cfg.data.shuffle_seed, length_buckets=buckets,
                                          process_index=jax.process_index(), process_count=jax.process_count()))
  state = t.state
  logging.info("translator parameters: %s", f"{bridge.count_params(state.params):,}")
  checkpoints = train.Checkpoints(workdir, cfg.train.keep_checkpoints)
  stopper = train.EarlyStopping(patience=cfg.train.patience, enabled=cfg.train.early_stopping)
  restored = train.Checkpoints.restore(checkpoints.latest, train.abstract_like(state))
  if restored is not None:
    state, data_state, loop = restored
    data_iter.set_state(data_state)
    stopper = train.EarlyStopping(**loop)
    logging.info("resumed from step %d", int(state.step))
  ctx = context(cfg, s)

  def bridged_accuracy(st: train.TrainState) -> float:  # on the validation split, never the test split
    return evaluate.bridged_accuracy(dataclasses.replace(ctx, translator=(t.graphdef, st.params, st.rngs)),
                                     s.validation)

  p = cfg.profile
  state, summary = train.fit(
      state=state, step_fn=t.step_fn, frozen_params=(s.frozen.source.params, s.frozen.target.params),
      data_iter=data_iter, mesh=s.mesh, total_steps=cfg.train.steps, log_every=cfg.train.log_every,
      eval_every=cfg.train.eval_every, evaluate=bridged_accuracy, checkpoints=checkpoints,
      metrics=train.MetricsLog(workdir), stopper=stopper, global_batch_size=cfg.train.batch_size,
      profile_dir=os.path.join(workdir, "profile") if p.start_step >= 0 else None,
      profile_steps=(p.start_step, p.num_steps))
  summary["splits"] = s.splits
  summary["skipped_long_prompts"] = s.skipped
  if jax.process_index() == 0:
    with open(summary_path, "w") as f:
      json.dump(summary, f, indent=2)
  logging.info("training summary: %s", summary)
  return summary


def best_translator(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> tuple:
  tx, _ = train.make_optimizer(cfg, cfg.train.steps)
  graphdef, params, rngs, step = train.restore_best_translator(workdir, new_translator(cfg, s), tx, s.mesh)
  logging.info("evaluating the best checkpoint (step %d)", step)
  return graphdef, params, rngs


def eval_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  """Every method of `eval.methods` on the test split (its first eval.num_samples questions), once."""
  e = cfg.eval
  ctx = context(cfg, s)
  if any(methods.get(m).soft_from is not None for m in e.methods):
    ctx = dataclasses.replace(ctx, translator=best_translator(cfg, s, workdir))
  examples = s.test[:e.num_samples]
  if len(examples) < e.num_samples:
    logging.warning("eval.num_samples=%d but the test split has %d questions", e.num_samples, len(examples))
  out_dir = os.path.join(workdir, "eval")
  records = evaluate.run_methods(ctx, list(e.methods), examples, os.path.join(out_dir, "samples.jsonl"))
  relayed = {r["id"]: r["prediction"] for r in records if r["method"] == "source_alone"}
  throughput = evaluate.measure_throughput(ctx, list(e.methods), examples, tuple(e.latency_batch_sizes),
                                           relayed=relayed)
  split = dict(s.splits, evaluated={"size": len(examples), "ids_sha256": splits.ids_hash(examples)})
  agg = results.aggregate([r for r in records if r["id"] in {x.id for x in examples}], dataset=cfg.data.dataset,
                          num_soft_tokens=cfg.translator.num_soft_tokens, bootstrap_samples=e.bootstrap_samples,
                          seed=cfg.seed, throughput=throughput, split=split)
  if jax.process_index() == 0:
    with open(os.path.join(out_dir, "aggregate.json"), "w") as f:
      json.dump(agg, f, indent=2)
  print(report.methods_table(agg))
  return agg


def compression_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  c = cfg.compression
  ctx = dataclasses.replace(context(cfg, s), translator=best_translator(cfg, s, workdir))
  result = compression.analyse(ctx, s.test[:c.num_samples], formats=tuple(c.formats), group_size=c.group_size,
                               out_dir=os.path.join(workdir, "compression"))
  print(compression.table(result))
  return result


def run(cfg: ml_collections.ConfigDict, workdir: str, modes: tuple[str, ...]) -> dict:
  os.makedirs(workdir, exist_ok=True)
  if cfg.data.dataset == "toy":
    resolve_toy(cfg, workdir)
  check_config(cfg, workdir)
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
