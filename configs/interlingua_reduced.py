"""interlingua_reduced: the shared interlingua shrunk to seconds on a CPU, for the tests and the reduced sweep.

Tests point `interlingua.targets` and the data paths at fixtures they build themselves; its scores mean nothing.
"""
from configs import base


def get_config():
  c = base.get_config()
  c.name = "interlingua_reduced"
  c.seed = 0
  c.bridge.kind = "interlingua"
  c.interlingua.latent_dim = 32
  c.interlingua.num_soft_tokens = 4
  c.interlingua.depth = 1
  c.interlingua.num_heads = 2
  c.interlingua.max_bytes = 96
  c.interlingua.k_tokens = 2
  c.data.dataset = "hotpotqa"
  c.data.num_shots = 0
  c.data.max_source_len = 128
  c.data.answer_anchor = "Answer:"
  c.data.length_buckets = (64, 128)
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 1
  c.train.steps = 4
  c.train.batch_size = 4
  c.train.log_every = 1
  c.train.eval_every = 2
  c.train.eval_num_samples = 4
  c.train.remat = False
  c.eval.methods = ("target_alone", "latent", "token_budget_text", "pca", "latent_shuffled", "no_latent", "chance")
  c.eval.num_samples = 6
  c.eval.batch_size = 6
  c.eval.max_new_tokens = 3
  c.eval.stop_strings = ("\n",)
  c.eval.length_buckets = (32, 64, 128)
  c.eval.bootstrap_samples = 200
  c.eval.latency_batch_sizes = (1,)  # throughput at batch 1 and batch-1 latency of 2 questions: seconds, not minutes
  c.eval.latency_samples = 2
  c.compression.num_samples = 6
  c.mesh.data, c.mesh.model = 1, 1
  return c
