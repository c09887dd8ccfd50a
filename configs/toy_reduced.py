"""toy_reduced: the easy toy world cut to fit the test suite — fewer pretraining and training
steps, fewer questions — yet trained enough that the bridge clearly beats its controls and the
knowledge-free prior (tests/test_toy_world.py checks it). A real run, unlike configs/tiny.py.
"""
from configs import toy


def get_config():
  c = toy.get_config()
  c.name = "toy_reduced"
  c.toy.world.num_train = 3000
  c.toy.world.num_test = 100
  c.toy.world.pretrain_steps = 300
  c.train.steps = 400
  c.train.eval_every = 200
  c.train.eval_num_samples = 50
  c.eval.methods = ("target_alone", "latent", "token_budget", "latent_shuffled", "prior")
  c.eval.num_samples = 100
  c.eval.latency_batch_sizes = (1,)
  c.eval.latency_samples = 2
  c.eval.bootstrap_samples = 1000
  return c
