"""AdamW with three parameter groups, warmup + linear decay, global-norm clipping.

Groups are chosen by parameter path (big_vision style), see `param_label`:
  gates     any path element containing "gate": lr × gate_lr_multiplier, no weight decay
  no_decay  norms (path element containing "norm") and biases (last element "bias")
  decay     everything else: AdamW with weight decay
Clipping acts on the global norm of all gradients before the groups split.
"""
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def param_label(path: str) -> str:
  """Group of one parameter given its "/"-joined path, e.g. "blocks/0/attn_gate"."""
  names = path.split("/")
  if any("gate" in n for n in names):
    return "gates"
  if any("norm" in n for n in names) or names[-1] == "bias":
    return "no_decay"
  return "decay"


def param_labels(params):
  """Pytree of group names, one per parameter (a prefix of `params`).

  Accepts plain pytrees and `nnx.State`; an `nnx.Variable` is labelled as a whole,
  so the same labels fit the Variable tree `nnx.Optimizer` initialises from and the
  plain-array tree it updates with.
  """
  path_str = lambda path: jax.tree_util.keystr(path, simple=True, separator="/")
  return jax.tree_util.tree_map_with_path(
      lambda path, _: param_label(path_str(path)), params,
      is_leaf=lambda x: isinstance(x, nnx.Variable))


def make_schedule(*, learning_rate: float, warmup_steps: int, total_steps: int) -> Callable:
  """Linear warmup from 0 to `learning_rate` over `warmup_steps`, then linear decay to 0 at `total_steps`."""
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be positive, got {learning_rate}.")
  if not 0 <= warmup_steps < total_steps:
    raise ValueError(f"Need 0 <= warmup_steps < total_steps, got warmup_steps={warmup_steps}, "
                     f"total_steps={total_steps}: shorten optim.warmup_steps or raise train.steps.")

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    warmup = step / warmup_steps if warmup_steps else 1.0
    decay = (total_steps - step) / (total_steps - warmup_steps)
    return learning_rate * jnp.clip(jnp.minimum(warmup, decay), 0.0, 1.0)

  return schedule


def make_optimizer(*, learning_rate: float, warmup_steps: int, total_steps: int, b1: float,
                   b2: float, eps: float, weight_decay: float, gate_lr_multiplier: float,
                   clip_norm: float) -> optax.GradientTransformation:
  """The bridge's optimizer; use with `nnx.Optimizer(model, tx, wrt=nnx.Param)`."""
  if not gate_lr_multiplier > 0:
    raise ValueError(f"gate_lr_multiplier must be positive, got {gate_lr_multiplier}.")
  if not clip_norm > 0:
    raise ValueError(f"clip_norm must be positive, got {clip_norm}.")
  schedule = make_schedule(learning_rate=learning_rate, warmup_steps=warmup_steps,
                           total_steps=total_steps)
  adamw = lambda lr, wd: optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=wd)
  return optax.chain(
      optax.clip_by_global_norm(clip_norm),
      optax.partition({
          "decay": adamw(schedule, weight_decay),
          "no_decay": adamw(schedule, 0.0),
          "gates": adamw(lambda step: gate_lr_multiplier * schedule(step), 0.0),
      }, param_labels))


def from_config(o, total_steps: int):
  """(optimizer, schedule) of a config's `optim` section for a run of `total_steps`."""
  tx = make_optimizer(learning_rate=o.learning_rate, warmup_steps=o.warmup_steps, total_steps=total_steps,
                      b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                      gate_lr_multiplier=o.gate_lr_multiplier, clip_norm=o.clip_norm)
  return tx, make_schedule(learning_rate=o.learning_rate, warmup_steps=o.warmup_steps, total_steps=total_steps)
