"""The train step and loop on tiny random Mistral → Llama models (conftest fixtures).

Checks the properties docs/DESIGN.md §3 says the first implementation broke: the frozen models
never change and carry no optimizer state, the loss flows through the frozen target, the
best checkpoint is a real copy, resuming reproduces an uninterrupted run, a sharded step
equals a single-device step, and a NaN stops the run without a NaN checkpoint.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dataclasses

from interlingua_jax.data import pipeline, splits
from interlingua_jax.models import embed
from interlingua_jax.models.frozen import source_states
from interlingua_jax.nn import losses
from interlingua_jax.run import config as config_lib, stages
from interlingua_jax.training import loop as loop_lib, optim
from interlingua_jax.training.checkpoints import Checkpoints, abstract_like
from interlingua_jax.training.state import TrainState, count_params, global_batch, init_state, merge_module
from tiny_system import fixed_batch, frozen, frozen_params, jax_step, lengths_and_rows, open_gates, system, tiny_config

@pytest.fixture(scope="module")
def data_paths(tmp_path_factory):
  from tiny_system import write_data
  return write_data(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def setup(tiny_mistral_dir, tiny_llama_dir, data_paths, tmp_path_factory):
  cfg = tiny_config(tiny_mistral_dir, tiny_llama_dir, data_paths)
  return system(cfg, tmp_path_factory.mktemp("work"))


def with_config(run, cfg):
  """The same system read with another config (what a test changes)."""
  return dataclasses.replace(run, cfg=cfg)


def test_frozen_models_never_change_and_have_no_optimizer_state(setup):
  run, kind, s = setup
  batch, lengths = fixed_batch(run, s, 4)
  state, step, _ = jax_step(run, kind, s)
  before = jax.tree.map(np.array, frozen_params(s))
  frozen_leaves = {id(x) for x in jax.tree.leaves(frozen_params(s))}
  for _ in range(3):
    state, metrics = step(state, frozen_params(s), global_batch(batch, s.mesh))
  after = jax.tree.map(np.array, frozen_params(s))
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(a, b)  # bit-identical
  # The optimizer state only mirrors translator parameters: its size is a multiple of theirs, never the LLMs'.
  n_translator = count_params(state.params)
  n_opt = count_params(state.opt_state)
  n_frozen = count_params(frozen_params(s))
  assert n_opt <= 2 * n_translator + 16 and n_opt < n_frozen
  assert not frozen_leaves & {id(x) for x in jax.tree.leaves(state)}
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))


@pytest.fixture(scope="module")
def sensitive_target_dir(tmp_path_factory, tiny_tokenizer):
  """A tiny random Llama with weights of std 0.5: the conftest one (std 0.1) barely reacts to its prefix,
  so no translator can move its loss far; with larger weights the prefix matters, as in a trained LM."""
  from conftest import save_tiny_hf_model
  path = tmp_path_factory.mktemp("sensitive_llama")
  save_tiny_hf_model(path, "llama", tiny_tokenizer, seed=1, initializer_range=0.5)
  return str(path)


def test_dropout_step_runs_and_advances_the_rng(setup):
  """The reference configs train with dropout 0.1: the dropout RNG must update inside the jitted step."""
  run, kind, s = setup
  cfg = run.cfg.copy_and_resolve_references()
  cfg.translator.dropout = 0.1
  run = with_config(run, cfg)
  batch, lengths = fixed_batch(run, s, 4)
  state, step, _ = jax_step(run, kind, s)
  rng_before = jax.tree.map(np.array, state.rngs)
  batch = global_batch(batch, s.mesh)
  state, first = step(state, frozen_params(s), batch)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(rng_before), jax.tree.leaves(state.rngs)))
  assert np.isfinite(float(first["loss"]))


def test_fifty_steps_on_a_fixed_batch_halve_the_loss(tiny_mistral_dir, sensitive_target_dir, data_paths, tmp_path):
  """The gradient reaches the translator through the frozen target (docs/DESIGN.md §3.7)."""
  cfg = tiny_config(tiny_mistral_dir, sensitive_target_dir, data_paths)
  cfg.train.steps, cfg.optim.warmup_steps, cfg.loss.infonce_weight = 50, 5, 0.0
  cfg.translator.dropout, cfg.translator.num_soft_tokens, cfg.optim.learning_rate = 0.0, 8, 1e-2
  run, kind, s = system(cfg, tmp_path)
  batch, lengths = fixed_batch(run, s, 4)
  state, step, _ = jax_step(run, kind, s)
  batch = global_batch(batch, s.mesh)
  losses = []
  for _ in range(50):
    state, metrics = step(state, frozen_params(s), batch)
    losses.append(float(metrics["loss"]))
  assert losses[-1] <= 0.5 * losses[0], losses[::10]


def test_sharded_step_equals_single_device_step(setup, tiny_mistral_dir, tiny_llama_dir, data_paths, tmp_path):
  run1, kind, s1 = setup
  cfg4 = tiny_config(tiny_mistral_dir, tiny_llama_dir, data_paths)
  cfg4.mesh.data, cfg4.mesh.model = 2, 2
  run4, _, s4 = system(cfg4, tmp_path)
  assert s4.mesh.devices.size == 4
  batch, lengths = fixed_batch(run1, s1, 4)
  results = []
  for run, s in ((run1, s1), (run4, s4)):
    state, step, _ = jax_step(run, kind, s)
    state, metrics = step(state, frozen_params(s), global_batch(batch, s.mesh))
    results.append((jax.tree.map(np.asarray, state.params), float(metrics["loss"])))
  (p1, l1), (p4, l4) = results
  assert l1 == pytest.approx(l4, rel=1e-5)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p4)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_nan_loss_stops_without_saving(setup, tmp_path):
  _, _, s = setup
  checkpoints = Checkpoints(str(tmp_path), keep=2)
  state = TrainState(jnp.zeros((), jnp.int32), {"w": jnp.ones(3)}, {}, ())

  def nan_step(state, frozen_params, batch):
    return TrainState(state.step + 1, {"w": state.params["w"] * np.nan}, {}, ()), {"loss": jnp.nan}

  data = iter(pipeline.train_dataset([{"x": np.zeros(2, np.int32)}] * 4, parts={}, global_batch_size=2, seed=0))
  loop = loop_lib.Loop(step_fn=nan_step, frozen_params=None, data_iter=data, mesh=s.mesh, evaluate=lambda st: 0.0,
                       checkpoints=checkpoints, metrics=loop_lib.MetricsLog(str(tmp_path)),
                       stopper=loop_lib.EarlyStopping(5, True))
  settings = loop_lib.LoopSettings(total_steps=4, log_every=1, eval_every=100, global_batch_size=2, progress=False)
  with pytest.raises(FloatingPointError, match="non-finite"):
    loop_lib.fit(state, loop, settings)
  checkpoints.wait()
  assert checkpoints.latest.all_steps() == [0]  # only the finite initial evaluation was saved


def test_best_checkpoint_is_a_real_copy(setup, tmp_path, monkeypatch):
  """When bridged accuracy peaks then falls, the best checkpoint restores the peak weights (docs/DESIGN.md §3.8)."""
  run, kind, s = setup
  cfg = run.cfg.copy_and_resolve_references()
  # Evaluations at steps 0, 2, 4, 6: the peak at step 2, then two without a new best: patience 2 stops at
  # step 6 of 8.
  cfg.train.steps, cfg.train.eval_every, cfg.train.early_stopping, cfg.train.patience = 8, 2, True, 2
  run = dataclasses.replace(run, cfg=cfg, workdir=str(tmp_path))
  scripted = iter([0.1, 0.9, 0.2, 0.1])
  snapshots, evaluated = {}, set()

  def fake_score(contexts, examples, step):
    snapshots[len(snapshots) * 2] = jax.tree.map(np.array, contexts[None].soft_source.module[1])
    evaluated.update(e.id for e in examples)
    return next(scripted), {"step": step}

  monkeypatch.setattr(stages, "validation_pass", fake_score)
  summary = stages.train_stage(run, kind, s)
  assert summary["best_step"] == 2 and summary["final_step"] == 6 and summary["stopped_early"]
  # Every decision of training (best checkpoint, early stopping) saw validation questions only.
  assert evaluated == {e.id for e in s.validation}
  assert not evaluated & ({e.id for e in s.test} | {e.id for e in s.train} | {e.id for e in s.builders[None].exemplars})
  assert summary["splits"]["validation"]["size"] == cfg.train.eval_num_samples
  _, params, _ = stages.restore(run, kind, s, "best")
  for a, b in zip(jax.tree.leaves(snapshots[2]), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, np.asarray(b))
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(snapshots[6]), jax.tree.leaves(params)))
  _, final, _ = stages.restore(run, kind, s, "final")
  for a, b in zip(jax.tree.leaves(snapshots[6]), jax.tree.leaves(final)):
    np.testing.assert_array_equal(a, np.asarray(b))


def test_without_early_stopping_the_test_split_reads_the_final_checkpoint(setup, tmp_path, monkeypatch):
  """The no-fixes arm must be able to show a collapse: it keeps no best-checkpoint selection. Both checkpoints are
  reported (latent_at_best beside latent), on a seeded subset of the test split, not its first rows."""
  run, kind, s = setup
  cfg = run.cfg.copy_and_resolve_references()
  cfg.train.steps, cfg.train.eval_every, cfg.train.early_stopping = 6, 2, False
  cfg.eval.methods, cfg.eval.num_samples, cfg.eval.latency_batch_sizes = ("latent",), 3, (1,)
  run = dataclasses.replace(run, cfg=cfg, workdir=str(tmp_path))
  scripted = iter([0.1, 0.9, 0.2, 0.1])  # the best at step 2, the final at step 6
  snapshots = {}

  def fake_score(contexts, examples, step):
    snapshots[len(snapshots) * 2] = jax.tree.map(np.array, contexts[None].soft_source.module[1])
    return next(scripted), {"step": step}

  monkeypatch.setattr(stages, "validation_pass", fake_score)
  summary = stages.train_stage(run, kind, s)
  assert (summary["best_step"], summary["final_step"], summary["stopped_early"]) == (2, 6, False)
  read = {}
  real = stages.run_methods

  def spy(ctx, names, *args, **kwargs):
    read[tuple(names)] = jax.tree.map(np.array, ctx.soft_source.module[1])
    return real(ctx, names, *args, **kwargs)

  monkeypatch.setattr(stages, "run_methods", spy)
  agg = stages.eval_stage(run, kind, s)
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert same(read[("latent",)], snapshots[6]) and not same(read[("latent",)], snapshots[2])
  assert same(read[("latent_at_best",)], snapshots[2])
  assert agg["checkpoint"] == {"evaluated": "final", "best_step": 2, "final_step": 6}
  assert {"latent", "latent_at_best"} <= agg["methods"].keys() and "latent_vs_latent_at_best" in agg["comparisons"]
  assert "ci95_cluster" in agg["methods"]["latent"] and "ci95_cluster" in agg["comparisons"]["latent_vs_latent_at_best"]
  evaluated = agg["split"]["evaluated"]
  assert evaluated["ids"] == [e.id for e in splits.evaluation_subset(s.test, 3, cfg.eval.subset_seed)[0]]
  assert evaluated["ids"] != [e.id for e in s.test[:3]] and evaluated["size"] == 3


def test_resume_reproduces_an_uninterrupted_run(setup, tmp_path, monkeypatch, crash_at_step):
  run, kind, s = setup
  cfg = run.cfg.copy_and_resolve_references()
  cfg.train.steps, cfg.train.eval_every = 6, 3
  at = lambda name: dataclasses.replace(run, cfg=cfg, workdir=str(tmp_path / name))
  monkeypatch.setattr(stages, "validation_pass", lambda contexts, ex, step: (0.5, {"step": step}))
  stages.train_stage(at("straight"), kind, s)
  with crash_at_step(3):
    stages.train_stage(at("resumed"), kind, s)
  stages.train_stage(at("resumed"), kind, s)

  finals = []
  for name in ("straight", "resumed"):
    manager = Checkpoints(str(tmp_path / name), keep=2).latest
    assert manager.latest_step() == 6
    finals.append(manager)
  tx, _ = optim.from_config(cfg.optim, cfg.train.steps)
  _, template = init_state(kind.new_module(run, s), tx, s.mesh)
  a, b = (Checkpoints.restore(m, abstract_like(template))[0] for m in finals)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_workdir_of_another_config_is_refused(setup, tmp_path):
  run, kind, _ = setup
  workdir = str(tmp_path)
  check = lambda cfg: config_lib.check_config(config_lib.record(cfg, run.paths, kind), workdir, kind)
  check(run.cfg)
  os.makedirs(os.path.join(workdir, "checkpoints"))
  other = run.cfg.copy_and_resolve_references()
  other.translator.depth = 3
  with pytest.raises(ValueError, match="translator.depth"):
    check(other)
  fine = run.cfg.copy_and_resolve_references()
  fine.eval.num_samples = 3  # evaluation settings may change
  check(fine)


def test_profiler_trace_for_the_requested_steps(setup, tmp_path, monkeypatch):
  run, kind, s = setup
  cfg = run.cfg.copy_and_resolve_references()
  cfg.train.steps, cfg.train.eval_every = 4, 100
  cfg.profile.start_step, cfg.profile.num_steps = 1, 2
  monkeypatch.setattr(stages, "validation_pass", lambda contexts, ex, step: (0.5, {"step": step}))
  stages.train_stage(dataclasses.replace(run, cfg=cfg, workdir=str(tmp_path)), kind, s)
  traces = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "profile") for f in files
            if f.endswith(".xplane.pb")]
  assert traces and os.path.getsize(traces[0]) > 0


def test_infonce_positives_are_each_samples_own_question(setup):
  """Through the real pipeline (encode_example → translator_loss): row i's positive is example i's question, and
  the InfoNCE term is the one of those per-sample positives, not of any other pairing."""
  run, kind, s = setup
  cfg, f = run.cfg, frozen(run, kind, s)
  examples = s.train[:4]
  lengths, rows = lengths_and_rows(run, s, examples)
  batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
  tok = f.target_tokenizer
  for row, mask, e in zip(batch["question_ids"], batch["question_mask"], examples):
    assert tok.decode(row[mask == 1]) == e.question
  # A fresh translator's gates are closed (its soft tokens ignore the source), so every row would share one
  # anchor and every pairing would score alike: open them.
  translator = kind.new_module(run, s)
  open_gates(translator, 0.5)
  t = stages.training_step(run, kind, s, translator)

  @jax.jit  # one compilation for both batches (eager calls would compile every scan again)
  def infonce_of(b):
    module = merge_module(t.graphdef, t.state.params, t.state.rngs)
    return t.training.loss(module, frozen_params(s), b, t.state.step)[1]["infonce"]

  infonce = lambda b: float(infonce_of(b))
  hidden = source_states(f.source.params, f.source.config, batch["source_ids"], batch["source_mask"],
                         f.source_layer)
  soft = translator(hidden, batch["source_mask"], deterministic=True)  # the tiny config has no dropout
  embedded = embed(f.target.params, f.target.config, batch["question_ids"])
  expected = losses.info_nce(losses.mean_pool(soft), losses.mean_pool(embedded, batch["question_mask"]),
                             cfg.loss.temperature)
  assert infonce(batch) == pytest.approx(float(expected), abs=1e-6)
  # The pairing matters (the tiny questions differ in two numbers only, hence the small but clear gap).
  rolled = dict(batch, question_ids=np.roll(batch["question_ids"], 1, 0),
                question_mask=np.roll(batch["question_mask"], 1, 0))
  assert abs(infonce(rolled) - float(expected)) > 2e-5


def test_early_stopping_counts_evaluations_without_a_new_best():
  stopper = loop_lib.EarlyStopping(patience=2, enabled=True)
  assert stopper.update(0, 0.5) == (True, False)
  assert stopper.update(10, 0.4) == (False, False)
  assert stopper.update(20, 0.5) == (False, True)  # a tie is no improvement: patience reached
  assert (stopper.best_step, stopper.best_accuracy) == (0, 0.5)
  assert stopper.update(30, 0.6) == (True, False) and stopper.since_best == 0
  disabled = loop_lib.EarlyStopping(patience=1, enabled=False)
  assert [disabled.update(i, 0.1)[1] for i in range(4)] == [False] * 4
