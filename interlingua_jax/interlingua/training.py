"""One Z for N frozen targets, trained at once: the sum over targets of `target_loss`.

The state is the translator's `train.TrainState` (params = the latent module's parameters; `rngs`
holds its other variables, e.g. the byte encoder's fixed positions), so `train.fit` drives it with the
same checkpoints, exact resume, metrics and best-on-validation selection. The step is jitted on the
run's mesh like the translator's: batch over "data", every target's weights over "model".
"""
import dataclasses
from collections.abc import Callable, Mapping

import jax
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax import bridge
from interlingua_jax.interlingua import batches
from interlingua_jax.interlingua.shared import target_loss
from interlingua_jax.models import DecoderConfig
from interlingua_jax.sharding import param_shardings
from interlingua_jax.train import TrainState


@dataclasses.dataclass(frozen=True)
class LossSpec:
  k_tokens: int
  first_token_weight: float
  remat: bool = False
  attention_impl: str | None = None


def loss_fn(params, state: TrainState, graphdef, target_params: Mapping, batch, *,
            configs: Mapping[str, DecoderConfig], spec: LossSpec):
  """Σ_t target_loss_t, and per target its terms as `<name>/<term>` metrics."""
  module = bridge.merge_translator(graphdef, params, state.rngs)
  soft = module(batch[batches.BYTES], batch[batches.BYTES_MASK])
  total, metrics = 0.0, {}
  for name, config in configs.items():
    loss, terms = target_loss(soft[name], target_params[name], config, batches.target_batch(batch, name),
                              k=spec.k_tokens, first_token_weight=spec.first_token_weight, remat=spec.remat,
                              attention_impl=spec.attention_impl)
    total = total + loss
    metrics.update({f"{name}/loss": loss, **{f"{name}/{k}": v for k, v in terms.items()}})
  return total, metrics


def train_step(state: TrainState, target_params, batch, *, graphdef, tx, schedule, configs, spec):
  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state, graphdef, target_params,
                                                                      batch, configs=configs, spec=spec)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), lr=schedule(state.step))
  return TrainState(state.step + 1, params, state.rngs, opt_state), metrics


def make_train_step(*, mesh: Mesh, configs: Mapping[str, DecoderConfig], graphdef, tx, schedule,
                    spec: LossSpec) -> Callable:
  """(state, {name: target params}, batch) -> (state, metrics), jitted with the translator step's shardings."""
  replicated = NamedSharding(mesh, P())
  frozen_shardings = {name: param_shardings(config, mesh) for name, config in configs.items()}
  fn = lambda state, target_params, batch: train_step(state, target_params, batch, graphdef=graphdef, tx=tx,
                                                      schedule=schedule, configs=configs, spec=spec)
  return jax.jit(fn, in_shardings=(replicated, frozen_shardings, NamedSharding(mesh, P("data"))),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def soft_tokens(graphdef, params, rest, ids, mask, name: str):
  """Target `name`'s soft tokens (B, M, d_model) of right-padded byte ids: what evaluation places."""
  return bridge.merge_translator(graphdef, params, rest)(ids, mask)[name]


soft_tokens_jit = jax.jit(soft_tokens, static_argnames=("graphdef", "name"))
