"""tiny: the whole pipeline on a CPU in seconds — the toy world with barely-trained tiny LMs.

For smoke tests and debugging; its accuracies mean nothing. `SHRINK` is the same reduction as
dotted overrides, so a suite or a test can shrink any toy world (e.g. configs/toy_hard.py) alike.
Tests point `source.path`, `target.path` and the data paths at fixtures they build themselves.
"""
from configs import toy

SHRINK = {
    "toy.world.pretrain_steps": 2, "toy.world.num_train": 64, "toy.world.num_test": 16,
    "translator.num_soft_tokens": 4, "translator.bottleneck": 32, "translator.depth": 1,
    "translator.num_heads": 2, "optim.warmup_steps": 2, "loss.infonce_start_step": 1,
    "train.steps": 6, "train.batch_size": 4, "train.log_every": 2, "train.eval_every": 3,
    "train.eval_num_samples": 4, "eval.num_samples": 8, "eval.batch_size": 4, "eval.max_new_tokens": 8,
    "eval.latency_batch_sizes": (4,),  # the eval batch size: no extra compilation
    "eval.latency_samples": 0,  # batch-1 latency compiles its own programs (tests/test_latency.py measures it)
    "eval.bootstrap_samples": 200, "compression.num_samples": 4,
}


def shrink(c):
  c.update_from_flattened_dict(SHRINK)
  return c


def get_config():
  c = toy.get_config()
  c.name = "tiny"
  return shrink(c)
