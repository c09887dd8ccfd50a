"""The toy world on disk: GSM8K-format train/test JSONL and two pretrained tiny LMs, built once.

Everything downstream reads these through the real loaders (`records.load_split`,
`models.from_pretrained`), exactly as it reads GSM8K and HF checkpoints.
"""
import os

from interlingua_jax.toy import pretrain, task


def _write_split(path: str, split: str, num: int, seed: int) -> None:
  """Deterministic from (split, num, seed); written to a temporary name first, so a file is whole or absent."""
  if os.path.exists(path):
    return
  tmp = path + ".tmp"
  task.write_jsonl(tmp, task.make_split(split, num, seed=seed))
  os.replace(tmp, path)


def prepare(root: str, *, seed: int, num_train: int, num_test: int, pretrain_steps: int, pretrain_batch_size: int,
            pretrain_learning_rate: float, hidden_size: int, num_layers: int) -> dict[str, str]:
  """Paths of the toy world under `root`: {"train", "test", "source", "target"}."""
  os.makedirs(root, exist_ok=True)
  data = os.path.join(root, f"data_seed{seed}_{num_train}_{num_test}_v{task.VERSION}")
  os.makedirs(data, exist_ok=True)
  paths = {"train": os.path.join(data, "train.jsonl"), "test": os.path.join(data, "test.jsonl")}
  _write_split(paths["train"], "train", num_train, seed)
  _write_split(paths["test"], "test", num_test, seed)
  size = pretrain.ToyLMSize(hidden_size=hidden_size, num_layers=num_layers, num_heads=4, num_kv_heads=2,
                            intermediate_size=3 * hidden_size)
  paths["source"], paths["target"] = pretrain.prepare_toy_models(
      root, seed=seed, steps=pretrain_steps, batch_size=pretrain_batch_size, learning_rate=pretrain_learning_rate,
      source_size=size, target_size=size)
  return paths
