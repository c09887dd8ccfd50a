"""Unit tests of the shared-interlingua pieces: byte encoder, latent pooler, adapter, losses."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from interlingua_jax import models
from interlingua_jax.data import layout
from interlingua_jax.bridges.interlingua import (Adapter, ByteEncoder, SharedInterlingua, StatesEncoder, encode_bytes,
                                         first_k_mask, interlingua_loss, sinusoidal_positions, target_loss)
from interlingua_jax.models.config import ParamSpec, param_layout


def test_encode_bytes_is_utf8_plus_one_right_padded_and_capped():
  ids, mask = encode_bytes(["héllo", "", "abcdefghij"], max_len=8)
  assert ids.shape == mask.shape == (3, 8) and ids.dtype == np.int32
  np.testing.assert_array_equal(ids[0, :6], np.frombuffer("héllo".encode(), np.uint8) + 1)  # é is 2 bytes
  np.testing.assert_array_equal(mask.sum(1), [6, 0, 8])
  assert (ids[mask == 0] == 0).all() and bytes((ids[2] - 1).astype(np.uint8)).decode() == "abcdefgh"
  with pytest.raises(ValueError, match="max_len must be >= 1"):
    encode_bytes(["a"], max_len=0)


def test_sinusoidal_positions_follow_the_formula():
  table = sinusoidal_positions(50, 16)
  for p, i in [(0, 0), (3, 2), (49, 7)]:
    angle = p / 10000 ** (2 * i / 16)
    assert table[p, 2 * i] == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[p, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.fixture(scope="module")
def shared():
  """One interlingua (d_z=32, M=5) for a d=32 and a d=24 target, built once: eager NNX init is slow on CPU."""
  rngs = nnx.Rngs(0)
  encoder = ByteEncoder(dim=32, depth=2, num_heads=4, max_len=64, rngs=rngs)
  return SharedInterlingua(encoder=encoder, target_dims={"llama": 32, "qwen": 24}, num_soft_tokens=5, latent_dim=32,
                           num_heads=4, rngs=rngs)


@pytest.fixture(scope="module")
def parts(shared):
  return shared.encoder, shared.pooler


@nnx.jit
def latents(encoder, pooler, ids, mask):
  return pooler(encoder(ids, mask), mask)


def test_z_has_m_rows_ignores_padding_and_depends_on_the_text(parts):
  encoder, pooler = parts
  alone = latents(encoder, pooler, *encode_bytes(["où est la gare ?"], max_len=64))  # 17 bytes, no padding
  ids, mask = encode_bytes(["où est la gare ?", "what is 2 + 3? and a longer text that pads the first row"], 64)
  batch = latents(encoder, pooler, ids, mask)
  assert batch.shape == (2, 5, 32)
  np.testing.assert_allclose(np.asarray(batch[0]), np.asarray(alone[0]), atol=1e-5)
  assert np.abs(np.asarray(batch[0] - batch[1])).max() > 1e-2
  with pytest.raises(ValueError, match="max_len=64"):
    encoder(jnp.ones((1, 65), jnp.int32), jnp.ones((1, 65), jnp.int32))


def test_states_encoder_pools_frozen_lm_states_under_their_mask():
  """The second encoder kind: source-LM states (here random, d_src=40) through the same pooler and adapters."""
  rngs = nnx.Rngs(2)
  interlingua = SharedInterlingua(encoder=StatesEncoder(source_dim=40, dim=32, rngs=rngs), target_dims={"t": 24},
                                  num_soft_tokens=5, latent_dim=32, num_heads=4, rngs=rngs)
  rng = np.random.RandomState(3)
  states = rng.randn(2, 9, 40).astype(np.float32)
  mask = np.ones((2, 9), np.int32)
  mask[1, :4] = 0  # left padding, as the source LM's batches have
  out = interlingua(jnp.asarray(states), jnp.asarray(mask))["t"]
  assert out.shape == (2, 5, 24)
  states[1, :4] = 100 * rng.randn(4, 40)  # what sits under the padding must not matter
  np.testing.assert_allclose(np.asarray(interlingua(jnp.asarray(states), jnp.asarray(mask))["t"]), np.asarray(out),
                             atol=1e-5)
  with pytest.raises(ValueError, match=r"states must be \(batch, seq, 40\)"):
    interlingua.encoder(jnp.zeros((2, 9, 32)), jnp.asarray(mask))


def test_adapter_calibrates_rms_only_when_asked():
  z = jnp.asarray(np.random.RandomState(0).randn(2, 5, 32), jnp.float32)
  raw = np.asarray(Adapter(latent_dim=32, target_dim=48, rngs=nnx.Rngs(1))(z))
  y = np.asarray(Adapter(latent_dim=32, target_dim=48, target_embed_rms=0.015, rngs=nnx.Rngs(1))(z))
  assert y.shape == raw.shape == (2, 5, 48)
  rms = lambda a: np.sqrt((a ** 2).mean(-1, keepdims=True))
  np.testing.assert_allclose(rms(y), 0.015, rtol=1e-4)
  assert np.abs(rms(raw) - 0.015).max() > 0.1  # the raw scale is far off: calibration did the work
  np.testing.assert_allclose(y / 0.015, raw / rms(raw), rtol=1e-4, atol=1e-5)  # same directions
  with pytest.raises(ValueError, match="target_embed_rms must be positive"):
    Adapter(latent_dim=32, target_dim=48, target_embed_rms=0.0, rngs=nnx.Rngs(1))
  with pytest.raises(ValueError, match="Z must end in d_z=32"):
    Adapter(latent_dim=32, target_dim=48, rngs=nnx.Rngs(1))(z[..., :16])


def test_first_token_and_k_token_losses():
  rng = np.random.RandomState(0)
  logits = rng.randn(2, 7, 11).astype(np.float32)
  labels = rng.randint(0, 11, size=(2, 7))
  loss_mask = np.array([[0, 0, 1, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0, 0]])  # answers of 4 and 2 tokens
  np.testing.assert_array_equal(first_k_mask(jnp.asarray(loss_mask), 3),
                                [[0, 0, 1, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0, 0]])
  nll = jax.nn.logsumexp(logits, -1) - np.take_along_axis(logits, labels[..., None], -1)[..., 0]
  first = (nll[0, 2] + nll[1, 1]) / 2
  k3 = (nll[0, 2] + nll[0, 3] + nll[0, 4] + nll[1, 1] + nll[1, 2]) / 5
  loss, terms = interlingua_loss(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(loss_mask), k=3,
                                 first_token_weight=0.5)
  assert float(terms["first_token"]) == pytest.approx(float(first), rel=1e-6)
  assert float(terms["k_tokens"]) == pytest.approx(float(k3), rel=1e-6)
  assert float(loss) == pytest.approx(0.5 * float(first) + float(k3), rel=1e-6)
  grad = jax.grad(lambda l: interlingua_loss(l, jnp.asarray(labels), jnp.asarray(loss_mask), k=3,
                                             first_token_weight=0.5)[0])(jnp.asarray(logits))
  touched = np.abs(np.asarray(grad)).sum(-1) > 0
  np.testing.assert_array_equal(touched, np.asarray(first_k_mask(jnp.asarray(loss_mask), 3)).astype(bool))
  with pytest.raises(ValueError, match="k must be >= 1"):
    first_k_mask(jnp.asarray(loss_mask), 0)



def test_one_z_serves_two_targets_of_different_families(shared, tiny_tokenizer):
  """A Llama (BOS, d=32) and a Qwen3 (no BOS, d=24) read one Z through their own adapters: the summed loss
  reaches the shared encoder and pooler and both adapters."""
  shape = dict(vocab_size=len(tiny_tokenizer), intermediate_size=48, num_layers=1, num_heads=2, num_kv_heads=1,
               head_dim=12, eos_token_id=(2,), pad_token_id=0)
  configs = {"llama": models.DecoderConfig(model_type="llama", hidden_size=32, bos_token_id=1, **shape),
             "qwen": models.DecoderConfig(model_type="qwen3", hidden_size=24, bos_token_id=None, **shape)}
  rng = np.random.RandomState(0)  # numpy weights: no init_params compile for a throwaway model
  frozen = {name: jax.tree.map(lambda s: jnp.asarray(0.1 * rng.randn(*s.shape), jnp.float32), param_layout(c),
                               is_leaf=lambda x: isinstance(x, ParamSpec)) for name, c in configs.items()}
  ids, mask = encode_bytes(["Ann has 12 apples and buys 7 more.", "Which magazine was started first?"], 64)
  tokens = lambda text: tiny_tokenizer(text, add_special_tokens=False).input_ids
  batches = {name: layout.bridged_batch([tokens("Answer:")] * 2, [tokens(" 19"), tokens(" Arthur")],
                                        num_soft_tokens=5, seq_len=None, bos_id=c.bos_token_id, pad_id=0, eos_id=2)
             for name, c in configs.items()}

  @nnx.jit
  def grads(shared, frozen):
    def loss(shared):
      soft = shared(jnp.asarray(ids), jnp.asarray(mask))
      return sum(target_loss(soft[name], frozen[name], configs[name], batches[name], k=2, first_token_weight=1.0)[0]
                 for name in configs)
    return nnx.grad(loss)(shared)

  grads = grads(shared, frozen)
  for part in (grads.encoder, grads.pooler, grads.adapters["llama"], grads.adapters["qwen"]):
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(part))
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(part)) > 0
