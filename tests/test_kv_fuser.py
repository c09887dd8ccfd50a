"""KV fusion: the fuser's gating and residual, the layer and token alignments, the gate's sampling and schedule."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from interlingua_jax.bridges.kv_fusion import alignment, fuser
from interlingua_jax.models import DecoderConfig, KVCache

B, S = 2, 5
SOURCE_HEADS, SOURCE_DIM, TARGET_HEADS, TARGET_DIM = 2, 16, 3, 8


def _caches(num_source: int, num_target: int, dtype=jnp.bfloat16, seed: int = 0):
  """Random (source k, source v, target k, target v); numpy's generator, since each new shape would cost a
  compile of jax.random."""
  rng = np.random.default_rng(seed)
  src = (num_source, B, S, SOURCE_HEADS, SOURCE_DIM)
  tgt = (num_target, B, S, TARGET_HEADS, TARGET_DIM)
  return tuple(jnp.asarray(rng.standard_normal(shape, np.float32), dtype) for shape in (src, src, tgt, tgt))


def _fusers(layer_map, num_source: int, *, seed: int = 0, **kwargs):
  config = lambda layers, heads, dim: DecoderConfig(model_type="llama", vocab_size=16, hidden_size=16,
                                                     intermediate_size=16, num_layers=layers, num_heads=heads,
                                                     num_kv_heads=heads, head_dim=dim)
  kwargs.setdefault("hidden_size", 16)
  return fuser.make_fusers(layer_map, config(num_source, SOURCE_HEADS, SOURCE_DIM),
                           config(len(layer_map), TARGET_HEADS, TARGET_DIM), rngs=nnx.Rngs(seed), **kwargs)


def _bits(x) -> np.ndarray:
  """Raw bits, so -0.0 != +0.0: "unchanged" means bit for bit, not merely equal as numbers."""
  x = np.asarray(x)
  return x.view(np.dtype(f"u{x.dtype.itemsize}"))


def _with_negative_zeros(x: jax.Array) -> jax.Array:
  """Some -0.0 entries: target + 0.0 * delta would turn them into +0.0, which only a bit comparison sees."""
  return x.at[..., 0].set(-0.0)


@pytest.mark.parametrize("mode", ["gates_off", "hard_closed", "soft_closed"])
def test_closed_gates_leave_the_cache_bit_for_bit(mode):
  layer_map = alignment.terminal_layer_map(3, 4)
  sk, sv, tk, tv = _caches(3, 4)
  tk, tv = _with_negative_zeros(tk), _with_negative_zeros(tv)
  if mode == "gates_off":  # open gates, switched off
    fusers, kw = _fusers(layer_map, 3, gate_init=3.0, output_init_scale=1.0), dict(gates_off=True, hard=True)
  elif mode == "hard_closed":
    fusers, kw = _fusers(layer_map, 3, gate_init=-0.5, output_init_scale=1.0), dict(hard=True)
  else:  # a soft gate that underflows to exactly 0: logit -200 at temperature 1
    fusers, kw = _fusers(layer_map, 3, gate_init=-200.0, output_init_scale=1.0), dict(temperature=1.0)
  k, v = fuser.fuse_cache(fusers, layer_map, sk, sv, tk, tv, **kw)
  assert k.dtype == tk.dtype and v.dtype == tv.dtype
  np.testing.assert_array_equal(_bits(k), _bits(tk))
  np.testing.assert_array_equal(_bits(v), _bits(tv))


def test_open_gate_changes_the_fused_layers_only():
  layer_map = alignment.terminal_layer_map(2, 4)  # [None, None, 0, 1]
  sk, sv, tk, tv = _caches(2, 4)
  fusers = _fusers(layer_map, 2, gate_init=1.0, output_init_scale=1.0)
  k, v = fuser.fuse_cache(fusers, layer_map, sk, sv, tk, tv, hard=True)
  for out, target in ((k, tk), (v, tv)):
    np.testing.assert_array_equal(_bits(out[:2]), _bits(target[:2]))
    for t in (2, 3):
      changed = np.mean(np.asarray(out[t], np.float32) != np.asarray(target[t], np.float32))
      assert changed > 0.9, (t, changed)


def test_the_source_matters():
  """The correction reads the source: another source cache gives another fused cache."""
  layer_map = alignment.terminal_layer_map(2, 2)
  sk, sv, tk, tv = _caches(2, 2)
  sk2, sv2, _, _ = _caches(2, 2, seed=1)
  fusers = _fusers(layer_map, 2, gate_init=1.0, output_init_scale=1.0)
  k1, _ = fuser.fuse_cache(fusers, layer_map, sk, sv, tk, tv, hard=True)
  k2, _ = fuser.fuse_cache(fusers, layer_map, sk2, sv2, tk, tv, hard=True)
  assert not np.array_equal(np.asarray(k1, np.float32), np.asarray(k2, np.float32))


def test_different_heads_dims_and_depths():
  """Source 24 layers of 2 KV heads x 16, target 30 layers of 3 x 8: the bottom 6 target layers are not fused."""
  layer_map = alignment.terminal_layer_map(24, 30)
  sk, sv, tk, tv = _caches(24, 30)
  fusers = _fusers(layer_map, 24, gate_init=1.0, output_init_scale=1.0)
  assert len(fusers) == 24
  k, v = fuser.fuse_cache(fusers, layer_map, sk, sv, tk, tv, hard=True)
  assert k.shape == v.shape == (30, B, S, TARGET_HEADS, TARGET_DIM) and k.dtype == v.dtype == jnp.bfloat16
  np.testing.assert_array_equal(_bits(k[:6]), _bits(tk[:6]))
  np.testing.assert_array_equal(_bits(v[:6]), _bits(tv[:6]))
  differs = [not np.array_equal(np.asarray(k[t], np.float32), np.asarray(tk[t], np.float32)) for t in range(6, 30)]
  assert all(differs)
  for i, t in ((0, 6), (11, 17), (23, 29)):  # target layer t is fusers[t - 6] reading source layer t - 6
    expected_k, expected_v = fusers[i](sk[t - 6], sv[t - 6], tk[t], tv[t], hard=True)
    np.testing.assert_array_equal(_bits(k[t]), _bits(expected_k))
    np.testing.assert_array_equal(_bits(v[t]), _bits(expected_v))


def test_untrained_fuser_perturbs_little():
  layer_map = alignment.terminal_layer_map(2, 2)
  sk, sv, tk, tv = _caches(2, 2, dtype=jnp.float32)
  k, _ = fuser.fuse_cache(_fusers(layer_map, 2, gate_init=1.0), layer_map, sk, sv, tk, tv, hard=True)
  relative = float(jnp.linalg.norm(k - tk) / jnp.linalg.norm(tk))
  assert 0 < relative < 0.02, relative


def test_invalid_slots_are_kept():
  """fuse_kv_cache fuses only the slots where both caches hold a token (padding, -1 alignments stay)."""
  layer_map = alignment.terminal_layer_map(2, 2)
  sk, sv, tk, tv = _caches(2, 2)
  target_valid = jnp.ones((B, S), bool).at[:, 0].set(False)  # left padding
  source_valid = jnp.ones((B, S), bool).at[1, 3].set(False)  # a target token with no source token
  idx = jnp.zeros((), jnp.int32)
  source = KVCache(k=sk, v=sv, valid=source_valid, next_position=jnp.zeros((B,), jnp.int32), index=idx)
  target = KVCache(k=tk, v=tv, valid=target_valid, next_position=jnp.full((B,), 4, jnp.int32), index=idx + S)
  fusers = _fusers(layer_map, 2, gate_init=1.0, output_init_scale=1.0)
  out = fuser.fuse_kv_cache(fusers, layer_map, source, target, hard=True)
  assert out.valid is target.valid and out.index is target.index and out.next_position is target.next_position
  both = np.asarray(source_valid & target_valid)
  for fused, orig in ((out.k, tk), (out.v, tv)):
    np.testing.assert_array_equal(_bits(fused)[:, ~both], _bits(orig)[:, ~both])
    assert (np.asarray(fused, np.float32)[:, both] != np.asarray(orig, np.float32)[:, both]).mean() > 0.9


def test_jit_matches_eager():
  layer_map = alignment.terminal_layer_map(2, 3)
  sk, sv, tk, tv = _caches(2, 3)
  fusers = _fusers(layer_map, 2, gate_init=1.0, output_init_scale=1.0)
  jitted = nnx.jit(lambda f, *caches: fuser.fuse_cache(f, layer_map, *caches, hard=True))
  for a, b in zip(jitted(fusers, sk, sv, tk, tv), fuser.fuse_cache(fusers, layer_map, sk, sv, tk, tv, hard=True)):
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=1e-2)


def test_gradients_reach_every_parameter():
  layer_map = alignment.terminal_layer_map(2, 3)
  sk, sv, tk, tv = _caches(2, 3, dtype=jnp.float32)
  _, _, goal_k, goal_v = _caches(2, 3, dtype=jnp.float32, seed=2)
  fusers = _fusers(layer_map, 2, gate_init=0.5)

  def loss(fusers):
    k, v = fuser.fuse_cache(fusers, layer_map, sk, sv, tk, tv, temperature=1.0, key=jax.random.key(3))
    return jnp.mean((k - goal_k) ** 2) + jnp.mean((v - goal_v) ** 2)

  grads = nnx.grad(loss)(fusers)
  leaves = jax.tree_util.tree_leaves_with_path(nnx.state(grads, nnx.Param))
  names = {jax.tree_util.keystr(p) for p, _ in leaves}
  assert len(leaves) == 2 * (2 * 3 * 2 + 2 + 1)  # fusers x (branches x linears x (kernel, bias) + heads + gate)
  for path, g in leaves:
    g = np.asarray(g)
    assert np.isfinite(g).all() and np.abs(g).max() > 0, jax.tree_util.keystr(path)
  assert any("gate_logit" in n for n in names) and any("key_head_logits" in n for n in names)
  gates = jax.tree_util.tree_leaves(nnx.state(fusers, fuser.GateParam))
  assert len(gates) == 2 and all(g.shape == () for g in gates)  # the filter selects the gates and nothing else
  rest = jax.tree_util.tree_leaves(nnx.state(fusers, nnx.All(nnx.Param, nnx.Not(fuser.GateParam))))
  assert len(rest) == len(leaves) - 2


def test_hard_gate_is_exactly_0_or_1():
  logits = jnp.asarray([-3.0, -1e-6, -0.0, 0.0, 1e-6, 4.0])
  g = np.asarray(fuser.gate(logits, temperature=0.3, key=jax.random.key(0), hard=True))
  assert g.dtype == np.float32
  np.testing.assert_array_equal(g, [0, 0, 0, 0, 1, 1])


def _samples(logit: float, temperature: float, n: int = 20000) -> np.ndarray:
  keys = jax.random.split(jax.random.key(0), n)
  return np.asarray(jax.vmap(lambda k: fuser.gate(jnp.float32(logit), temperature=temperature, key=k,
                                                  hard=False))(keys))


def _expected_relaxed_mean(logit: float) -> float:
  """E[sigmoid(logit + L)], L standard logistic: what the temperature-1 sample averages to (by quadrature)."""
  x = np.linspace(-40, 40, 200001)
  sig = lambda z: 0.5 * (1 + np.tanh(z / 2))
  return float(np.trapezoid(sig(logit + x) * sig(x) * (1 - sig(x)), x))


def test_gumbel_sigmoid_statistics():
  sigmoid = lambda z: 1 / (1 + np.exp(-z))
  at_zero = _samples(0.0, 1.0)
  assert abs(at_zero.mean() - 0.5) < 0.01
  warm = _samples(1.0, 1.0)
  # At temperature 1 the sample is on (> 0.5) with probability sigmoid(logit); its mean is the smoother
  # E[sigmoid(logit + L)] (0.661 for logit 1, below sigmoid(1) = 0.731).
  assert abs((warm > 0.5).mean() - sigmoid(1.0)) < 0.01
  assert abs(warm.mean() - _expected_relaxed_mean(1.0)) < 0.01
  assert ((warm > 0.05) & (warm < 0.95)).mean() > 0.5  # soft: most samples are far from 0 and 1
  cold = _samples(1.0, 0.01)
  assert abs(cold.mean() - sigmoid(1.0)) < 0.01  # as the temperature goes to 0 the mean goes to sigmoid(logit)
  assert ((cold < 0.01) | (cold > 0.99)).mean() > 0.97  # and the samples become near-binary
  np.testing.assert_allclose(fuser.gate(jnp.float32(1.0), temperature=0.5, key=None, hard=False), sigmoid(2.0),
                             rtol=1e-6)


def test_anneal_temperature_schedule():
  t = lambda step: float(fuser.anneal_temperature(step, 2.0, 0.02, 100))
  assert t(0) == pytest.approx(2.0) and t(100) == pytest.approx(0.02) and t(1000) == pytest.approx(0.02)
  assert t(50) == pytest.approx(0.2, rel=1e-5)  # exponential: halfway is the geometric mean
  assert t(-5) == pytest.approx(2.0)
  values = [t(s) for s in range(0, 101, 10)]
  assert all(a > b for a, b in zip(values, values[1:]))
  assert float(jax.jit(lambda s: fuser.anneal_temperature(s, 2.0, 0.02, 100))(100)) == pytest.approx(0.02)
  assert float(fuser.anneal_temperature(7, 1.0, 0.1, 0)) == pytest.approx(0.1)
  for bad in (dict(start=0.0, end=0.1, steps=10), dict(start=1.0, end=-0.1, steps=10),
              dict(start=1.0, end=0.1, steps=-1)):
    with pytest.raises(ValueError, match="anneal_temperature"):
      fuser.anneal_temperature(0, **bad)
  with pytest.raises(ValueError, match="temperature must be > 0"):
    fuser.gate(jnp.float32(0.0), temperature=0.0, key=None, hard=False)


def test_terminal_layer_map():
  assert alignment.terminal_layer_map(4, 4) == [0, 1, 2, 3]
  assert alignment.terminal_layer_map(2, 4) == [None, None, 0, 1]  # deeper target: its bottom layers unfused
  assert alignment.terminal_layer_map(5, 3) == [2, 3, 4]  # deeper source: its bottom layers unread
  deep = alignment.terminal_layer_map(24, 30)
  assert deep[:6] == [None] * 6 and deep[6:] == list(range(24))
  for bad in ((0, 3), (-1, 3), (3, -2), (3, 2.0), (True, 3)):
    with pytest.raises(ValueError, match="num_(source|target)_layers"):
      alignment.terminal_layer_map(*bad)


def test_token_alignment_hand_made():
  # "Hello world!" in two tokenizations; both start with an empty BOS span.
  source = [(0, 0), (0, 5), (5, 11), (11, 12)]  # <s> | Hello | " world" | !
  target = [(0, 0), (0, 3), (3, 5), (5, 9), (9, 12)]  # <s> | Hel | lo | " wor" | "ld!"
  index = alignment.token_alignment(source, target)
  assert index.dtype == np.int32
  np.testing.assert_array_equal(index, [0, 1, 1, 2, 3])  # "ld!" overlaps " world" and "!": the last one
  np.testing.assert_array_equal(alignment.token_alignment(source[1:], target), [-1, 0, 0, 1, 2])  # no source BOS
  np.testing.assert_array_equal(alignment.token_alignment(target, source), [0, 2, 4, 4])
  # A gap the source leaves out (the space) reads the nearest preceding source token.
  np.testing.assert_array_equal(alignment.token_alignment([(0, 5), (6, 11)], [(0, 5), (5, 6), (6, 11)]),
                                [0, 0, 1])
  # Byte-level pieces of one character share its span; an empty end-of-text span reads the last token.
  np.testing.assert_array_equal(alignment.token_alignment([(0, 1), (0, 1), (1, 2)], [(0, 2), (2, 2)]), [2, 2])
  assert alignment.token_alignment(source, np.zeros((0, 2), int)).shape == (0,)


@pytest.mark.parametrize("offsets, message", [
    ([(0, 5), (0, 0)], "not in text order"),  # HF's (0, 0) for a trailing special token
    ([(3, 5), (0, 3)], "not in text order"),
    ([(0, 5), (6, 4)], "ends before it starts"),
    ([(-1, 2)], "starts before the text"),
    ([0, 5, 6], r"\(num_tokens, 2\)"),
    ([(0.0, 5.0)], "integer character offsets"),
])
def test_token_alignment_rejects_bad_spans(offsets, message):
  with pytest.raises(ValueError, match=message):
    alignment.token_alignment([(0, 5)], offsets)
  with pytest.raises(ValueError, match="source_offsets"):
    alignment.token_alignment(offsets, [(0, 5)])


def test_gather_positions():
  x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2) + 1  # no zeros, so a zero is a gathered "none"
  rows, valid = alignment.gather_positions(x, np.asarray([2, -1, 0, 2], np.int32))
  assert rows.shape == (2, 4, 2) and isinstance(rows, np.ndarray)
  np.testing.assert_array_equal(rows[:, 0], x[:, 2])
  np.testing.assert_array_equal(rows[:, 1], np.zeros((2, 2)))
  np.testing.assert_array_equal(rows[:, 2], x[:, 0])
  np.testing.assert_array_equal(valid, [[True, False, True, True]] * 2)
  per_row, valid = alignment.gather_positions(jnp.asarray(x), np.asarray([[0, 1], [-1, 2]]))
  assert isinstance(per_row, jax.Array)
  np.testing.assert_array_equal(np.asarray(per_row), [[x[0, 0], x[0, 1]], [[0, 0], x[1, 2]]])
  np.testing.assert_array_equal(valid, [[True, True], [False, True]])
  jitted, _ = jax.jit(lambda a: alignment.gather_positions(a, np.asarray([-1, 1])))(jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(jitted), np.stack([np.zeros((2, 2)), x[:, 1]], axis=1))
  for bad, message in ((np.asarray([3]), "outside"), (np.asarray([-2]), "outside"),
                       (np.asarray([0.5]), "integer"), (np.zeros((3, 1), int), r"\(T,\) or \(B=2, T\)")):
    with pytest.raises(ValueError, match=message):
      alignment.gather_positions(x, bad)


def test_fuser_shape_and_map_errors():
  layer_map = alignment.terminal_layer_map(2, 3)
  sk, sv, tk, tv = _caches(2, 3)
  fusers = _fusers(layer_map, 2)
  with pytest.raises(ValueError, match="source_k must be"):
    fusers[0](sk[0, ..., :1, :], sv[0], tk[0], tv[0])
  with pytest.raises(ValueError, match="layer_map has 2 entries"):
    fuser.fuse_cache(fusers, [0, 1], sk, sv, tk, tv)
  with pytest.raises(ValueError, match="not a layer of the 2-layer source"):
    fuser.fuse_cache(fusers, [None, 1, 2], sk, sv, tk, tv)
  with pytest.raises(ValueError, match="1 fusers for 2 fused layers"):
    fuser.fuse_cache(fusers[:1], layer_map, sk, sv, tk, tv)
  with pytest.raises(ValueError, match="hidden_size must be an int >= 1"):
    fuser.Fuser(source_heads=2, source_head_dim=4, target_heads=2, target_head_dim=4, hidden_size=0,
                rngs=nnx.Rngs(0))
