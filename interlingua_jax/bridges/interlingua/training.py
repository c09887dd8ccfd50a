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

from interlingua_jax.bridges.translator import bridge
from interlingua_jax.bridges.interlingua import batches
from interlingua_jax.bridges.interlingua.shared import FrozenSource, encoder_inputs, target_loss
from interlingua_jax.models import DecoderConfig
from interlingua_jax.models.sharding import param_shardings
from interlingua_jax.training.train import TrainState


@dataclasses.dataclass(frozen=True)
class LossSpec:
  k_tokens: int
  first_token_weight: float
  remat: bool = False
  attention_impl: str | None = None
  source: FrozenSource | None = None  # the states encoder's frozen source LM; None for the byte encoder


def loss_fn(params, state: TrainState, graphdef, frozen_params: tuple, batch, *,
            configs: Mapping[str, DecoderConfig], spec: LossSpec):
  """Σ_t target_loss_t, and per target its terms as `<name>/<term>` metrics. frozen_params: (the source's
  params or None, {target name: params})."""
  source_params, target_params = frozen_params
  module = bridge.merge_translator(graphdef, params, state.rngs)
  mask = batch[batches.ENCODER_MASK]
  soft = module(encoder_inputs(spec.source, source_params, batch[batches.ENCODER_IDS], mask), mask)
  total, metrics = 0.0, {}
  for name, config in configs.items():
    loss, terms = target_loss(soft[name], target_params[name], config, batches.target_batch(batch, name),
                              k=spec.k_tokens, first_token_weight=spec.first_token_weight, remat=spec.remat,
                              attention_impl=spec.attention_impl)
    total = total + loss
    metrics.update({f"{name}/loss": loss, **{f"{name}/{k}": v for k, v in terms.items()}})
  return total, metrics


def train_step(state: TrainState, frozen_params, batch, *, graphdef, tx, schedule, configs, spec):
  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state, graphdef, frozen_params,
                                                                      batch, configs=configs, spec=spec)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads), lr=schedule(state.step))
  return TrainState(state.step + 1, params, state.rngs, opt_state), metrics


def make_train_step(*, mesh: Mesh, configs: Mapping[str, DecoderConfig], graphdef, tx, schedule,
                    spec: LossSpec) -> Callable:
  """(state, (source params or None, {name: target params}), batch) -> (state, metrics), jitted with the
  translator step's shardings."""
  replicated = NamedSharding(mesh, P())
  source_shardings = None if spec.source is None else param_shardings(spec.source.config, mesh)
  frozen_shardings = (source_shardings, {name: param_shardings(config, mesh) for name, config in configs.items()})
  fn = lambda state, frozen_params, batch: train_step(state, frozen_params, batch, graphdef=graphdef, tx=tx,
                                                      schedule=schedule, configs=configs, spec=spec)
  return jax.jit(fn, in_shardings=(replicated, frozen_shardings, NamedSharding(mesh, P("data"))),
                 out_shardings=(replicated, replicated), donate_argnums=(0,))


def soft_tokens(graphdef, params, rest, source_params, ids, mask, name: str, source: FrozenSource | None):
  """Target `name`'s soft tokens (B, M, d_model) of right-padded encoder ids: what evaluation places."""
  return bridge.merge_translator(graphdef, params, rest)(encoder_inputs(source, source_params, ids, mask), mask)[name]


soft_tokens_jit = jax.jit(soft_tokens, static_argnames=("graphdef", "name", "source"))
