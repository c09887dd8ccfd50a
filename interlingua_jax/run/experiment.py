"""One pipeline for every bridge kind: validate → resolve paths → record the config → preflight and load →
the stages of `modes` (train, eval, compression, or a stage of the kind's own).

`run` returns what each stage produced; the report (`analysis.report`, from saved outputs alone) is the entry
point's to write.
"""
import os

import jax
import ml_collections

from interlingua_jax import bridges
from interlingua_jax.bridges.kind import Kind
from interlingua_jax.core import errors
from interlingua_jax.core.context import Run
from interlingua_jax.run import config as config_lib, stages, validate
from interlingua_jax.run.setup import resolve_paths, setup

STAGES = {"train": stages.train_stage, "eval": stages.eval_stage, "compression": stages.compression_stage}


def start(cfg: ml_collections.ConfigDict, workdir: str, modes: tuple[str, ...] = ("train",)) -> tuple[Run, Kind]:
  """Everything before the models load: the config checked, the paths resolved (the toy worlds built), the
  workdir's config compared with this one and the record written."""
  validate.check(cfg, device_count=jax.device_count())  # every value, before the toy pretrains or anything loads
  kind = bridges.get(cfg.bridge.kind)
  unknown = [m for m in modes if m not in STAGES and m not in kind.stages and m != "report"]
  if unknown:
    owners = [k.name for k in bridges.REGISTRY.values() if set(unknown) & set(k.stages)]
    raise errors.ConfigError(f"--mode={unknown[0]} is a stage of bridge.kind {' or '.join(map(repr, owners))}; "
                             f"bridge.kind={kind.name!r} has none (set bridge.kind, or choose another --mode).")
  os.makedirs(workdir, exist_ok=True)
  paths = resolve_paths(cfg, workdir, kind)
  config_lib.check_config(config_lib.record(cfg, paths, kind), workdir, kind, modes)
  return Run(cfg, workdir, tuple(modes), paths), kind


def run(cfg: ml_collections.ConfigDict, workdir: str, modes: tuple[str, ...]) -> dict:
  """The stages of `modes`, in that order, for the config's bridge kind. `report` is left to the caller."""
  current, kind = start(cfg, workdir, modes)
  computed = [m for m in modes if m != "report"]
  s = setup(current, kind) if computed else None
  out = {}
  for mode in computed:
    if mode in STAGES:
      out[mode] = STAGES[mode](current, kind, s)
    else:  # the kind's own stage reads the module the test split reads
      module = stages.restore(current, kind, s, stages.evaluated_checkpoint(cfg))
      out[mode] = kind.stages[mode](current, s, kind.contexts(current, s, module))
  return out
