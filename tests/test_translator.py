"""Translator: orthonormal queries, gates, source masking, RMS calibration, dtypes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from interlingua_jax.bridges.translator.module import Translator
from interlingua_jax.nn.blocks import embedding_rms

SRC, TGT, M, B, DEPTH = 12, 20, 4, 16, 2


def make(num_soft_tokens=M, bottleneck=B, target_embed_rms=0.5, dropout=0.1, seed=0, num_heads=2, reads_source=True):
  return Translator(source_dim=SRC, target_dim=TGT, num_soft_tokens=num_soft_tokens,
                    bottleneck=bottleneck, depth=DEPTH, num_heads=num_heads, dropout=dropout,
                    target_embed_rms=target_embed_rms, rngs=nnx.Rngs(seed), reads_source=reads_source)


def gates(model):
  return [g for block in model.blocks for g in (block.attn_gate, block.cross_gate, block.mlp_gate)]


def open_gates(model, value=0.7):
  for g in gates(model):
    g[...] = jnp.asarray(value, jnp.float32)


def source(seed, batch=3, seq=5):
  return jax.random.normal(jax.random.key(seed), (batch, seq, SRC))


@pytest.mark.parametrize("num_soft_tokens,bottleneck", [(4, 16), (16, 16)])
def test_query_rows_are_orthonormal(num_soft_tokens, bottleneck):
  q = np.asarray(make(num_soft_tokens, bottleneck).queries[...], np.float64)
  assert q.shape == (num_soft_tokens, bottleneck)
  np.testing.assert_allclose(q @ q.T, np.eye(num_soft_tokens), atol=1e-5)


def test_more_queries_than_bottleneck_is_an_error():
  with pytest.raises(ValueError, match=r"num_soft_tokens=17 > bottleneck=16.*translator.bottleneck"):
    make(num_soft_tokens=17, bottleneck=16)


def test_bad_heads_and_source_shape_are_errors():
  with pytest.raises(ValueError, match="divisible by num_heads=3"):
    make(num_heads=3)
  model = make()
  with pytest.raises(ValueError, match=f"source_hidden must be .batch, seq, {SRC}."):
    model(jnp.zeros((2, 5, SRC + 1)), jnp.ones((2, 5)), deterministic=True)
  with pytest.raises(ValueError, match="source_mask shape"):
    model(jnp.zeros((2, 5, SRC)), jnp.ones((2, 4)), deterministic=True)


def test_gates_start_closed_so_output_ignores_source_at_init():
  model = make()
  assert len(gates(model)) == 3 * DEPTH
  assert all(float(g[...]) == 0.0 for g in gates(model))
  mask = jnp.ones((3, 5))
  a = model(source(1), mask, deterministic=True)
  b = model(source(2), mask, deterministic=True)
  np.testing.assert_array_equal(a, b)
  open_gates(model)
  a = model(source(1), mask, deterministic=True)
  b = model(source(2), mask, deterministic=True)
  assert float(jnp.max(jnp.abs(a - b))) > 1e-3


def test_every_gate_gets_gradient_at_init():
  model = make()
  target = jax.random.normal(jax.random.key(3), (3, M, TGT))
  loss = lambda m: jnp.mean((m(source(1), jnp.ones((3, 5)), deterministic=True) - target) ** 2)
  grads = nnx.grad(loss)(model)
  for block in grads["blocks"].values():
    for name in ("attn_gate", "cross_gate", "mlp_gate"):
      assert abs(float(block[name][...])) > 1e-6, name


def test_source_padding_is_masked():
  model = make()
  open_gates(model)
  src = source(1)
  mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
  out = model(src, mask, deterministic=True)
  noise = 100.0 * source(9)
  changed_pads = jnp.where(mask[..., None] == 0, noise, src)
  np.testing.assert_array_equal(model(changed_pads, mask, deterministic=True), out)
  changed_real = jnp.where(mask[..., None] == 1, noise, src)
  assert float(jnp.max(jnp.abs(model(changed_real, mask, deterministic=True) - out))) > 1e-3


def test_output_rms_equals_target_embedding_rms():
  table = 0.02 * jax.random.normal(jax.random.key(4), (50, TGT))
  expected = float(np.sqrt(np.mean(np.square(np.asarray(table, np.float64)))))
  assert embedding_rms(table) == pytest.approx(expected, rel=1e-6)
  model = make(target_embed_rms=embedding_rms(table))
  open_gates(model)
  out = np.asarray(model(source(1), jnp.ones((3, 5)), deterministic=True), np.float64)
  np.testing.assert_allclose(np.sqrt(np.mean(out ** 2, axis=-1)), expected, rtol=1e-5)


def test_embedding_rms_of_bf16_table_is_computed_in_float32():
  table = (3.0 * jax.random.normal(jax.random.key(5), (64, 32))).astype(jnp.bfloat16)
  expected = np.sqrt(np.mean(np.square(np.asarray(table, np.float64))))
  assert embedding_rms(table) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(ValueError, match="vocab, dim"):
    embedding_rms(jnp.zeros((2, 3, 4)))


def test_no_calibration_keeps_projection_scale():
  model = make(target_embed_rms=None)
  out = model(source(1), jnp.ones((3, 5)), deterministic=True)
  x = model.out_norm(jnp.broadcast_to(model.queries[...], (3, M, B)))
  np.testing.assert_allclose(out, model.out(x), rtol=1e-6)
  with pytest.raises(ValueError, match="target_embed_rms must be positive"):
    make(target_embed_rms=0.0)


def test_bf16_source_is_computed_in_float32():
  model = make()
  open_gates(model)
  src16 = source(1).astype(jnp.bfloat16)
  out = model(src16, jnp.ones((3, 5)), deterministic=True)
  assert out.dtype == jnp.float32
  np.testing.assert_array_equal(out, model(src16.astype(jnp.float32), jnp.ones((3, 5)), deterministic=True))


def test_every_parameter_is_a_float32_master_copy():
  """The trainable weights stay float32 whatever the frozen models' dtype: the optimizer updates them in float32.
  (The source cast alone proves nothing: float32 parameters promote a bf16 input anyway.)"""
  leaves = jax.tree.leaves(nnx.state(make(), nnx.Param))
  assert leaves and all(x.dtype == jnp.float32 for x in leaves)


def test_the_prompt_tuning_control_never_sees_the_question():
  """reads_source=False: the same soft tokens for any source and any length, with the same parameters and gates
  as the bridge (so that training alone is what it measures)."""
  blind, bridge = make(reads_source=False), make()
  for model in (blind, bridge):
    open_gates(model)
  mask = jnp.ones((3, 5)).at[1, :2].set(0)
  a, b = blind(source(1), mask, deterministic=True), blind(10 * source(2), jnp.ones((3, 5)), deterministic=True)
  np.testing.assert_allclose(a, b, atol=1e-6)
  np.testing.assert_allclose(a[0], a[2], atol=1e-6)
  assert float(jnp.max(jnp.abs(bridge(source(1), mask, deterministic=True) - bridge(source(2), mask,
                                                                                    deterministic=True)))) > 1e-3
  assert jax.tree.structure(nnx.state(blind, nnx.Param)) == jax.tree.structure(nnx.state(bridge, nnx.Param))


def test_dropout_only_in_training_mode():
  model = make(dropout=0.5)
  open_gates(model)
  src, mask = source(1), jnp.ones((3, 5))
  np.testing.assert_array_equal(model(src, mask, deterministic=True), model(src, mask, deterministic=True))
  train = model(src, mask, deterministic=False)
  assert float(jnp.max(jnp.abs(train - model(src, mask, deterministic=True)))) > 1e-4
