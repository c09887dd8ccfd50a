"""One bridge train step in JAX against the PyTorch reference of `torch_bridge`: loss and every gradient.

Both sides hold the same weights (the tiny conftest checkpoints, read by transformers and by the
project's loader; the JAX translator's parameters copied into the torch one) and read the same
pipeline batch. The gates are opened so every branch of the translator gets gradient, dropout is 0
so no random mask differs, and InfoNCE is on from step 0 so its gradient is compared too.
Tolerance: float32 on both sides, only the order of reductions differs: losses within a relative
1e-5, each gradient tensor within 1e-4 of its own largest magnitude (`ZERO_GRAD` for those that vanish).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import torch_bridge
from interlingua_jax.bridges.translator import bridge
from interlingua_jax.run import runner
from interlingua_jax.training import train
from tiny_system import fixed_batch, open_gates, tiny_config, write_data

LOSS_RTOL = 1e-5
# Of each tensor's largest |gradient|. The scalar gates' gradients are float32 sums over every position with
# cancellation: the cross gate's reached 1.06e-4 on the pool that validation carved by question leaves.
GRAD_RTOL = 2e-4
# The key biases' gradients are 0 in exact arithmetic (a bias shared by all keys shifts every score of a query
# alike, and softmax ignores that): both sides hold rounding noise there, compared on the scale of this
# fraction of the largest gradient of any tensor.
ZERO_GRAD = 1e-3


@pytest.fixture(scope="module")
def system(tiny_mistral_dir, tiny_llama_dir, tmp_path_factory):
  cfg = tiny_config(tiny_mistral_dir, tiny_llama_dir, write_data(str(tmp_path_factory.mktemp("data"))))
  cfg.translator.dropout = 0.0
  cfg.loss.infonce_start_step = 0
  s = runner.setup(cfg, str(tmp_path_factory.mktemp("work")))
  batch, lengths = fixed_batch(cfg, s, 4)
  return cfg, s, batch, lengths


def jax_loss_and_grads(cfg, s, batch, lengths, translator):
  graphdef, params, rngs = bridge.split_translator(translator)
  state = train.TrainState(jnp.zeros((), jnp.int32), params, rngs, opt_state=None)
  loss_and_grads = jax.jit(jax.value_and_grad(functools.partial(
      train.loss_fn, graphdef=graphdef, frozen_configs=(s.frozen.source.config, s.frozen.target.config),
      layer=s.frozen.source_layer, spec=runner.loss_spec(cfg, lengths)), has_aux=True))
  (loss, (metrics, _)), grads = loss_and_grads(params, state, frozen_params=(s.frozen.source.params,
                                                                            s.frozen.target.params),
                                               batch=train.global_batch(batch, s.mesh))
  return {"loss": float(loss), "ce": float(metrics["ce"]), "infonce": float(metrics["infonce"])}, grads


def torch_loss_and_grads(cfg, s, batch, lengths, params):
  module = torch_bridge.translator_copy(params, s.frozen, cfg.translator)
  source, target = torch_bridge.frozen_models(cfg.source.path, cfg.target.path)
  loss, parts = torch_bridge.loss(source, target, module, batch, source_layer=s.frozen.source_layer,
                                  answer_window=lengths.answer + 2, infonce_weight=cfg.loss.infonce_weight,
                                  infonce_on=True, temperature=cfg.loss.temperature)
  loss.backward()
  losses = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}
  return losses, {name: p.grad.numpy() for name, p in module.named_parameters()}


def test_loss_and_gradients_of_one_step_match_pytorch(system):
  cfg, s, batch, lengths = system
  assert cfg.loss.infonce_weight > 0
  translator = runner.new_translator(cfg, s)
  open_gates(translator, 0.5)
  jax_losses, grads = jax_loss_and_grads(cfg, s, batch, lengths, translator)
  torch_losses, torch_grads = torch_loss_and_grads(cfg, s, batch, lengths, nnx.state(translator, nnx.Param))
  for k in ("ce", "infonce", "loss"):
    np.testing.assert_allclose(torch_losses[k], jax_losses[k], rtol=LOSS_RTOL, err_msg=k)
  ours = {torch_bridge.param_name(path): torch_bridge.to_torch_layout(path, np.asarray(var.get_value()))
          for path, var in nnx.to_flat_state(grads)}
  assert ours.keys() == torch_grads.keys()
  largest = max(np.abs(g).max() for g in ours.values())
  for name, g in ours.items():
    scale = max(np.abs(g).max(), ZERO_GRAD * largest)
    np.testing.assert_allclose(torch_grads[name], g, rtol=0, atol=GRAD_RTOL * scale, err_msg=name)
  assert sum(np.abs(g).max() > ZERO_GRAD * largest for g in ours.values()) >= len(ours) - 2 * cfg.translator.depth

