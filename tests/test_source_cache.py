"""The frozen source's cached states (source_cache.py) on the tiny random Mistral -> Llama pair: training from
them gives the losses of training through the source forward, a rerun or resume reuses them, any change of the
key builds a new cache, and a damaged or partial cache is never read."""
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from interlingua_jax.bridges.translator import rows as translator_rows, source_cache
from interlingua_jax.models.frozen import resolve_layer
from interlingua_jax.run import experiment, stages
from interlingua_jax.training.checkpoints import Checkpoints, abstract_like
from interlingua_jax.training.loop import EarlyStopping, Loop, LoopSettings, MetricsLog, fit
from interlingua_jax.training.state import TrainState, global_batch
from interlingua_jax.data import pipeline
from tiny_system import frozen_params, jax_step, lengths_and_rows, system as make_system, tiny_config, write_splits

# Cached states are computed at their own example's bucket width, a training batch's at its longest row's: the
# same tokens left-padded to another width, which changes the forward's float32 reductions only (measured max
# loss difference over the 5 steps below: ~1e-7 relative).
LOSS_RTOL = 1e-5
BUCKETS = (112, 160)  # the prompts below are 106-148 tokens: cached at width 112 or 148, batches mostly 148


@pytest.fixture(scope="module")
def system(tiny_mistral_dir, tiny_llama_dir, tmp_path_factory):
  """Questions of several lengths (a filler sentence repeated 0-3 times), so that batches mix length buckets."""
  root = str(tmp_path_factory.mktemp("data"))
  rows = [{"question": f"Tom has {a} apples and gets {b} more." + " It is a sunny day." * ((a + b) % 4) +
           " How many apples does Tom have?", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"}
          for a in range(1, 8) for b in range(1, 6)]
  cfg = tiny_config(tiny_mistral_dir, tiny_llama_dir, write_splits(root, rows, num_train=28))
  cfg.data.length_buckets, cfg.data.max_source_len, cfg.data.num_shots = BUCKETS, 160, 0
  run, kind, s = make_system(cfg, tmp_path_factory.mktemp("work"))
  lengths, encoded = lengths_and_rows(run, s, s.train)
  return run, kind, s, lengths, encoded


def build(run, s, encoded, root, *, layer=None):
  cfg, source = run.cfg, s.models["source"].lm
  return source_cache.load_or_build(
      str(root), encoded, model_path=cfg.source.path, params=source.params, config=source.config,
      layer=source_layer(run, s) if layer is None else layer, dtype=cfg.source.dtype,
      attention_impl=cfg.model.attention_impl, mesh=s.mesh, length_buckets=BUCKETS, batch_size=4)


def source_layer(run, s) -> int:
  return resolve_layer(run.cfg.source.layer, s.models["source"].lm.config.num_layers)


def stamp(cache: source_cache.SourceStates) -> tuple[int, int]:
  stat = os.stat(os.path.join(cache.directory, source_cache.STATES))
  return stat.st_ino, stat.st_mtime_ns


def test_cached_states_train_like_the_source_forward(system, tmp_path):
  """Five steps on the same shuffled batches, the translator's gates open (closed, it would ignore the source)."""
  run, kind, s, lengths, encoded = system
  cache = build(run, s, encoded, tmp_path)
  assert len({pipeline.bucket(int(e["source_mask"].sum()), BUCKETS) for e in encoded}) > 1  # widths differ
  frozen = frozen_params(s)
  losses = {}
  for name, states in (("forward", None), ("cached", cache)):
    data = iter(pipeline.train_dataset(encoded, parts=translator_rows.PARTS, global_batch_size=4, seed=3,
                                       length_buckets=BUCKETS, source_states=states))
    state, step, _ = jax_step(run, kind, s, gates=0.5)
    losses[name] = []
    for _ in range(5):
      batch = next(data)
      assert (pipeline.SOURCE_STATES in batch) == (states is not None) and pipeline.SOURCE_INDEX not in batch
      state, metrics = step(state, frozen, global_batch(batch, s.mesh))
      losses[name].append(float(metrics["loss"]))
  np.testing.assert_allclose(losses["cached"], losses["forward"], rtol=LOSS_RTOL)
  assert len(set(losses["forward"])) == 5  # five different batches, not one loss six times


def test_a_rerun_and_a_resume_reuse_the_cache(system, tmp_path, monkeypatch):
  """Through `stages.train_stage`: the first run computes the cache in its workdir, the resumed one reads it (it
  is never computed again, its file never rewritten) and its batches carry those states. A stand-in train step
  (the real one is the equality test's): it only records the batches."""
  run, kind, s, _, _ = system
  cfg = run.cfg.copy_and_resolve_references()
  cfg.train.steps, cfg.train.eval_every = 3, 3
  monkeypatch.setattr(stages, "validation_pass", lambda contexts, examples, step: (0.5, {"step": step}))
  widths = []

  def recording_step(**kwargs):
    def step(state, frozen, batch):
      widths.append((batch[pipeline.SOURCE_STATES].shape[1], batch["source_ids"].shape[1]))
      return TrainState(state.step + 1, state.params, state.rngs, state.opt_state), {"loss": 1.0, "lr": 0.0}
    return step

  monkeypatch.setattr(stages, "make_train_step", recording_step)
  stages.train_stage(dataclasses.replace(run, cfg=cfg, workdir=str(tmp_path)), kind, s)
  (key,) = os.listdir(tmp_path / source_cache.CACHE_DIR)
  before = stamp(source_cache.open_cache(str(tmp_path / source_cache.CACHE_DIR / key)))

  def no_build(*args, **kwargs):
    raise AssertionError("the source cache was computed again")

  monkeypatch.setattr(source_cache, "_build", no_build)
  cfg.train.steps = 5  # extends the run: resumes from step 3
  assert stages.train_stage(dataclasses.replace(run, cfg=cfg, workdir=str(tmp_path)), kind, s)["final_step"] == 5
  assert os.listdir(tmp_path / source_cache.CACHE_DIR) == [key]
  assert stamp(source_cache.open_cache(str(tmp_path / source_cache.CACHE_DIR / key))) == before
  assert len(widths) == 5 and all(a == b for a, b in widths)


def test_a_changed_key_builds_a_new_cache(system, tmp_path):
  run, _, s, _, encoded = system
  cfg = run.cfg
  first = build(run, s, encoded, tmp_path)
  assert build(run, s, encoded, tmp_path).directory == first.directory
  other_layer = build(run, s, encoded, tmp_path, layer=source_layer(run, s) + 1)
  other_data = build(run, s, [*encoded[:-1], encoded[0]], tmp_path)  # as many examples, the last one another
  weights = os.path.join(cfg.source.path, "model.safetensors")
  os.utime(weights, ns=(os.stat(weights).st_atime_ns, os.stat(weights).st_mtime_ns + 1))  # the weights rewritten
  rewritten = build(run, s, encoded, tmp_path)
  directories = {c.directory for c in (first, other_layer, other_data, rewritten)}
  assert len(directories) == 4 and len(os.listdir(tmp_path)) == 4
  assert not np.allclose(first[0], other_layer[0])  # the other layer's states, not a copy
  with open(os.path.join(other_layer.directory, source_cache.META)) as f:
    assert json.load(f)["key"]["layer"] == source_layer(run, s) + 1


def test_a_damaged_or_partial_cache_is_rebuilt_never_read(system, tmp_path, monkeypatch):
  run, _, s, _, encoded = system
  cfg = run.cfg
  cache = build(run, s, encoded, tmp_path)
  good = [np.array(cache[i]) for i in range(len(cache))]
  states_file = os.path.join(cache.directory, source_cache.STATES)
  with open(states_file, "r+b") as f:  # a truncated copy
    f.truncate(os.path.getsize(states_file) // 2)
  assert source_cache.open_cache(cache.directory) is None
  rebuilt = build(run, s, encoded, tmp_path)
  assert rebuilt.directory == cache.directory and len(rebuilt) == len(good)
  for i, states in enumerate(good):
    np.testing.assert_array_equal(rebuilt[i], states)
  # A build killed midway (here: at its second batch) leaves only its partial directory, never
  # one under the key's name; the next build replaces the partial one.
  calls = []
  real = source_cache._forward(s.mesh, s.models["source"].lm.config, source_layer(run, s), cfg.model.attention_impl)

  def dying(*key):
    def forward(*inputs):
      calls.append(1)
      if len(calls) == 3:  # the first call is the build's jax.eval_shape, the second its first batch
        raise KeyboardInterrupt("killed")
      return real(*inputs)
    return forward

  shutil.rmtree(cache.directory)
  monkeypatch.setattr(source_cache, "_forward", dying)
  with pytest.raises(KeyboardInterrupt):
    build(run, s, encoded, tmp_path)
  assert os.listdir(tmp_path) == [f".{os.path.basename(cache.directory)}.partial"]
  monkeypatch.undo()
  again = build(run, s, encoded, tmp_path)
  assert os.listdir(tmp_path) == [os.path.basename(again.directory)]
  np.testing.assert_array_equal(again[len(good) - 1], good[-1])


def test_a_saved_config_without_the_switch_resumes(system, tmp_path):
  """train.cache_source_states only changes float noise: a config.json saved before it existed still matches."""
  cfg = system[0].cfg
  experiment.start(cfg, str(tmp_path))
  path = tmp_path / "config.json"
  saved = json.loads(path.read_text())
  del saved["train"]["cache_source_states"]
  path.write_text(json.dumps(saved))
  os.makedirs(tmp_path / "checkpoints")
  off = cfg.copy_and_resolve_references()
  off.train.cache_source_states = False
  experiment.start(cfg, str(tmp_path))
  experiment.start(off, str(tmp_path))
