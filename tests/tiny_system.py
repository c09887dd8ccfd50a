"""A tiny bridged system for tests: GSM8K-format arithmetic records and a config over tiny checkpoints."""
import json
import os

QUESTIONS = [(a, b) for a in range(1, 8) for b in range(1, 6)]


def write_data(root) -> tuple[str, str]:
  rows = [{"question": f"Tom has {a} apples and gets {b} more. How many apples does Tom have?",
           "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for a, b in QUESTIONS]
  paths = []
  for split, part in (("train", rows[:28]), ("test", rows[28:])):
    path = os.path.join(root, f"{split}.jsonl")
    with open(path, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in part)
    paths.append(path)
  return tuple(paths)


def tiny_config(source_dir, target_dir, data_paths):
  from configs import tiny
  c = tiny.get_config()
  c.source.path, c.target.path = source_dir, target_dir
  c.source.dtype = c.target.dtype = "float32"
  c.data.dataset = "gsm8k"
  c.data.train_path, c.data.test_path = data_paths
  c.data.num_shots = 1
  c.data.answer_anchor = "A:"
  c.mesh.data, c.mesh.model = 1, 1
  return c


