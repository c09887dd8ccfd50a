"""One bridge train step in JAX against the PyTorch reference of `torch_bridge`: loss and every gradient.

Both sides hold the same weights (the tiny conftest checkpoints, read by transformers and by the
project's loader; the JAX translator's parameters copied into the torch one) and read the same
pipeline batch. The gates are opened so every branch of the translator gets gradient, dropout is 0
so no random mask differs, and InfoNCE is on from step 0 so its gradient is compared too.
Tolerance: float32 on both sides, only the order of reductions differs: losses within a relative
1e-5, each gradient tensor within 1e-4 of its own largest magnitude (`ZERO_GRAD` for those that vanish).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import torch_bridge
from interlingua_jax.bridges.translator.loss import LossSpec, translator_loss
from interlingua_jax.models.frozen import Frozen
from interlingua_jax.training.state import global_batch, merge_module, split_module
from tiny_system import fixed_batch, frozen, frozen_params, open_gates, system as make_system, tiny_config, write_data

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
  run, kind, s = make_system(cfg, tmp_path_factory.mktemp("work"))
  batch, lengths = fixed_batch(run, s, 4)
  return run, kind, s, batch, lengths


def jax_loss_and_grads(cfg, f: Frozen, s, batch, lengths, translator):
  """The translator's loss and its gradients as the train step computes them (`translator_loss`), step 0."""
  graphdef, params, rngs = split_module(translator)
  spec = LossSpec(f.source.config, f.target.config, f.source_layer, infonce_weight=cfg.loss.infonce_weight,
                  infonce_start_step=cfg.loss.infonce_start_step, temperature=cfg.loss.temperature,
                  answer_window=lengths.answer + 2)
  loss_of = lambda params, batch: translator_loss(merge_module(graphdef, params, rngs), frozen_params(s), batch,
                                                  jnp.zeros((), jnp.int32), spec=spec)
  (loss, metrics), grads = jax.jit(jax.value_and_grad(loss_of, has_aux=True))(params, global_batch(batch, s.mesh))
  return {"loss": float(loss), "ce": float(metrics["ce"]), "infonce": float(metrics["infonce"])}, grads


def torch_loss_and_grads(cfg, f: Frozen, batch, lengths, params):
  module = torch_bridge.translator_copy(params, f, cfg.translator)
  source, target = torch_bridge.frozen_models(cfg.source.path, cfg.target.path)
  loss, parts = torch_bridge.loss(source, target, module, batch, source_layer=f.source_layer,
                                  answer_window=lengths.answer + 2, infonce_weight=cfg.loss.infonce_weight,
                                  infonce_on=True, temperature=cfg.loss.temperature)
  loss.backward()
  losses = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}
  return losses, {name: p.grad.numpy() for name, p in module.named_parameters()}


def test_loss_and_gradients_of_one_step_match_pytorch(system):
  run, kind, s, batch, lengths = system
  cfg, f = run.cfg, frozen(run, kind, s)
  assert cfg.loss.infonce_weight > 0
  translator = kind.new_module(run, s)
  open_gates(translator, 0.5)
  jax_losses, grads = jax_loss_and_grads(cfg, f, s, batch, lengths, translator)
  torch_losses, torch_grads = torch_loss_and_grads(cfg, f, batch, lengths, nnx.state(translator, nnx.Param))
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

