"""The trainable module of any bridge kind as training state: split into arrays, merged back inside a step.

The frozen LLMs are parameter pytrees outside this state; the bridge is an NNX module whose parameters are the
only thing an optimizer sees (float32 master copies). Its other variables (a dropout stream, fixed tables such
as the byte encoder's positions) travel beside the parameters in `TrainState.rngs`.

The dropout RNG, in one place. NNX keeps a dropout stream inside the module as two variables: `key`, a typed
PRNG key array (dtype key<fry>), and `count`, a uint32 counter bumped by every draw. The stream is training
state (a resumed run must draw the same masks), but typed keys do not serialise with Orbax, so outside the
module it lives as raw key data (uint32[2]):

  split_module   module -> (graphdef, params, rest as key data)       at init
  merge_module   (graphdef, params, rest) -> module                    inside each jitted step
  module_rest    module -> rest as key data, with the advanced count   returned by the step

`merge_module` builds fresh Variables: NNX refuses to update (count += 1) a Variable created outside the
trace being run, and the step's gradient is such a trace.
"""
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax.training.checkpoints import Checkpoints, abstract_like


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
  """Everything that changes during training; the frozen LLMs are deliberately not in here."""
  step: jax.Array
  params: nnx.State  # the bridge's parameters, float32
  rngs: nnx.State  # its other variables as raw arrays: the dropout stream's key data and count, fixed tables
  opt_state: optax.OptState


def split_module(module: nnx.Module):
  """graphdef, float32 params, and every other variable with typed keys as raw key data (so Orbax can save it)."""
  graphdef, params, rest = nnx.split(module, nnx.Param, ...)
  return graphdef, params, jax.tree.map(_key_data, rest)


def merge_module(graphdef, params, rest) -> nnx.Module:
  """Inverse of `split_module`: the key data wrapped back into typed keys, in fresh Variables."""
  rest = jax.tree.map(lambda x: x, rest)
  flat = dict(nnx.to_flat_state(rest))
  for path, var in flat.items():
    if path[-1] == "key":
      flat[path] = var.replace(jax.random.wrap_key_data(var.get_value()))
  return nnx.merge(graphdef, params, nnx.from_flat_state(flat))


def module_rest(module: nnx.Module) -> nnx.State:
  """The module's variables other than its parameters, in the raw form `split_module` returns."""
  return jax.tree.map(_key_data, nnx.state(module, nnx.Not(nnx.Param)))


def _key_data(x):
  return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def count_params(tree) -> int:
  return sum(int(jnp.size(x)) for x in jax.tree.leaves(tree))


def init_state(module: nnx.Module, tx, mesh: Mesh) -> tuple[object, TrainState]:
  graphdef, params, rest = split_module(module)
  state = TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))
  return graphdef, replicate(state, mesh)


def replicate(tree, mesh: Mesh):
  """Every leaf as a global array replicated over the mesh, built from this process's identical copy.

  Unlike `jax.device_put`, this also yields proper global arrays when the mesh spans several processes.
  """
  sharding = NamedSharding(mesh, P())

  def put(x):
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  return jax.tree.map(put, tree)


def global_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's rows → one global array per field, split over "data"."""
  sharding = NamedSharding(mesh, P("data"))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def restore_module(workdir: str, module: nnx.Module, tx, mesh: Mesh, which: str = "best"):
  """The module of the "best" or the "final" (latest) checkpoint, shaped like `module`: (graphdef, params, rest,
  step). A clear error if there is none."""
  if which not in ("best", "final"):
    raise ValueError(f"which checkpoint: 'best' or 'final', got {which!r}")
  ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints", "best" if which == "best" else "latest")
  manager = ocp.CheckpointManager(ckpt_dir, item_names=Checkpoints.ITEMS)
  if manager.latest_step() is None:
    raise FileNotFoundError(f"no {which} checkpoint under {ckpt_dir}: train first "
                            f"(python -m interlingua_jax.main --workdir={workdir} --mode=train).")
  graphdef, state = init_state(module, tx, mesh)
  restored, _, _ = Checkpoints.restore(manager, abstract_like(state))
  return graphdef, restored.params, restored.rngs, int(restored.step)
