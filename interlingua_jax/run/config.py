"""A run's record of its config, and the rule for running a different config in the same workdir.

`<workdir>/config.json` is the config as given with the paths the run resolved (the toy world's models and
data) filled in: the record of what was trained, which `--mode=eval` without --config reads back. The config
object itself is never written.
"""
import functools
import json
import logging
import os
import re

import jax
import ml_collections

from interlingua_jax import bridges
from interlingua_jax.bridges.kind import Kind
from interlingua_jax.core import errors, outputs, workdir as workdir_lib
from interlingua_jax.core.context import Paths

# Config sections that may change between runs in one workdir: they do not shape the trained state (beyond float
# noise: the mesh, the attention impl, and cached source states, computed at their own bucket's pad width).
FREE_KEYS = ("name", "eval", "compression", "profile", "mesh", "model.attention_impl", "toy.cache_dir",
             "train.log_every", "train.cache_source_states")
# May only be raised, and only when training: extends the run (schedule rule in `check_config`).
EXTENDABLE = "train.steps"
# Config keys added after runs were saved without them, with the value those runs had: a saved config.json
# is read as if it had them, so an older run still resumes and compares equal. Each kind adds its own.
ADDED_KEYS = {"bridge.kind": bridges.DEFAULT, "data.bridge_shots": -1, "train.cache_source_states": True,
              "eval.subset_seed": 0, "eval.latency_samples": 8}


def added_keys() -> dict:
  return dict(ADDED_KEYS, **{k: v for kind in bridges.REGISTRY.values() for k, v in kind.added_keys.items()})


def renamed(flat: dict) -> dict:
  """A flattened saved config with every renamed key (`Kind.renamed_keys`) under its current name."""
  names = {old: new for kind in bridges.REGISTRY.values() for old, new in kind.renamed_keys.items()}
  return {names.get(k, k): v for k, v in flat.items()}


def record(cfg: ml_collections.ConfigDict, paths: Paths, kind: Kind) -> dict:
  """The config as JSON with the run's resolved paths written at the keys that name them."""
  out = json.loads(cfg.to_json_best_effort())
  _set(out, "data.train_path", paths.train)
  _set(out, "data.test_path", paths.test)
  for role, spec in kind.models(cfg).items():
    _set(out, spec.path_key, paths.models[role])
  return out


def _set(tree: dict, key: str, value) -> None:
  """tree[key] = value for a dotted key whose parts may index a list: `section.targets[0].path`."""
  *parents, leaf = key.split(".")
  node = tree
  for part in parents:
    name, index = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part).groups()
    node = node[name] if index is None else node[name][int(index)]
  node[leaf] = value


def check_config(saved_record: dict, workdir: str, kind: Kind, modes: tuple[str, ...] = ("train",)) -> None:
  """Refuses a workdir whose checkpoints were trained with a different config; writes the record.

  Evaluation keys (`FREE_KEYS`) may differ: the difference is logged. `train.steps` may be raised
  in a training mode to extend a finished or interrupted run. Schedule rule: the learning rate is the
  one a run of the new length would have, from the resumed step on (warmup unchanged, the linear
  decay re-spread to reach 0 at the new `train.steps`), so it steps up at the resume point.
  """
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  current = comparable(outputs.flatten(saved_record), kind)
  saved = workdir_lib.saved_config(workdir)
  has_checkpoints = os.path.isdir(os.path.join(workdir, "checkpoints"))
  if saved is not None and has_checkpoints:
    saved = comparable(outputs.flatten(saved), kind)
    free = lambda k: any(k == p or k.startswith(p + ".") for p in FREE_KEYS)
    diff = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    extended = EXTENDABLE in diff and "train" in modes and current[EXTENDABLE] > saved.get(EXTENDABLE, 0)
    refused = [k for k in diff if not free(k) and not (k == EXTENDABLE and extended)]
    if refused:
      shown = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in refused[:6])
      hint = (f" ({EXTENDABLE} can only be raised, in a training mode, to extend the run)"
              if EXTENDABLE in refused else "")
      raise errors.ConfigError(f"{workdir} holds checkpoints of a different config ({shown}){hint}. Use a new "
                               "--workdir, or drop --config to use the saved one.")
    if extended:
      logging.warning("extending the run from train.steps=%d to %d", saved[EXTENDABLE], current[EXTENDABLE])
    changed = [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff if free(k)]
    if changed:
      logging.info("settings that differ from the saved config (allowed): %s", ", ".join(changed))
    if "train" not in modes:
      return  # config.json stays the record of what was trained
  if jax.process_index() == 0:  # the other processes may be reading it right now (saved_config above)
    outputs.write_json(path, saved_record)


def comparable(flat: dict, kind: Kind) -> dict:
  """A flattened config as two runs' are compared: the sections of the other kinds left out and the keys added
  since (`added_keys`) defaulted, so a config.json saved before they existed still matches its run."""
  flat = {**added_keys(), **renamed(flat)}
  others = {k.section for k in bridges.REGISTRY.values()} - {kind.section}
  return {k: v for k, v in flat.items() if k.split(".", 1)[0] not in others}


def from_json(saved: dict) -> ml_collections.ConfigDict:
  """A ConfigDict from a saved config.json (lists back to tuples, as the config files write them), with the keys
  added since it was saved (`added_keys`) at the values its run had and renamed keys under their new names."""
  tuples = lambda x: {k: tuples(v) for k, v in x.items()} if isinstance(x, dict) else \
      tuple(x) if isinstance(x, list) else x
  cfg = ml_collections.ConfigDict(tuples(saved))
  for old, new in ((o, n) for kind in bridges.REGISTRY.values() for o, n in kind.renamed_keys.items()):
    *parents, leaf = old.split(".")
    node = functools.reduce(lambda n, part: n.get(part) if n is not None else None, parents, cfg)
    if node is not None and leaf in node:
      value = node[leaf]
      del node[leaf]
      node[new.rsplit(".", 1)[-1]] = value
  for key, value in added_keys().items():
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
      if part not in node:
        node[part] = ml_collections.ConfigDict()
      node = node[part]
    if leaf not in node:
      node[leaf] = value
  return cfg
