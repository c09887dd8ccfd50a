"""The toy world on disk: GSM8K-format train/test JSONL, its information content and two
pretrained tiny LMs, built once.

Everything downstream reads these through the real loaders (`records.load_split`,
`models.from_pretrained`), exactly as it reads GSM8K and HF checkpoints. Each distinct world
(task knobs, sizes, pretraining) lives in its own `<root>/world_<hash>/`, so the worlds of one
suite share a cache without overwriting each other.
"""
import dataclasses
import hashlib
import json
import os
from typing import Any

from interlingua_jax.core import outputs
from interlingua_jax.toy import capacity, pretrain
from interlingua_jax.toy import task as toy_task


def _write_splits(directory: str, spec: toy_task.TaskSpec, num_train: int, num_test: int, seed: int) -> dict[str, str]:
  """Deterministic from the arguments; each file is written whole or not at all (the info last)."""
  paths = {"train": os.path.join(directory, "train.jsonl"), "test": os.path.join(directory, "test.jsonl")}
  info_path = os.path.join(directory, "info.json")
  if not os.path.exists(info_path):
    train = toy_task.make_split("train", num_train, seed=seed, spec=spec)
    test = toy_task.make_split("test", num_test, seed=seed, spec=spec)
    toy_task.write_jsonl(paths["train"], train, spec)
    toy_task.write_jsonl(paths["test"], test, spec)
    outputs.write_json(info_path, {**capacity.information(spec), **capacity.overlap(train, test),
                                   **capacity.test_baselines(train, test, spec)})
  return paths


def prepare(root: str, *, seed: int, num_train: int, num_test: int, pretrain_steps: int, pretrain_batch_size: int,
            pretrain_learning_rate: float, hidden_size: int, num_layers: int,
            task: dict[str, Any] | None = None) -> dict[str, str]:
  """Paths of the toy world under `root`: {"train", "test", "info", "source", "target"}.

  `task` holds `toy_task.TaskSpec` knobs (configs' `toy.world.task`); None is the easy world.
  """
  spec = _spec(task)
  settings = dict(seed=seed, num_train=num_train, num_test=num_test, pretrain_steps=pretrain_steps,
                  pretrain_batch_size=pretrain_batch_size, pretrain_learning_rate=pretrain_learning_rate,
                  hidden_size=hidden_size, num_layers=num_layers, task=dataclasses.asdict(spec), version=toy_task.VERSION)
  key = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=5).hexdigest()
  directory = os.path.join(root, f"world_{key}")
  os.makedirs(directory, exist_ok=True)
  paths = _write_splits(directory, spec, num_train, num_test, seed)
  paths["info"] = os.path.join(directory, "info.json")
  size = pretrain.ToyLMSize(hidden_size=hidden_size, num_layers=num_layers, num_heads=4, num_kv_heads=2,
                            intermediate_size=3 * hidden_size)
  paths["source"], paths["target"] = pretrain.prepare_toy_models(
      directory, seed=seed, steps=pretrain_steps, batch_size=pretrain_batch_size,
      learning_rate=pretrain_learning_rate, source_size=size, target_size=size, spec=spec)
  return paths


def _spec(knobs: dict[str, Any] | None) -> toy_task.TaskSpec:
  known = set(toy_task.TaskSpec.__dataclass_fields__)
  unknown = sorted(set(knobs or {}) - known)
  if unknown:
    raise ValueError(f"unknown toy.world.task keys {unknown}; valid: {sorted(known)}")
  return toy_task.TaskSpec(**(knobs or {}))
