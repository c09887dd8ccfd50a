"""Device mesh and partition rules: data parallel over "data", tensor parallel over "model"."""
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax.models.config import DecoderConfig, ParamSpec, param_layout

# Logical parameter axis -> mesh axis. Column-parallel q/k/v/gate/up (output dims), row-parallel o/down
# (input dims), the embedding table over d (the lookup stays local) and the output head over the vocabulary.
RULES = {
    "heads": "model",
    "kv_heads": "model",
    "mlp": "model",
    "embed": "model",
    "vocab": "model",
    "layers": None,
}


def make_mesh(data: int = -1, model: int = 1, devices=None) -> Mesh:
  """A ("data", "model") mesh. data=-1 takes all remaining devices; explicit sizes use the first data*model.

  Using a prefix of the devices lets one process hold a (1, 1) mesh next to a (2, 2) one (tests, demos).
  """
  devices = list(jax.devices() if devices is None else devices)
  if model < 1 or (data < 1 and data != -1):
    raise ValueError(f"mesh sizes must be positive (data may be -1 for 'the rest'); got data={data}, model={model}.")
  if data == -1:
    if len(devices) % model:
      raise ValueError(f"model={model} does not divide the {len(devices)} available devices; choose a divisor.")
    data = len(devices) // model
  if data * model > len(devices):
    raise ValueError(f"a (data={data}, model={model}) mesh needs {data * model} devices but only {len(devices)} "
                     f"exist; on CPU set JAX_NUM_CPU_DEVICES or jax.config.update('jax_num_cpu_devices', n).")
  grid = np.asarray(devices[:data * model], dtype=object).reshape(data, model)
  return Mesh(grid, ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))


def logical_to_spec(spec: ParamSpec, mesh: Mesh) -> P:
  """Maps logical axes to mesh axes; a tensor whose sharded dim does not divide the mesh axis is replicated.

  Falling back to full replication (rather than uneven shards) keeps every layout legal, e.g. 2 kv heads
  on model=4: such tensors cost memory on every device but stay correct.
  """
  parts = []
  for size, axis in zip(spec.shape, spec.axes):
    mesh_axis = RULES.get(axis) if axis is not None else None
    if mesh_axis is not None and size % mesh.shape[mesh_axis]:
      return P()
    parts.append(mesh_axis if mesh_axis is not None and mesh.shape[mesh_axis] > 1 else None)
  return P(*parts)


def param_shardings(config: DecoderConfig, mesh: Mesh):
  """A pytree of NamedSharding with the structure of the decoder's params."""
  return jax.tree.map(lambda s: NamedSharding(mesh, logical_to_spec(s, mesh)), param_layout(config))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batch-major arrays are split over "data" and replicated over "model"."""
  return NamedSharding(mesh, P("data"))
