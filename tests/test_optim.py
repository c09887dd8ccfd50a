"""Optimizer: parameter groups, gate learning rate, weight decay, clipping, schedule, nnx.Optimizer."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from interlingua_jax.training.optim import make_optimizer, make_schedule, param_label, param_labels
from interlingua_jax.bridges.translator.module import Translator

LR, WD = 1e-2, 0.01
HPARAMS = dict(learning_rate=LR, warmup_steps=0, total_steps=10, b1=0.9, b2=0.98, eps=1e-8,
               weight_decay=WD, gate_lr_multiplier=3.0, clip_norm=1.0)


def translator(depth=2):
  return Translator(source_dim=6, target_dim=8, num_soft_tokens=2, bottleneck=8, depth=depth, num_heads=2,
                    dropout=0.1, target_embed_rms=0.1, rngs=nnx.Rngs(0))


def paths(tree):
  leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return {jax.tree_util.keystr(p, simple=True, separator="/"): x for p, x in leaves}


def test_param_label_rules():
  assert param_label("blocks/3/cross_gate") == "gates"
  assert param_label("blocks/0/mlp_norm/scale") == "no_decay"
  assert param_label("blocks/0/attn/q/bias") == "no_decay"
  assert param_label("blocks/0/mlp/w_act/kernel") == "decay"
  assert param_label("queries") == "decay"


def test_translator_groups():
  labels = paths(param_labels(nnx.state(translator(), nnx.Param)))
  gates = sorted(p for p, label in labels.items() if label == "gates")
  assert gates == [f"blocks/{i}/{g}_gate" for i in range(2) for g in ("attn", "cross", "mlp")]
  no_decay = {p for p, label in labels.items() if label == "no_decay"}
  assert no_decay == {p for p in labels if p.endswith("/bias") or p.endswith("norm/scale")}
  assert {"source_norm/scale", "out_norm/scale", "out/bias"} <= no_decay
  assert {p for p, label in labels.items() if label == "decay"} == {
      p for p in labels if p.endswith("/kernel")} | {"queries"}


def tiny_params():
  return {"w": {"kernel": jnp.full((2, 3), 2.0)}, "norm": {"scale": jnp.full((3,), 2.0)},
          "b": {"bias": jnp.full((3,), 2.0)}, "gate": jnp.full((), 2.0)}


def test_gate_step_is_gate_lr_multiplier_times_the_base_step():
  params = tiny_params()
  tx = make_optimizer(**HPARAMS)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.1), params)  # identical gradients, norm < clip
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["b"]["bias"], -LR, rtol=1e-6)  # Adam's first step is lr · sign(g)
  np.testing.assert_allclose(updates["gate"] / updates["b"]["bias"][0], 3.0, rtol=1e-6)
  np.testing.assert_allclose(updates["norm"]["scale"], -LR, rtol=1e-6)
  np.testing.assert_allclose(updates["w"]["kernel"], -LR * (1 + WD * 2.0), rtol=1e-6)


def test_weight_decay_only_on_the_decay_group():
  params = tiny_params()
  tx = make_optimizer(**HPARAMS)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  np.testing.assert_allclose(updates["w"]["kernel"], -LR * WD * 2.0, rtol=1e-6)
  for name in ("norm", "b", "gate"):
    np.testing.assert_array_equal(jax.tree.leaves(updates[name])[0], 0.0)


def test_clipping_is_on_the_global_norm_before_the_groups():
  params = tiny_params()
  tx = make_optimizer(**HPARAMS)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 5.0), params)  # global norm 5 · sqrt(13) > 1
  _, state = tx.update(grads, tx.init(params), params)
  # Each group's Adam first moment holds its own parameters; after one step mu = (1 - b1) · clipped g.
  mus = [mu for _, mu in optax.tree_utils.tree_get_all_with_path(state, "mu")]
  assert len(mus) == 3
  mu_norm = np.sqrt(sum(float(optax.tree.norm(mu)) ** 2 for mu in mus))
  np.testing.assert_allclose(mu_norm, (1 - HPARAMS["b1"]) * HPARAMS["clip_norm"], rtol=1e-5)


def test_schedule_values():
  schedule = make_schedule(learning_rate=1e-4, warmup_steps=750, total_steps=3000)
  for step, expected in [(0, 0.0), (375, 5e-5), (750, 1e-4), (1875, 5e-5), (3000, 0.0), (3500, 0.0)]:
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12), step
  assert float(make_schedule(learning_rate=1e-4, warmup_steps=0, total_steps=10)(0)) == pytest.approx(1e-4)


def test_bad_hyperparameters():
  with pytest.raises(ValueError, match="warmup_steps=10, total_steps=10"):
    make_schedule(learning_rate=1e-4, warmup_steps=10, total_steps=10)
  with pytest.raises(ValueError, match="learning_rate"):
    make_schedule(learning_rate=0.0, warmup_steps=0, total_steps=10)
  with pytest.raises(ValueError, match="gate_lr_multiplier"):
    make_optimizer(**{**HPARAMS, "gate_lr_multiplier": 0.0})
  with pytest.raises(ValueError, match="clip_norm"):
    make_optimizer(**{**HPARAMS, "clip_norm": -1.0})


def test_nnx_optimizer_on_translator():
  model = translator(depth=1)
  optimizer = nnx.Optimizer(model, make_optimizer(**HPARAMS), wrt=nnx.Param)
  source = jax.random.normal(jax.random.key(1), (2, 3, 6))
  target = jax.random.normal(jax.random.key(2), (2, 2, 8))
  loss = lambda m: jnp.mean((m(source, jnp.ones((2, 3)), deterministic=True) - target) ** 2)
  before = {p: np.array(v[...]) for p, v in paths(nnx.state(model, nnx.Param)).items()}
  grads = nnx.grad(loss)(model)
  updates = paths(optimizer.update(model, grads))
  after = paths(nnx.state(model, nnx.Param))
  for path, x in before.items():
    np.testing.assert_allclose(after[path][...], x + np.asarray(updates[path][...]), rtol=1e-6, atol=1e-7)
  # Closed gates receive gradient and open by 3 · lr on the first step.
  for gate in ("attn_gate", "cross_gate", "mlp_gate"):
    np.testing.assert_allclose(abs(float(after[f"blocks/0/{gate}"][...])), 3 * LR, rtol=1e-4)
  assert all("rng" not in p for p in paths(optimizer.opt_state))  # only parameters carry optimizer state
