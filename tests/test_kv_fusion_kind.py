"""bridge.kind = "kv_fusion": training reads what generation decodes from, the controls destroy what they say,
and a run reports the gate-0 identity and the destructive controls on the questions `latent` answers."""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import kv_fusion_toy, tiny
from interlingua_jax.bridges.kv_fusion import alignment, fuser, generation, rows, source
from interlingua_jax.bridges.kv_fusion.loss import LossSpec, fused_answer_logits, kv_fusion_loss, source_at_target_slots
from interlingua_jax.core.errors import ConfigError
from interlingua_jax.evaluation.harness import run_methods
from interlingua_jax.data import pipeline
from interlingua_jax.data.pipeline import PromptBuilder
from interlingua_jax.models import generate
from interlingua_jax.models.generate import prefill_prompt
from interlingua_jax.run import config as config_lib, experiment, stages, validate
from interlingua_jax.training.checkpoints import Checkpoints, abstract_like
from interlingua_jax.training.state import global_batch, split_module
import kv_lms
from tiny_system import system

B, T, S, NEW = 4, 8, 10, 5
TARGET_PADS = (0, 2, 5, 3)
SOURCE_PADS = (1, 0, 6, 4)


@pytest.fixture(scope="module")
def lms():
  return kv_lms.target_and_source()


def _token_index(target_mask, source_mask) -> np.ndarray:
  """(B, T) left-padded with -1: per row a monotone target-token -> source-token map, its first entry -1."""
  rng = np.random.default_rng(0)
  out = np.full(target_mask.shape, -1, np.int32)
  for b, (t, s) in enumerate(zip(target_mask.sum(1), source_mask.sum(1))):
    row = np.sort(rng.integers(0, s, t)).astype(np.int32)
    row[0] = -1
    out[b, target_mask.shape[1] - t:] = row
  return out


def test_source_at_target_slots_is_the_host_alignment(lms):
  """The traced gather of training (token indices, shifted by each row's padding) = generation's host path."""
  _, src = lms
  target_ids, target_mask = kv_lms.left_padded(64, T, TARGET_PADS, 0)
  source_ids, source_mask = kv_lms.left_padded(80, S, SOURCE_PADS, 1)
  index = _token_index(target_mask, source_mask)
  _, cache = prefill_prompt(src, input_ids=source_ids, attention_mask=source_mask)
  per_row = [index[b, T - target_mask[b].sum():] for b in range(B)]
  want = generation.align_source_cache(cache, generation.slot_alignment(per_row, target_mask, source_mask))
  got = source_at_target_slots(cache, jnp.asarray(index), jnp.asarray(source_mask))
  np.testing.assert_array_equal(got.valid, want.valid)
  valid = np.asarray(want.valid)[None, :, :, None, None]
  np.testing.assert_array_equal(np.where(valid, got.k, 0), np.where(valid, want.k, 0))
  np.testing.assert_array_equal(np.where(valid, got.v, 0), np.where(valid, want.v, 0))


def _spec(target, src) -> LossSpec:
  return LossSpec(src.config, target.config, tuple(alignment.terminal_layer_map(2, 3)), seed=0, temperature_start=1.0,
                  temperature_end=0.1, anneal_steps=10)


def _trained_like_fusers(target, src):
  """Fusers whose corrections are large (output scale 1, gates open), so fusion changes the greedy tokens."""
  layer_map = alignment.terminal_layer_map(src.config.num_layers, target.config.num_layers)
  return fuser.make_fusers(layer_map, src.config, target.config, hidden_size=16, gate_init=2.0, head_init=2.0,
                           output_init_scale=3.0, rngs=nnx.Rngs(0))


def test_training_teacher_forces_what_generation_decodes(lms):
  """Greedy tokens from the fused cache (generation's transform on the full prompt's alignment) are the argmaxes
  of the training path's logits (the prompt but its last token fused, then [last token, tokens...])."""
  target, src = lms
  fusers = _trained_like_fusers(target, src)
  spec = _spec(target, src)
  target_ids, target_mask = kv_lms.left_padded(64, T, TARGET_PADS, 0)
  source_ids, source_mask = kv_lms.left_padded(80, S, SOURCE_PADS, 1)
  index = _token_index(target_mask, source_mask)
  _, cache = prefill_prompt(src, input_ids=source_ids, attention_mask=source_mask)
  graphdef, state = nnx.split(fusers)
  transform = generation.FusedCacheTransform(
      state=state, source=source_at_target_slots(cache, jnp.asarray(index), jnp.asarray(source_mask)),
      graphdef=graphdef, layer_map=spec.layer_map)
  kw = dict(input_ids=target_ids, attention_mask=target_mask, max_new_tokens=NEW, eos_token_id=-1, pad_token_id=0)
  fused = np.asarray(generate(target, cache_transform=transform, **kw).tokens)
  plain = np.asarray(generate(target, **kw).tokens)
  assert (fused != plain).any()  # the fusion matters here, so agreeing below is not agreeing on the target alone
  batch = {"source_ids": source_ids, "source_mask": source_mask, "prefix_ids": target_ids[:, :-1],
           "prefix_mask": target_mask[:, :-1], "alignment": index[:, :-1],
           "chunk_ids": np.concatenate([target_ids[:, -1:], fused[:, :-1]], 1), "chunk_mask": np.ones((B, NEW), np.int32)}
  logits = fused_answer_logits(fusers, (src.params, target.params), jax.tree.map(jnp.asarray, batch), spec=spec,
                               temperature=1.0, key=None, hard=True)
  np.testing.assert_array_equal(np.argmax(logits, -1), fused)


def test_the_loss_trains_every_fuser_and_gate(lms):
  target, src = lms
  fusers = _trained_like_fusers(target, src)
  target_ids, target_mask = kv_lms.left_padded(64, T, TARGET_PADS, 0)
  source_ids, source_mask = kv_lms.left_padded(80, S, SOURCE_PADS, 1)
  answer = np.random.default_rng(2).integers(3, 64, (B, 3)).astype(np.int32)
  batch = {"source_ids": source_ids, "source_mask": source_mask, "prefix_ids": target_ids[:, :-1],
           "prefix_mask": target_mask[:, :-1], "alignment": _token_index(target_mask, source_mask)[:, :-1],
           "chunk_ids": np.concatenate([target_ids[:, -1:], answer], 1), "chunk_mask": np.ones((B, 4), np.int32),
           "labels": np.concatenate([answer, np.full((B, 1), 2, np.int32)], 1), "loss_mask": np.ones((B, 4), np.int32)}
  graphdef, state = nnx.split(fusers)
  loss = lambda st: kv_fusion_loss(nnx.merge(graphdef, st), (src.params, target.params),
                                   jax.tree.map(jnp.asarray, batch), jnp.int32(3), spec=_spec(target, src))
  (value, metrics), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(state)
  assert np.isfinite(value) and 0 < metrics["gate_temperature"] < 1
  assert all(np.abs(g).max() > 0 for g in jax.tree.leaves(grads))
  gate_grads = nnx.state(nnx.merge(graphdef, grads), fuser.GateParam)
  assert len(jax.tree.leaves(gate_grads)) == 2  # one gate per fused layer, selectable for their own lr


def test_the_controls_destroy_what_they_say(lms):
  """noise: each layer's per-channel mean and std over valid slots kept, its values not; zeroed: zeros."""
  _, src = lms
  source_ids, source_mask = kv_lms.left_padded(80, S, SOURCE_PADS, 1)
  _, cache = prefill_prompt(src, input_ids=np.tile(source_ids, (8, 1)), attention_mask=np.tile(source_mask, (8, 1)))
  noise = source._noise(cache, jax.random.key(0))
  valid = np.asarray(cache.valid)
  for a, b in ((cache.k, noise.k), (cache.v, noise.v)):
    a, b = np.asarray(a)[:, valid], np.asarray(b)[:, valid]  # (L, valid slots, K, D)
    np.testing.assert_allclose(b.mean(1), a.mean(1), atol=0.25 * a.std(1).max())
    np.testing.assert_allclose(b.std(1), a.std(1), rtol=0.3)
    centred = lambda x: (x - x.mean(1, keepdims=True)).ravel()  # the channel means are shared by design
    assert np.abs(np.corrcoef(centred(a), centred(b))[0, 1]) < 0.1


@pytest.fixture(scope="module")
def shrunk_run(tmp_path_factory):
  """configs/kv_fusion_toy.py shrunk (configs/tiny.SHRINK): every stage and every control, on barely trained LMs."""
  workdir = tmp_path_factory.mktemp("kv_fusion_run")
  cfg = tiny.shrink(kv_fusion_toy.get_config())
  experiment.run(cfg, str(workdir), ("train", "eval", "compression"))
  return cfg, workdir


def test_a_run_reports_the_gate0_identity_and_the_destructive_controls(shrunk_run):
  cfg, workdir = shrunk_run
  records = [json.loads(line) for line in open(workdir / "eval" / "samples.jsonl")]
  by = {}
  for r in records:
    by.setdefault(r["method"], {})[r["id"]] = r
  assert set(by) == set(cfg.eval.methods) | {"latent_at_final"}
  ids = set(by["latent"])
  assert len(ids) == cfg.eval.num_samples and all(set(v) == ids for v in by.values())  # the same questions
  assert all(by["latent_gates_off"][i]["prediction"] == by["target_alone"][i]["prediction"] for i in ids)
  assert all(by["latent"][i]["soft_tokens"] == 0 and by["latent"][i]["source_prompt_tokens"] > 0 for i in ids)
  agg = json.loads((workdir / "eval" / "aggregate.json").read_text())
  for control in ("latent_gates_off", "latent_zeroed", "latent_noise", "latent_shuffled"):
    assert agg["methods"][control]["control"] and f"latent_vs_{control}" in agg["comparisons"]
  gates = agg["bridge_summary"]["gates"]
  assert [g["target_layer"] for g in gates] == [0, 1] and all(isinstance(g["open"], bool) for g in gates)
  wire = json.loads((workdir / "compression" / "compression.json").read_text())
  assert wire["num_soft_tokens"] == 0 and wire["packet_cols"] == 2 * 16  # the toy source: 2 KV heads x 16
  assert wire["levels"]["int8"]["packet_bytes"] < wire["levels"]["float32"]["packet_bytes"]


def test_gates_closed_is_target_alone_where_fusion_changes_the_answers(shrunk_run):
  """Through the harness, with fusers whose corrections are large (untrained fusers barely perturb, which would
  make the identity trivially true): every gate closed answers exactly as target_alone, fused answers differ."""
  cfg, workdir = shrunk_run
  run, kind, s = system(cfg, workdir, ("eval",))
  source_config, target_config = s.models["source"].lm.config, s.models["target"].lm.config
  layer_map = alignment.terminal_layer_map(source_config.num_layers, target_config.num_layers)
  loud = fuser.make_fusers(layer_map, source_config, target_config, hidden_size=16, gate_init=2.0, head_init=2.0,
                           output_init_scale=3.0, rngs=nnx.Rngs(0))
  ctx = kind.contexts(run, s, split_module(loud))[None]
  names = ("target_alone", "latent", "latent_gates_off", "latent_zeroed")
  records = run_methods(dataclasses.replace(ctx, warm_up=False), names, s.test[:8], None, progress=False)
  said = {m: [r["prediction"] for r in records if r["method"] == m] for m in names}
  assert said["latent_gates_off"] == said["target_alone"]
  assert said["latent"] != said["target_alone"] and said["latent_zeroed"] != said["latent"]


def test_tokens_are_aligned_by_the_text_they_cover(shrunk_run):
  """The toy world's two tokenizers (Mistral-style and Llama-style BPE): each target token reads a source token
  whose text overlaps its own, or the nearest before it; BOS reads BOS."""
  cfg, workdir = shrunk_run
  from transformers import AutoTokenizer
  record = json.loads((workdir / "config.json").read_text())
  tokenizers = [AutoTokenizer.from_pretrained(record[side]["path"]) for side in ("source", "target")]
  builder = PromptBuilder("toy", (), *tokenizers, 128)
  text = "Q: Sam has as many pens as the lucky number of Ann. He buys 3 more. How many pens?\nA:"
  src_ids, tgt_ids, index = rows.prompt_alignment(builder, *tokenizers, text)
  assert src_ids != tgt_ids and len(index) == len(tgt_ids) and index[0] == 0 and (index >= 0).all()
  assert (np.diff(index) >= 0).all()
  src_text = [tokenizers[0].decode([i]).replace("▁", " ").strip() for i in src_ids]
  for j in range(1, len(tgt_ids)):
    piece = tokenizers[1].decode([tgt_ids[j]]).strip()
    if piece:
      assert piece in src_text[index[j]] or src_text[index[j]] in piece, (piece, src_text[index[j]])


def _saved_config(workdir, **changes):
  """The shrunk run's saved config (its toy world's paths filled in, so nothing is rebuilt), with changes."""
  cfg = config_lib.from_json(json.loads((workdir / "config.json").read_text()))
  cfg.update_from_flattened_dict(changes)
  return cfg


def _first_batch(run, kind, s) -> dict:
  t = kind.training(run, s)
  data = pipeline.train_dataset(t.rows, parts=t.parts, global_batch_size=4, seed=0,
                                length_buckets=tuple(run.cfg.data.length_buckets), process_index=0, process_count=1)
  return next(iter(data))


def test_a_sharded_step_equals_a_single_device_step(shrunk_run, tmp_path):
  """The fusers replicated, the batch over "data", both frozen LMs over "model": a (2, 2) mesh takes the same step."""
  _, workdir = shrunk_run
  results = []
  for name, mesh in (("one", {"mesh.data": 1, "mesh.model": 1}), ("four", {"mesh.data": 2, "mesh.model": 2})):
    run, kind, s = system(_saved_config(workdir, **mesh), tmp_path / name)
    assert s.mesh.devices.size == (4 if name == "four" else 1)
    t = stages.training_step(run, kind, s)
    state, metrics = t.step_fn(t.state, t.training.frozen_params, global_batch(_first_batch(run, kind, s), s.mesh))
    results.append((jax.tree.map(np.asarray, state.params), float(metrics["loss"])))
  (p1, l1), (p4, l4) = results
  assert l1 == pytest.approx(l4, rel=1e-5)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p4)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_an_interrupted_run_resumes_to_the_uninterrupted_fusers(shrunk_run, tmp_path, monkeypatch, crash_at_step):
  """Killed after the step-3 checkpoint and restarted: the same fusers and gates at step 6 (the gates' Gumbel noise
  is keyed by the step, so it is redrawn identically)."""
  _, workdir = shrunk_run
  cfg = _saved_config(workdir, **{"train.steps": 6, "train.eval_every": 3, "kv_fusion.anneal_steps": 6})
  monkeypatch.setattr(stages, "validation_pass", lambda contexts, ex, step: (0.5, {"step": step}))
  at = lambda name: system(cfg, tmp_path / name)
  stages.train_stage(*at("straight"))
  with crash_at_step(3):
    stages.train_stage(*at("resumed"))
  run, kind, s = at("resumed")
  stages.train_stage(run, kind, s)
  template = stages.training_step(run, kind, s).state
  finals = []
  for name in ("straight", "resumed"):
    manager = Checkpoints(str(tmp_path / name), keep=2).latest
    assert manager.latest_step() == 6
    finals.append(Checkpoints.restore(manager, abstract_like(template))[0])
  leaves = [jax.tree.leaves(f.params) for f in finals]
  assert len(leaves[0]) > 0
  for x, y in zip(*leaves):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("key, value, match", [
    ("data.chat_template", True, "data.chat_template"),
    ("kv_fusion.sharer", "both", "kv_fusion.sharer"),
    ("kv_fusion.gate_temperature_end", 2.0, "kv_fusion.gate_temperature_end"),
])
def test_bad_config_is_refused_naming_the_key(key, value, match):
  cfg = tiny.shrink(kv_fusion_toy.get_config())
  cfg.update_from_flattened_dict({key: value})
  with pytest.raises(ConfigError, match=match):
    validate.check(cfg, device_count=1)


def test_a_soft_token_run_refuses_the_cache_controls():
  from configs import toy_complementary
  cfg = tiny.shrink(toy_complementary.get_config())
  cfg.eval.methods = ("latent", "latent_noise")
  with pytest.raises(ConfigError, match="latent_noise"):
    validate.check(cfg, device_count=1)
