"""The shared interlingua wired as a bridge kind: config checks, one Z trained for a tiny Llama and a tiny Qwen
(different tokenizers) through `train.fit`, exact resume, per-target evaluation, diagnostics, a new kind."""
import dataclasses
import importlib
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from interlingua_jax import bridges, models
from interlingua_jax.analysis import cli as analysis_cli, report
from interlingua_jax.bridges.interlingua import batches, diagnostics
from interlingua_jax.bridges.interlingua import kind as interlingua_kind
from interlingua_jax.bridges.interlingua.states_encoder import StatesEncoder
from interlingua_jax.core import errors
from interlingua_jax.data import pipeline, splits
from interlingua_jax.run import config as config_lib, stages, validate
from interlingua_jax.run.setup import resolve_paths
from interlingua_jax.training import optim
from interlingua_jax.training.checkpoints import Checkpoints, abstract_like
from interlingua_jax.training.state import init_state, merge_module
from tiny_system import system as make_system, write_splits

COLOURS = ["red", "blue", "green", "black", "white", "brown"]
NAMES = ["Ann", "Tom", "Sue", "Bob", "Eve", "Max", "Kim", "Lee"]


def write_qa(root) -> tuple[str, str]:
  """HotpotQA-format records: a context paragraph and a question whose answer is a span of it."""
  rows = []
  for i, (name, colour) in enumerate((n, c) for n in NAMES for c in COLOURS):
    context = {"title": [name], "sentences": [[f"{name} has a {colour} hat.", f" The hat of {name} is new."]]}
    rows.append({"id": f"q{i}", "question": f"What colour is the hat of {name}?", "answer": colour,
                 "context": context})
  return write_splits(root, rows, num_train=40)


def no_bos_tokenizer():
  """Another vocabulary without BOS, as Qwen's: each target gets its own row layout."""
  from conftest import build_tiny_tokenizer
  from transformers import PreTrainedTokenizerFast
  tok = build_tiny_tokenizer(vocab_size=320)
  return PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token="</s>", pad_token="<pad>")


@pytest.fixture(scope="module")
def tiny_qwen_dir(tmp_path_factory):
  from conftest import save_tiny_hf_model
  path = tmp_path_factory.mktemp("tiny_qwen")
  tok = no_bos_tokenizer()
  tok.backend_tokenizer.post_processor = None
  save_tiny_hf_model(path, "qwen2", tok, seed=2, vocab_size=384, bos_token_id=None)
  return str(path)


def interlingua_config(llama_dir, qwen_dir, data_paths):
  from configs import interlingua_reduced
  c = interlingua_reduced.get_config()
  c.interlingua.targets = (dict(name="llama", path=llama_dir, dtype="float32", tokenizer=""),
                           dict(name="qwen", path=qwen_dir, dtype="float32", tokenizer=""))
  c.data.dataset = "hotpotqa"
  c.data.train_path, c.data.test_path = data_paths
  return c


@pytest.fixture(scope="module")
def system(tiny_llama_dir, tiny_qwen_dir, tmp_path_factory):
  cfg = interlingua_config(tiny_llama_dir, tiny_qwen_dir, write_qa(str(tmp_path_factory.mktemp("qa"))))
  return make_system(cfg, tmp_path_factory.mktemp("work"))


def targets(s) -> dict:
  """The loaded targets of an interlingua setup (every model but a states encoder's source)."""
  return {name: m for name, m in s.models.items() if name != "source"}


def at(run, workdir, cfg=None):
  return dataclasses.replace(run, workdir=str(workdir), cfg=cfg or run.cfg)


@pytest.mark.parametrize("key, value, message", [
    ("bridge.kind", "bridge", "bridge.kind='bridge' must be one of translator, interlingua"),
    ("interlingua.latent_dim", 30, "interlingua.latent_dim=30 must be even and divisible by interlingua.num_heads"),
    ("interlingua.encoder", "tokens", "interlingua.encoder='tokens' must be one of"),
    ("interlingua.targets", (), "must be a non-empty list"),
    ("interlingua.targets", (dict(name="a", path="p", dtype="float8", tokenizer=""),),
     r"interlingua.targets\[0\].dtype='float8' must be one of"),
    ("interlingua.targets", (dict(name="a", path="p", dtype="float32"),), "must have exactly the fields"),
    ("interlingua.targets", (dict(name="a", path="p", dtype="float32", tokenizer=""),) * 2,
     r"targets\[1\].name='a' must be unique"),
])
def test_each_bad_interlingua_key_is_one_clear_error(key, value, message):
  from configs import interlingua_reduced
  cfg = interlingua_reduced.get_config()
  cfg.interlingua.targets = (dict(name="a", path="p", dtype="float32", tokenizer=""),)
  validate.check(cfg)
  with cfg.unlocked():
    cfg.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=message):
    validate.check(cfg)


@pytest.fixture(scope="module")
def one_step_program():
  """Every run of this module's config gets the first run's jitted step: the same program (same config,
  graphdef and optimizer), compiled once instead of once per run (~10 s each on this machine)."""
  real, cache = stages.make_train_step, {}
  program = lambda kwargs: (kwargs["graphdef"], str(jax.tree.structure(kwargs["frozen_shardings"])))

  def make(**kwargs):
    if "step" not in cache:
      cache["step"], cache["program"] = real(**kwargs), program(kwargs)
    return cache["step"] if cache["program"] == program(kwargs) else real(**kwargs)
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(stages, "make_train_step", make)
    yield cache


@pytest.fixture(scope="module")
def trained(system, one_step_program, tmp_path_factory):
  run, kind, s = system
  workdir = tmp_path_factory.mktemp("suite") / "interlingua_a"  # a suite root holding one run, for the analysis
  workdir.mkdir()
  config_lib.check_config(config_lib.record(run.cfg, run.paths, kind), str(workdir), kind)  # as the pipeline does
  return str(workdir), stages.train_stage(at(run, workdir), kind, s)


def test_two_targets_of_two_families_train_one_z_and_resume_exactly(system, trained, one_step_program, tmp_path,
                                                                   monkeypatch):
  run, kind, s = system
  cfg = run.cfg
  assert [t.lm.config.model_type for t in targets(s).values()] == ["llama", "qwen2"]
  assert s.models["qwen"].tokenizer.bos_token_id is None and s.models["llama"].tokenizer.bos_token_id == 1
  straight, summary = trained
  assert summary["final_step"] == cfg.train.steps
  step = one_step_program["step"]

  def crash_at_first_checkpoint(state, frozen, batch):
    if int(state.step) == cfg.train.eval_every:
      raise KeyboardInterrupt("simulated crash after the first checkpoint")
    return step(state, frozen, batch)

  monkeypatch.setitem(one_step_program, "step", crash_at_first_checkpoint)
  with pytest.raises(KeyboardInterrupt):
    stages.train_stage(at(run, tmp_path), kind, s)
  monkeypatch.setitem(one_step_program, "step", step)
  stages.train_stage(at(run, tmp_path), kind, s)
  tx, _ = optim.from_config(cfg.optim, cfg.train.steps)
  _, template = init_state(kind.new_module(run, s), tx, s.mesh)
  finals = [Checkpoints.restore(Checkpoints(w, keep=2).latest, abstract_like(template))[0]
            for w in (straight, str(tmp_path))]
  assert int(finals[0].step) == int(finals[1].step) == cfg.train.steps
  for x, y in zip(jax.tree.leaves(finals[0].params), jax.tree.leaves(finals[1].params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
  assert any(not np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(template.params), jax.tree.leaves(finals[0].params)))
  rows = [json.loads(line) for line in open(os.path.join(straight, "metrics.jsonl"))]
  trained_rows = [r for r in rows if "loss" in r]
  assert {"llama/first_token_accuracy", "qwen/first_token_accuracy", "llama/k_tokens", "qwen/loss"} <= \
      trained_rows[0].keys()
  last = trained_rows[-1]
  assert last["loss"] == pytest.approx(last["llama/loss"] + last["qwen/loss"], rel=1e-5)
  alarms = [r for r in rows if "validation/qwen/identical_share" in r]
  assert [r["step"] for r in alarms] == list(range(0, cfg.train.steps + 1, cfg.train.eval_every))
  assert all(isinstance(r["validation/llama/top_first_token"], str) for r in alarms)


def test_every_method_on_the_same_questions_for_each_target_and_diagnostics(system, trained):
  run, kind, s = system
  cfg = run.cfg
  workdir, _ = trained
  agg = stages.eval_stage(at(run, workdir), kind, s)
  assert list(agg["targets"]) == ["llama", "qwen"]
  for name, table in agg["targets"].items():
    records = [json.loads(line) for line in open(os.path.join(workdir, "eval", name, "samples.jsonl"))]
    assert {r["target"] for r in records} == {name}
    assert {r["method"] for r in records} == set(cfg.eval.methods) | {f"latent_at_{stages.other_checkpoint(cfg)}"}
    ids = {m: sorted(r["id"] for r in records if r["method"] == m) for m in cfg.eval.methods}
    assert all(v == ids["latent"] for v in ids.values()) and len(ids["latent"]) == cfg.eval.num_samples
    assert table["methods"]["latent"]["n"] == cfg.eval.num_samples and "f1" in table["methods"]["latent"]
    f1 = table["f1_comparisons"]["latent_vs_token_budget_text"]
    lat = np.mean([r["f1"] for r in records if r["method"] == "latent"])
    budget = np.mean([r["f1"] for r in records if r["method"] == "token_budget_text"])
    assert f1["diff"] == pytest.approx(lat - budget) and f1["ci95"][0] <= f1["diff"] <= f1["ci95"][1]
    # HotpotQA questions are their own clusters (each has its own paragraphs): the records say so.
    assert all(r["cluster"] == r["id"] for r in records)
    assert table["num_clusters"] == len({r["cluster"] for r in records if r["method"] == "latent"})
    assert f1["ci95_cluster"][0] <= f1["diff"] <= f1["ci95_cluster"][1]
    assert "f1_ci95_cluster" in table["methods"]["latent"]
    assert 0 < table["pca"]["explained_variance"] <= 1 and "latent_vs_pca" in table["f1_comparisons"]
  assert "| token_budget_text |" in open(report.write(workdir)).read()
  analysis = analysis_cli.analyze(Path(workdir).parent)
  assert {"target_sweep.tex", "target_sweep.pdf", "target_sweep.png"} <= set(analysis["files"])
  tex = (Path(workdir).parent / "analysis" / "target_sweep.tex").read_text()
  assert "interlingua\\_a" in tex and f"{100 * agg['targets']['qwen']['methods']['latent']['f1']:.1f}" in tex
  result = diagnostics.diagnose(at(run, workdir), s, kind.contexts(run, s, stages.restore(at(run, workdir), kind, s,
                                                                                     "best")))
  out = os.path.join(workdir, "diagnostics")
  for stem in ("rms", "nearest_vocabulary", "first_token_accuracy"):
    assert os.path.getsize(os.path.join(out, f"{stem}.pdf")) and os.path.getsize(os.path.join(out, f"{stem}.png"))
  for name in ("llama", "qwen"):
    r = result[name]
    table = np.asarray(s.models[name].lm.params["embed"], np.float64)
    assert r["table_rms"] == pytest.approx(np.sqrt(np.mean(table ** 2)), rel=1e-5)
    assert -1 <= r["nearest_cos_median"] <= 1 and len(r["nearest_tokens"]) >= 1
    assert set(r["latent"]) == {"as_trained", "rms_rescaled", "batch_normalized"}
    assert r["first_token_accuracy_last"] is not None
  with open(os.path.join(out, "diagnostics.json")) as f:
    saved = json.load(f)
  examples = splits.evaluation_subset(s.test, cfg.eval.num_samples, cfg.eval.subset_seed)[0]
  text_bytes = np.mean([len(batches.reading_text(e).encode()) for e in examples])
  z16 = cfg.interlingua.num_soft_tokens * cfg.interlingua.latent_dim * 2
  assert saved["compression"]["text_bytes_mean"] == pytest.approx(text_bytes)
  assert saved["compression"]["ratio_float16"] == pytest.approx(text_bytes / z16)
  # Batch normalisation maps the soft tokens' per-dimension statistics onto the text embeddings'.
  rng = np.random.default_rng(0)
  soft, text = 50 * rng.normal(3.0, 2.0, (64, 8)), rng.normal(0.1, 0.02, (200, 8))
  normed = diagnostics.batch_normalized(soft.mean(0), soft.std(0), text.mean(0), text.std(0))(soft)
  np.testing.assert_allclose(normed.mean(0), text.mean(0), atol=1e-9)
  np.testing.assert_allclose(normed.std(0), text.std(0), rtol=1e-9)


def test_the_states_encoder_reads_the_frozen_source_and_trains_evaluates_one_z(system, tiny_mistral_dir, tmp_path):
  """interlingua.encoder = "states": the frozen source LM's hidden states (the translator's source path) feed the
  pooler; two train steps move only the trainable parts, and latent evaluation reads the same states."""
  base, kind, _ = system
  cfg = base.cfg.copy_and_resolve_references()
  cfg.interlingua.encoder, cfg.source.path, cfg.source.dtype, cfg.source.layer = "states", tiny_mistral_dir, "float32", 1
  cfg.train.steps, cfg.train.eval_every, cfg.eval.num_samples, cfg.eval.methods = 2, 2, 4, ("latent",)
  run, kind, states = make_system(cfg, tmp_path)
  source_lm = states.models["source"]
  assert interlingua_kind.frozen_source(run, states)[0].layer == 1 and source_lm.lm.config.model_type == "mistral"
  reader = interlingua_kind.reader(run, states)
  example = states.test[0]
  ids = reader.ids(example)
  assert ids == source_lm.tokenizer(batches.reading_text(example))["input_ids"][:cfg.data.max_source_len]
  module = kind.new_module(run, states)
  assert isinstance(module.encoder, StatesEncoder)
  assert module.encoder.source_dim == source_lm.lm.config.hidden_size
  summary = stages.train_stage(run, kind, states)
  assert summary["final_step"] == 2
  graphdef, params, rest = stages.restore(run, kind, states, stages.evaluated_checkpoint(cfg))
  source = kind.contexts(run, states, (graphdef, params, rest))["qwen"].soft_source
  soft = np.asarray(source.soft([ids]))
  hidden = models.forward(source_lm.lm.params, source_lm.lm.config, input_ids=np.asarray([ids]),
                          upto_layer=1, output_hidden_states=False).hidden_states[-1]
  trained_module = merge_module(graphdef, params, rest)
  expected = trained_module(hidden, np.ones((1, len(ids)), np.int32))["qwen"]
  np.testing.assert_allclose(soft, np.asarray(expected), rtol=1e-4, atol=1e-5)  # padding changes nothing
  agg = stages.eval_stage(run, kind, states)
  assert agg["targets"]["llama"]["methods"]["latent"]["n"] == 4


def test_training_batches_cut_the_encoders_input_to_its_bucket_and_the_loss_ignores_the_cut(system):
  """Rows padded to the pool's longest are cut per batch to the bucket of the batch's longest (pad columns only),
  and the loss is the same at either width: the cut saves the encoder's work and never changes the step."""
  run, kind, s = system
  cfg = run.cfg
  c, tokenizers = cfg.interlingua, {name: t.tokenizer for name, t in targets(s).items()}
  spec = batches.row_spec(s.train, tokenizers, num_soft_tokens=c.num_soft_tokens, k_tokens=c.k_tokens,
                          anchor=cfg.data.answer_anchor, reader=interlingua_kind.reader(run, s))
  assert spec.width < c.max_bytes
  wide = dataclasses.replace(spec, width=c.max_bytes)  # as if the pool held a text of max_bytes
  encoded = [batches.encode_example(e, tokenizers, wide) for e in s.train]
  buckets = (spec.width, c.max_bytes)
  batch_of = lambda b: next(iter(pipeline.train_dataset(encoded, global_batch_size=8, seed=0, length_buckets=b,
                                                        parts=batches.PARTS)))
  full, cut = batch_of(()), batch_of(buckets)
  width = cut[batches.ENCODER_IDS].shape[1]
  assert full[batches.ENCODER_IDS].shape[1] == c.max_bytes
  assert width == pipeline.bucket(int(full[batches.ENCODER_MASK].sum(1).max()), buckets) == spec.width
  assert pipeline.compiled_shapes(encoded, buckets, batches.PARTS)["encoder"] == [width]
  for key in (batches.ENCODER_IDS, batches.ENCODER_MASK):
    np.testing.assert_array_equal(cut[key], full[key][:, :width])
  assert not full[batches.ENCODER_MASK][:, width:].any()
  tx, _ = optim.from_config(cfg.optim, cfg.train.steps)
  graphdef, state = init_state(kind.new_module(run, s), tx, s.mesh)
  training = kind.training(run, s)
  loss = lambda batch: training.loss(merge_module(graphdef, state.params, state.rngs), training.frozen_params, batch,
                                     state.step)[0]
  assert float(loss(cut)) == pytest.approx(float(loss(full)), rel=1e-6)


class MeanPool(nnx.Module):
  """The simplest latent kind: mean of byte embeddings, one linear map per target, M copies."""

  def __init__(self, target_dims: dict[str, int], num_soft_tokens: int, rngs: nnx.Rngs):
    self.num_soft_tokens = num_soft_tokens
    self.embed = nnx.Embed(257, 16, rngs=rngs)
    self.heads = nnx.Dict({n: nnx.Linear(16, d, rngs=rngs) for n, d in target_dims.items()})

  def __call__(self, ids, mask):
    pooled = (self.embed(ids) * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return {n: jax.numpy.repeat(head(pooled)[:, None], self.num_soft_tokens, axis=1) for n, head in self.heads.items()}


class MeanPoolKind(interlingua_kind.InterlinguaKind):
  """A new kind: the interlingua's data, loss and evaluation, with another module."""
  name = "mean_pool"

  def new_module(self, run, setup):
    dims = {name: t.lm.config.hidden_size for name, t in targets(setup).items()}
    return MeanPool(dims, run.cfg.interlingua.num_soft_tokens, nnx.Rngs(run.cfg.seed))


def test_a_new_bridge_kind_is_one_registered_object(system, tmp_path):
  """docs/DESIGN.md §5, "How to add a bridge kind", done once: register, name it in the config, train."""
  run, _, s = system
  kind = bridges.register(MeanPoolKind())
  try:
    cfg = run.cfg.copy_and_resolve_references()
    cfg.bridge.kind, cfg.train.steps, cfg.train.eval_every = "mean_pool", 2, 2
    validate.check(cfg)
    one = dataclasses.replace(s, models={"llama": s.models["llama"]}, builders={"llama": s.builders["llama"]})
    summary = stages.train_stage(at(run, tmp_path, cfg), kind, one)
    assert summary["final_step"] == 2
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2] and "qwen/loss" not in rows[-1]
    assert set(Checkpoints(str(tmp_path), keep=1).latest.all_steps()) >= {2}
    assert isinstance(stages.restore(at(run, tmp_path, cfg), kind, one, "final")[0], nnx.GraphDef)
  finally:
    del bridges.REGISTRY["mean_pool"]


def test_latent_methods_are_refused_for_the_translator():
  from configs import tiny
  cfg = tiny.get_config()
  cfg.eval.methods = ("latent", "pca")
  with pytest.raises(errors.ConfigError, match=r"holds \['pca'\], methods of bridge.kind='interlingua' only"):
    validate.check(cfg)


def test_sweep_suite_is_the_24_point_grid_three_calibrated_arms_and_its_reduced_form_two_corners():
  import itertools

  from configs.suites import interlingua_sweep
  from interlingua_jax import ablations
  full = ablations.parse_suite(interlingua_sweep.get_config())
  grid = [e for e in full if "interlingua.calibrate_rms" not in e.overrides]
  calibrated = [e for e in full if e.overrides.get("interlingua.calibrate_rms") is True]
  points = {tuple(e.overrides[k] for k in interlingua_sweep.GRID) for e in grid}
  assert len(grid) == 24 and points == set(itertools.product((32, 48, 64), (256, 512), (0.5, 1.0), (4, 8)))
  assert sorted(e.overrides["interlingua.num_soft_tokens"] for e in calibrated) == [32, 48, 64] and len(full) == 27
  assert {e.config.name for e in full} == {"interlingua_squad_32.py"} and len({e.name for e in full}) == 27
  reduced = ablations.parse_suite(interlingua_sweep.get_config("reduced"))
  corners = [tuple(e.overrides[k] for k in interlingua_sweep.GRID) for e in reduced]
  assert all(a != b for a, b in zip(*corners))  # every axis takes both of its values
  with pytest.raises(ValueError, match="interlingua_sweep.py:reduced"):
    interlingua_sweep.get_config("full")


def test_a_run_saved_before_bridge_kinds_existed_still_matches_its_config(tmp_path):
  from configs import tiny
  cfg = tiny.get_config()
  kind = bridges.get("translator")
  check = lambda cfg, kind, **kw: config_lib.check_config(
      config_lib.record(cfg, resolve_paths(cfg, str(tmp_path), kind), kind), str(tmp_path), kind, **kw)
  check(cfg, kind)
  path = tmp_path / "config.json"
  saved = json.loads(path.read_text())
  del saved["bridge"], saved["interlingua"]
  path.write_text(json.dumps(saved))
  (tmp_path / "checkpoints").mkdir()
  check(cfg, kind, modes=("eval",))
  cfg.bridge.kind = "interlingua"
  with pytest.raises(errors.ConfigError, match="bridge.kind: 'translator' -> 'interlingua'"):
    check(cfg, bridges.get("interlingua"), modes=("eval",))


def test_the_reduced_sweep_runs_end_to_end_and_the_analysis_tables_it(tmp_path):
  """configs/suites/interlingua_sweep.py:reduced through the real suite runner and main (its first corner only:
  each run is a fresh process that builds the reduced toy world and compiles everything), then the analysis."""
  import subprocess
  import sys

  from configs.suites import interlingua_sweep
  from interlingua_jax import ablations
  repo = Path(__file__).resolve().parents[1]
  names = [e.name for e in ablations.parse_suite(interlingua_sweep.get_config("reduced"))][:1]
  env = dict(os.environ, PYTHONPATH=str(repo), JAX_PLATFORMS="cpu")
  run = subprocess.run([sys.executable, "-m", "interlingua_jax.ablations",
                        "--suite=configs/suites/interlingua_sweep.py:reduced", f"--root={tmp_path}",
                        f"--only={names[0]}"],
                       cwd=repo, env=env, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  (root,) = [p for p in tmp_path.iterdir() if p.is_dir()]
  for name in names:
    assert (root / name / "DONE").exists() and (root / name / "report.md").exists(), name
  report = analysis_cli.analyze(root)  # only the runs that ran: suite.json lists the selected ones
  problems = {r["name"]: r["problems"] for r in report["runs"]}
  assert problems[names[0]] == []  # a per-target aggregate and no wire analysis: a complete latent-kind run
  assert {"target_sweep.tex", "target_sweep.pdf", "target_sweep.png"} <= set(report["files"])
  tex = (root / "analysis" / "target_sweep.tex").read_text()
  assert all(ablations_name.replace("_", "\\_") in tex for ablations_name in names)


def test_the_rehearsal_suite_is_both_encoders_at_both_lengths_and_three_seeds_on_one_shared_toy_world():
  from configs.suites import interlingua_rehearsal
  from interlingua_jax import ablations
  runs = ablations.parse_suite(interlingua_rehearsal.get_config())
  steps = lambda e: e.overrides.get("train.steps", importlib.import_module(f"configs.{e.config.stem}").get_config()
                                    .train.steps)
  expected = [(f"{encoder}_{n}_s{seed}", config, seed, n) for encoder, config in (
      ("bytes", "interlingua_toy.py"), ("states", "interlingua_toy_states.py")) for n in (1500, 6000)
      for seed in (0, 1, 2)]
  assert sorted((e.name, e.config.name, e.seed, steps(e)) for e in runs) == expected
  assert all(e.overrides["toy.cache_dir"] == "{root}/toy_models" for e in runs)


def test_a_run_saved_before_m_had_one_name_still_loads_and_matches(tmp_path):
  """interlingua.num_latents is interlingua.num_soft_tokens now: a saved config.json with the old key is read under
  the new one (`--mode=eval` without --config) and compares equal to the config that trained it."""
  from configs import interlingua_reduced
  cfg = interlingua_reduced.get_config()
  cfg.interlingua.targets = (dict(name="a", path="p", dtype="float32", tokenizer=""),)
  kind = bridges.get("interlingua")
  check = lambda c, **kw: config_lib.check_config(config_lib.record(c, resolve_paths(c, str(tmp_path), kind), kind),
                                                  str(tmp_path), kind, **kw)
  check(cfg)
  saved = json.loads((tmp_path / "config.json").read_text())
  saved["interlingua"]["num_latents"] = saved["interlingua"].pop("num_soft_tokens")
  (tmp_path / "config.json").write_text(json.dumps(saved))
  (tmp_path / "checkpoints").mkdir()
  check(cfg, modes=("eval",))
  loaded = config_lib.from_json(saved)
  assert loaded.interlingua.num_soft_tokens == cfg.interlingua.num_soft_tokens and "num_latents" not in loaded.interlingua
  other = cfg.copy_and_resolve_references()
  other.interlingua.num_soft_tokens += 1
  with pytest.raises(errors.ConfigError, match="interlingua.num_soft_tokens"):
    check(other, modes=("eval",))
