"""tiny: the whole pipeline on a CPU in seconds — the toy world with barely-trained tiny LMs.

For smoke tests and debugging; its accuracies mean nothing. Tests point `source.path`,
`target.path` and the data paths at fixtures they build themselves.
"""
from configs import toy


def get_config():
  c = toy.get_config()
  c.name = "tiny"
  c.toy.world.pretrain_steps = 2
  c.toy.world.num_train = 64
  c.toy.world.num_test = 16
  c.translator.num_soft_tokens = 4
  c.translator.bottleneck = 32
  c.translator.depth = 1
  c.translator.num_heads = 2
  c.optim.warmup_steps = 2
  c.loss.infonce_start_step = 1
  c.train.steps = 6
  c.train.batch_size = 4
  c.train.log_every = 2
  c.train.eval_every = 3
  c.train.eval_num_samples = 4
  c.eval.num_samples = 8
  c.eval.batch_size = 4
  c.eval.max_new_tokens = 8
  c.eval.latency_batch_sizes = (4,)  # the eval batch size: no extra compilation
  c.eval.bootstrap_samples = 200
  c.compression.num_samples = 4
  return c
