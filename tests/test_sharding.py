"""Mesh construction, partition rules, and sharded forward passes on 4 simulated CPU devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from interlingua_jax import models
from interlingua_jax.models import sharding
from interlingua_jax.models.config import DecoderConfig


def small_config(**overrides):
  base = dict(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4,
              num_kv_heads=2, head_dim=8)
  return DecoderConfig(**(base | overrides))


def test_make_mesh_shapes():
  assert jax.device_count() == 4
  assert dict(sharding.make_mesh().shape) == {"data": 4, "model": 1}
  assert dict(sharding.make_mesh(data=2, model=2).shape) == {"data": 2, "model": 2}
  assert dict(sharding.make_mesh(model=2).shape) == {"data": 2, "model": 2}
  assert sharding.make_mesh(data=1, model=1).devices.size == 1
  with pytest.raises(ValueError, match="needs 8 devices but only 4"):
    sharding.make_mesh(data=4, model=2)
  with pytest.raises(ValueError, match="model=3 does not divide the 4 available devices"):
    sharding.make_mesh(model=3)


def test_partition_rules():
  mesh = sharding.make_mesh(data=2, model=2)
  specs = jax.tree.map(lambda s: s.spec, sharding.param_shardings(small_config(), mesh))
  layers = specs["layers"]
  assert layers["q"] == P(None, None, "model", None) and layers["k"] == P(None, None, "model", None)
  assert layers["o"] == P(None, "model", None, None)
  assert layers["gate"] == P(None, None, "model") and layers["down"] == P(None, "model", None)
  assert layers["attn_norm"] == P(None, None) and specs["final_norm"] == P(None)
  assert specs["embed"] == P(None, "model") and specs["lm_head"] == P(None, "model")
  single = sharding.make_mesh(data=1, model=1)
  assert all(s.spec == P(*[None] * len(s.spec)) for s in jax.tree.leaves(sharding.param_shardings(small_config(),
                                                                                                  single)))


def test_indivisible_dimension_falls_back_to_replication():
  mesh = sharding.make_mesh(data=1, model=4)
  specs = jax.tree.map(lambda s: s.spec, sharding.param_shardings(small_config(), mesh))
  assert specs["layers"]["k"] == P()  # 2 kv heads over 4 devices
  assert specs["layers"]["q"] == P(None, None, "model", None)  # 4 heads do divide
  odd = jax.tree.map(lambda s: s.spec, sharding.param_shardings(small_config(vocab_size=63), mesh))
  assert odd["lm_head"] == P()


def test_init_params_are_created_sharded():
  mesh = sharding.make_mesh(data=2, model=2)
  params = models.init_params(small_config(), jax.random.key(0), mesh=mesh)
  q = params["layers"]["q"]
  assert q.sharding.spec == P(None, None, "model", None)
  assert {s.data.shape for s in q.addressable_shards} == {(2, 32, 2, 8)}
  assert float(jnp.std(q)) == pytest.approx(0.02, rel=0.1)


def test_same_logits_on_a_data2_model2_mesh(tiny_llama_dir):
  single, _ = models.from_pretrained(tiny_llama_dir, dtype=jnp.float32)
  mesh = sharding.make_mesh(data=2, model=2)
  sharded, _ = models.from_pretrained(tiny_llama_dir, dtype=jnp.float32, mesh=mesh)
  assert sharded.params["layers"]["gate"].sharding.spec == P(None, None, "model")
  assert {s.data.shape[-1] for s in sharded.params["layers"]["gate"].addressable_shards} == {64}
  rng = np.random.RandomState(0)
  ids = rng.randint(3, single.config.vocab_size, size=(4, 16))
  mask = np.ones_like(ids)
  mask[1, :5] = mask[3, :9] = 0
  batch = jax.sharding.NamedSharding(mesh, P("data"))
  ref = np.asarray(single(input_ids=jnp.asarray(ids), attention_mask=jnp.asarray(mask)).logits)
  out = sharded(input_ids=jax.device_put(ids, batch), attention_mask=jax.device_put(mask, batch))
  assert len(out.logits.sharding.device_set) == 4
  real = mask.astype(bool)
  assert np.abs(np.asarray(out.logits)[real] - ref[real]).max() / np.abs(ref[real]).max() <= 1e-5
