"""The one train step, for any bridge kind: the kind gives a loss of its module, this makes the jitted step.

    loss, metrics = kind_loss(module, frozen_params, batch, step)     the module merged from the state
    grads = ∂loss/∂params                                            the bridge's parameters only
    params, opt_state = optimizer update                             in place (the state is donated)

Shardings: the batch over "data", the frozen weights as the kind lays them out (over "model"), the state
replicated.
"""
from collections.abc import Callable

import jax
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax.training.state import TrainState, merge_module, module_rest

# (module, frozen_params, batch, step) -> (loss, metrics): what a bridge kind trains
Loss = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]


def loss_and_rest(params, state: TrainState, graphdef, frozen_params, batch, *, loss: Loss):
  module = merge_module(graphdef, params, state.rngs)
  value, metrics = loss(module, frozen_params, batch, state.step)
  return value, (metrics, module_rest(module))


def train_step(state: TrainState, frozen_params, batch, *, graphdef, tx, schedule, loss: Loss):
  grad_fn = jax.value_and_grad(loss_and_rest, has_aux=True)
  (value, (metrics, rest)), grads = grad_fn(state.params, state, graphdef, frozen_params, batch, loss=loss)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=value, grad_norm=optax.tree.norm(grads), lr=schedule(state.step))
  return TrainState(state.step + 1, params, rest, opt_state), metrics


def make_train_step(*, mesh: Mesh, loss: Loss, frozen_shardings, graphdef, tx, schedule) -> Callable:
  """(state, frozen_params, batch) -> (state, metrics), jitted with explicit shardings; the state is donated."""
  replicated = NamedSharding(mesh, P())
  fn = lambda state, frozen_params, batch: train_step(state, frozen_params, batch, graphdef=graphdef, tx=tx,
                                                      schedule=schedule, loss=loss)
  return jax.jit(fn, in_shardings=(replicated, frozen_shardings, NamedSharding(mesh, P("data"))),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))
