"""The stages of a latent-kind run (bridge.kind "interlingua", or any kind registered beside it).

    setup       the frozen targets of `interlingua.targets` (each its tokenizer and prompt builder) on one
                mesh, with interlingua.encoder = "states" the frozen source LM the encoder reads, and the
                splits (train, validation carved from train, test), no exemplars
    train       one Z for all targets at once through `train.fit` (training.py); every validation pass
                scores `latent` on each target and logs the collapse alarm (diagnostics.py)
    eval        every method of `eval.methods` on the same test questions, for each target:
                `eval/<target>/samples.jsonl`, and `eval/aggregate.json` with one table per target
    diagnostics embedding diagnostics of the best checkpoint (diagnostics.py)
"""
import dataclasses
import logging
import os

import jax
import ml_collections
import numpy as np
from flax import nnx

from interlingua_jax.analysis import report
from interlingua_jax.bridges import kind as bridges
from interlingua_jax.bridges.translator import bridge
from interlingua_jax.core import errors, outputs, stats
from interlingua_jax.evaluation import harness as evaluate, methods, results
from interlingua_jax.models import inputs
from interlingua_jax.run import runner
from interlingua_jax.training import train
from interlingua_jax.data import kinds, pipeline, splits
from interlingua_jax.data.records import load_split
from interlingua_jax.bridges.interlingua import batches, diagnostics, training
from interlingua_jax.bridges.interlingua.encoder import ByteEncoder
from interlingua_jax.bridges.interlingua.shared import FrozenSource, SharedInterlingua
from interlingua_jax.bridges.interlingua.states_encoder import StatesEncoder
from interlingua_jax.models import CausalLM
from interlingua_jax.models.loading import load_model, load_tokenizer, resolve_checkpoint_dir
from interlingua_jax.run.preflight import check_model
from interlingua_jax.models.sharding import make_mesh
from interlingua_jax.nn.blocks import embedding_rms


@dataclasses.dataclass
class Target:
  lm: CausalLM
  tokenizer: object
  stop_ids: tuple[int, ...]
  builder: pipeline.PromptBuilder  # its text prompt (target_alone), fitted to data.max_source_len of its tokens


@dataclasses.dataclass
class Source:
  """The states encoder's frozen source LM and the hidden state it reads (HF index in [0, num_layers])."""
  lm: CausalLM
  tokenizer: object
  layer: int


@dataclasses.dataclass
class Setup:
  targets: dict[str, Target]  # in the order of interlingua.targets
  train: list
  validation: list
  test: list
  mesh: jax.sharding.Mesh
  splits: dict
  skipped: dict
  source: Source | None = None  # interlingua.encoder = "states" only


def _target(cfg: ml_collections.ConfigDict, entry: dict, mesh) -> Target:
  checked = check_model(entry["name"], entry["path"])
  tokenizer = checked.tokenizer
  if entry["tokenizer"]:
    directory = resolve_checkpoint_dir(entry["tokenizer"])
    tokenizer = load_tokenizer(directory, required=True)
    inputs.check_tokenizer(directory, tokenizer, checked.config.vocab_size)
  lm = load_model(checked.directory, dtype=entry["dtype"], mesh=mesh, attention_impl=cfg.model.attention_impl)
  d = cfg.data
  builder = pipeline.PromptBuilder(d.dataset, (), tokenizer, tokenizer, d.max_source_len, d.chat_template)
  return Target(lm, tokenizer, checked.stop_ids, builder)


def _source(cfg: ml_collections.ConfigDict, mesh) -> Source:
  checked = check_model("source", cfg.source.path)
  lm = load_model(checked.directory, dtype=cfg.source.dtype, mesh=mesh, attention_impl=cfg.model.attention_impl)
  return Source(lm, checked.tokenizer, bridge.resolve_layer(cfg.source.layer, checked.config.num_layers))


def setup(cfg: ml_collections.ConfigDict) -> Setup:
  """Targets loaded in config order; questions whose text prompt fits no target's budget skipped and counted."""
  mesh = make_mesh(cfg.mesh.data, cfg.mesh.model)
  with errors.as_input_error(ValueError, RuntimeError):
    source = _source(cfg, mesh) if cfg.interlingua.encoder == "states" else None
    targets = {t["name"]: _target(cfg, t, mesh) for t in cfg.interlingua.targets}
    d = cfg.data
    load = lambda split, path: load_split(d.dataset, split, path=path, hf_name=d.hf_name, hf_config=d.hf_config)
    sp = splits.make(load(d.train_split, d.train_path), load(d.test_split, d.test_path), num_shots=0,
                     shot_seed=d.shot_seed, validation_size=cfg.train.eval_num_samples, seed=d.validation_seed,
                     by_passage=kinds.get(d.dataset).shared_passages)
  fits = lambda e: all(t.builder.source_prompt(e) is not None for t in targets.values())
  kept = {name: [e for e in getattr(sp, name) if fits(e)] for name in ("train", "validation", "test")}
  skipped = {name: len(getattr(sp, name)) - len(v) for name, v in kept.items()}
  if any(skipped.values()):
    logging.warning("skipped questions whose text prompt is over data.max_source_len=%d tokens: %s",
                    cfg.data.max_source_len, skipped)
  return Setup(targets, kept["train"], kept["validation"], kept["test"], mesh, sp.summary(), skipped, source)


def reader(cfg: ml_collections.ConfigDict, s: Setup) -> batches.Reader:
  """Bytes up to interlingua.max_bytes, or the source's tokens up to data.max_source_len (states encoder)."""
  if s.source is None:
    return batches.Reader(cfg.interlingua.max_bytes)
  return batches.Reader(cfg.data.max_source_len, s.source.tokenizer)


def frozen_source(cfg: ml_collections.ConfigDict, s: Setup) -> tuple[FrozenSource | None, object]:
  """The states encoder's source (static) and its params; (None, None) for the byte encoder."""
  if s.source is None:
    return None, None
  return FrozenSource(s.source.lm.config, s.source.layer, cfg.model.attention_impl), s.source.lm.params


def build_shared(cfg: ml_collections.ConfigDict, target_dims: dict[str, int], target_rms: dict[str, float],
                 source_dim: int | None) -> SharedInterlingua:
  """The `interlingua` kind's module: byte encoder (or the frozen source's states, projected to d_z) -> M latent
  queries -> Z -> an adapter per target."""
  c = cfg.interlingua
  rngs = nnx.Rngs(params=cfg.seed)
  if c.encoder == "states":
    encoder = StatesEncoder(source_dim=source_dim, dim=c.latent_dim, rngs=rngs)
  else:
    encoder = ByteEncoder(dim=c.latent_dim, depth=c.depth, num_heads=c.num_heads, max_len=c.max_bytes, rngs=rngs)
  return SharedInterlingua(encoder=encoder, target_dims=target_dims, num_latents=c.num_latents,
                           latent_dim=c.latent_dim, num_heads=c.num_heads,
                           target_embed_rms=target_rms if c.calibrate_rms else None, rngs=rngs)


def new_module(cfg: ml_collections.ConfigDict, s: Setup) -> nnx.Module:
  dims = {name: t.lm.config.hidden_size for name, t in s.targets.items()}
  rms = {name: embedding_rms(t.lm.params["embed"]) for name, t in s.targets.items()}
  source_dim = None if s.source is None else s.source.lm.config.hidden_size
  return bridges.get(cfg.bridge.kind).build(cfg, dims, rms, source_dim)


WIDTH_STEP = 64  # evaluation pads the encoder's rows to a multiple of this


@dataclasses.dataclass(frozen=True)
class LatentSource:
  """`evaluate.SoftSource` of a trained latent module for one target: encoder ids in, its soft tokens out."""
  module: tuple  # (graphdef, params, rest) as `train.TrainState` holds them
  target: str
  reader: batches.Reader
  source: FrozenSource | None = None  # the states encoder's frozen source, and its params
  source_params: object = None

  def ids(self, example) -> list[int]:
    return self.reader.ids(example)

  def soft(self, rows: list[list[int]]) -> jax.Array:
    # Padded to a multiple of WIDTH_STEP, not to max_len: a 7B source reading 2,048 positions for a 200-token
    # context would spend 10x the work; at most max_len / WIDTH_STEP programs compile.
    width = min(self.reader.max_len, -(-max(map(len, rows)) // WIDTH_STEP) * WIDTH_STEP)
    ids, mask = self.reader.pad(rows, width)
    graphdef, params, rest = self.module
    return training.soft_tokens_jit(graphdef, params, rest, self.source_params, ids, mask, self.target, self.source)


def context(cfg: ml_collections.ConfigDict, s: Setup, name: str, module: tuple | None) -> evaluate.Context:
  """Target `name`'s evaluation context; its records are labelled with the target's name."""
  t = s.targets[name]
  frozen = bridge.Frozen(None, None, t.lm, t.tokenizer, 0, (), t.stop_ids)
  source = None if module is None else LatentSource(module, name, reader(cfg, s), *frozen_source(cfg, s))
  return evaluate.Context(frozen, t.builder, cfg.data.answer_anchor, cfg.interlingua.num_latents,
                          runner.decoding(cfg), s.mesh, control_seed=cfg.eval.control_seed, soft_source=source,
                          labels=(("target", name),), prior=methods.prior_answers(s.train + s.validation))


def score(records: list[dict]) -> float:
  """Mean F1 where the dataset scores F1, else accuracy: what selects the best checkpoint."""
  key = "f1" if records and "f1" in records[0] else "correct"
  return float(np.mean([float(r[key]) for r in records]))


def validation_pass(cfg, s: Setup, module: tuple, log: train.MetricsLog, step: int) -> float:
  """`latent` on the validation split for every target, with the collapse alarm; the mean score over targets."""
  row, scores = {"step": step}, []
  for name, t in s.targets.items():
    ctx = dataclasses.replace(context(cfg, s, name, module), warm_up=False)
    records = evaluate.run_methods(ctx, ["latent"], s.validation, samples_path=None, progress=False)
    scores.append(score(records))
    alarm = diagnostics.collapse_alarm([r["prediction"] for r in records], t.tokenizer)
    row.update({f"validation/{name}/score": scores[-1], **{f"validation/{name}/{k}": v for k, v in alarm.items()}})
    logging.log(logging.WARNING if alarm["alarm"] else logging.INFO,
                "step %d, target %s: validation score %.4f; %.0f%% identical predictions, most common first "
                "token %r (%.0f%%)%s", step, name, scores[-1], 100 * alarm["identical_share"], alarm["top_first_token"],
                100 * alarm["top_first_token_share"], " -- COLLAPSE ALARM" if alarm["alarm"] else "")
  log.write(row)
  return float(np.mean(scores))


def train_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  if (summary := runner.finished_training(cfg, workdir)) is not None:
    return summary
  c = cfg.interlingua
  tokenizers = {name: t.tokenizer for name, t in s.targets.items()}
  spec = batches.row_spec(s.train, tokenizers, num_latents=c.num_latents, k_tokens=c.k_tokens,
                          anchor=cfg.data.answer_anchor, reader=reader(cfg, s))
  encoded = [batches.encode_example(e, tokenizers, spec) for e in s.train]
  buckets = tuple(cfg.data.length_buckets)
  logging.info("training batches: the encoder's input padded to lengths %s (a train-step shape each)",
               pipeline.compiled_shapes(encoded, buckets, batches.PARTS)["encoder"])
  data_iter = iter(pipeline.train_dataset(encoded, global_batch_size=cfg.train.batch_size,
                                          seed=cfg.data.shuffle_seed, length_buckets=buckets, parts=batches.PARTS,
                                          process_index=jax.process_index(), process_count=jax.process_count()))
  tx, schedule = train.make_optimizer(cfg, cfg.train.steps)
  graphdef, state = train.init_state(new_module(cfg, s), tx, s.mesh)
  logging.info("%s parameters: %s", cfg.bridge.kind, f"{bridge.count_params(state.params):,}")
  source, source_params = frozen_source(cfg, s)
  loss = training.LossSpec(k_tokens=c.k_tokens, first_token_weight=c.first_token_weight, remat=cfg.train.remat,
                           attention_impl=cfg.model.attention_impl, source=source)
  step_fn = training.make_train_step(mesh=s.mesh, configs={n: t.lm.config for n, t in s.targets.items()},
                                     graphdef=graphdef, tx=tx, schedule=schedule, spec=loss)
  checkpoints, state, stopper, restored = runner.resume(cfg, workdir, state, data_iter)
  log = train.MetricsLog(workdir, resume_step=int(state.step) if restored else -1)
  evaluate_ = lambda st: validation_pass(cfg, s, (graphdef, st.params, st.rngs), log, int(st.step))
  loop = train.Loop(step_fn=step_fn, frozen_params=(source_params, {n: t.lm.params for n, t in s.targets.items()}),
                    data_iter=data_iter, mesh=s.mesh, evaluate=evaluate_, checkpoints=checkpoints, metrics=log,
                    stopper=stopper)
  state, summary = train.fit(state, loop, runner.loop_settings(cfg, workdir))
  log.close()
  summary.update(splits=s.splits, skipped_long_prompts=s.skipped)
  runner.write_summary(summary, workdir)
  return summary


def evaluated_module(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> tuple:
  return runner.restore(cfg, workdir, new_module(cfg, s), s.mesh, runner.evaluated_checkpoint(cfg))


def paired_f1(records: list[dict], other: str, *, bootstrap_samples: int, seed: int) -> dict | None:
  """latent − `other` in mean F1 on the questions both answered: the difference and its paired 95% interval."""
  by = {m: {r["id"]: r for r in records if r["method"] == m} for m in ("latent", other)}
  ids = sorted(by["latent"].keys() & by[other].keys())
  if not ids or "f1" not in by["latent"][ids[0]]:
    return None
  a, b = (np.array([by[m][i]["f1"] for i in ids], np.float64) for m in ("latent", other))
  diff, lo, hi = stats.paired_bootstrap(a, b, n=bootstrap_samples, seed=seed)
  clusters = [by["latent"][i].get("cluster", i) for i in ids]  # SQuAD: the article; records of old runs: the id
  _, cluster_lo, cluster_hi = stats.paired_cluster_bootstrap(a, b, clusters, n=bootstrap_samples, seed=seed)
  return {"diff": diff, "ci95": [lo, hi], "ci95_cluster": [cluster_lo, cluster_hi], "n": len(ids)}


def eval_stage(cfg: ml_collections.ConfigDict, s: Setup, workdir: str) -> dict:
  """Every method on the first eval.num_samples test questions, for each target; one table per target."""
  e = cfg.eval
  module = evaluated_module(cfg, s, workdir)
  other = runner.other_checkpoint(cfg)  # latent with it too, so that every run reports both checkpoints
  other_module = runner.restore(cfg, workdir, new_module(cfg, s), s.mesh, other) if "latent" in e.methods else None
  examples, evaluated = splits.evaluation_subset(s.test, e.num_samples, e.subset_seed)
  split = dict(s.splits, evaluated=evaluated)
  out = {"bridge": cfg.bridge.kind, "dataset": cfg.data.dataset, "targets": {},
         "checkpoint": runner.checkpoint_record(cfg, workdir)}
  for name, t in s.targets.items():
    ctx, path = context(cfg, s, name, module), os.path.join(workdir, "eval", name, "samples.jsonl")
    records = evaluate.run_methods(ctx, [m for m in e.methods if m != "pca"], examples, path)
    if other_module is not None:
      records = evaluate.run_methods(context(cfg, s, name, other_module), [f"latent_at_{other}"], examples, path)
    if "pca" in e.methods:
      from interlingua_jax.bridges.interlingua import baselines  # needs interlingua/pca.py (the data side's module)
      source = baselines.fit_source(s.train[:cfg.interlingua.pca_fit_texts], t.tokenizer, t.lm.params["embed"],
                                    num_components=cfg.interlingua.num_latents, max_len=cfg.data.max_source_len,
                                    target_rms=embedding_rms(t.lm.params["embed"]))
      records = evaluate.run_methods(dataclasses.replace(ctx, soft_source=source), ["pca"], examples, path)
    records = [r for r in records if r["id"] in {x.id for x in examples}]
    agg = results.aggregate(records, dataset=cfg.data.dataset, num_soft_tokens=cfg.interlingua.num_latents,
                            bootstrap_samples=e.bootstrap_samples, seed=cfg.seed, split=split)
    agg["f1_comparisons"] = {f"latent_vs_{m}": c for m in e.methods if m != "latent"
                             if (c := paired_f1(records, m, bootstrap_samples=e.bootstrap_samples, seed=cfg.seed))}
    if "pca" in e.methods:
      agg["pca"] = {"explained_variance": float(source.projection.explained_variance_ratio.sum()),
                    "max_len": source.projection.max_len, "fit_texts": len(s.train[:cfg.interlingua.pca_fit_texts])}
    out["targets"][name] = agg
    print(f"\n## target {name}\n" + report.methods_table(agg))
  if jax.process_index() == 0:
    outputs.write_json(os.path.join(workdir, outputs.AGGREGATE), out)
  return out


def report_stage(workdir: str) -> str:
  """`report.md`: each target's methods table and latent's paired F1 differences."""
  agg = outputs.read_json(os.path.join(workdir, "eval", "aggregate.json"))
  if agg is None or "targets" not in agg:
    raise errors.WorkdirError(f"{workdir} has no per-target eval/aggregate.json: run --mode=eval first.")
  lines = [f"# {agg['bridge']} on {agg['dataset']}\n"]
  for name, table in agg["targets"].items():
    lines += [f"## Target {name} ({table['num_questions']} test questions)\n", report.methods_table(table), "",
              "| method | F1 | 95% CI |", "|---|---|---|"]
    lines += [f"| {m} | {v['f1']:.3f} | [{v['f1_ci95'][0]:.3f}, {v['f1_ci95'][1]:.3f}] |"
              for m, v in table["methods"].items() if "f1" in v]
    if "pca" in table:
      lines.append(f"\nPCA: explained variance {table['pca']['explained_variance']:.4f} "
                   f"({table['pca']['fit_texts']} training texts, <= {table['pca']['max_len']} tokens)")
    lines += ["", "| latent vs | F1 difference | 95% paired interval |", "|---|---|---|"]
    lines += [f"| {k[len('latent_vs_'):]} | {c['diff']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] |"
              for k, c in table["f1_comparisons"].items()] + [""]
  path = os.path.join(workdir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def resolve_toy(cfg: ml_collections.ConfigDict, workdir: str) -> None:
  """The extractive toy world (`toy.extractive`): its SQuAD-format data and tiny targets, built once (cached);
  `toy.source` names the toy model whose states a states encoder reads (the world has no third model)."""
  from interlingua_jax.toy import extractive
  paths = extractive.prepare(cfg.toy.cache_dir or os.path.join(workdir, "toy"), **cfg.toy.extractive.to_dict())
  with cfg.unlocked():
    cfg.data.train_path, cfg.data.test_path = paths["train"], paths["test"]
    cfg.interlingua.targets = tuple(dict(t, path=paths["targets"][t["name"]]) for t in cfg.interlingua.targets)
    if cfg.toy.get("source"):
      cfg.source.path = paths["targets"][cfg.toy.source]


def run(cfg: ml_collections.ConfigDict, workdir: str, modes: tuple[str, ...]) -> dict:
  if "toy" in cfg and "extractive" in cfg.toy:
    resolve_toy(cfg, workdir)
  runner.check_config(cfg, workdir, modes)
  needs_models = set(modes) - {"report", "compression"}
  s = setup(cfg) if needs_models else None
  out = {}
  if "train" in modes:
    out["train"] = train_stage(cfg, s, workdir)
  if "eval" in modes:
    out["eval"] = {name: agg["methods"].get("latent", {}).get("f1")
                   for name, agg in eval_stage(cfg, s, workdir)["targets"].items()}
  if "diagnostics" in modes:
    out["diagnostics"] = diagnostics.run(cfg, s, workdir)
  if "compression" in modes:
    logging.info("compression: the wire analysis is the translator's; skipped for bridge.kind=%s", cfg.bridge.kind)
  if "report" in modes and jax.process_index() == 0:
    out["report"] = report_stage(workdir)
  return out
