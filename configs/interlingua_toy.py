"""interlingua_toy: the shared-interlingua rehearsal on the extractive toy world, minutes on a CPU.

SQuAD-format questions about invented people and towns (interlingua_jax/toy/extractive.py), two tiny targets
pretrained from scratch on them, a Llama with a BOS-adding byte-level BPE and a Qwen2 with a Qwen-style
tokenizer (no BOS), both cached under the workdir. One Z (M = 8) serves both; each target is judged against
its text baseline and the token budget of the same M (the question comes first in the encoder's text, so the
budget holds the question and the first facts only).
"""
import ml_collections

from configs import base
from interlingua_jax.toy import extractive


def get_config():
  c = base.get_config()
  c.name = "interlingua_toy"
  c.seed = 0
  c.bridge.kind = "interlingua"

  c.toy = ml_collections.ConfigDict()
  c.toy.cache_dir = ""  # "" = <workdir>/toy; suites share one so the targets are pretrained once
  c.toy.extractive = ml_collections.ConfigDict(extractive.FULL)  # `extractive.prepare`'s settings, its full size
  c.toy.source = ""  # encoder = "states": the toy model (a name in extractive.TARGETS) that is the frozen source

  c.interlingua.latent_dim = 64
  c.interlingua.num_soft_tokens = 8
  c.interlingua.depth = 2
  c.interlingua.num_heads = 4
  c.interlingua.max_bytes = 256
  c.interlingua.first_token_weight = 1.0
  c.interlingua.k_tokens = 4
  c.interlingua.targets = (dict(name="llama", path="", dtype="float32", tokenizer=""),  # paths: the toy world's
                           dict(name="qwen", path="", dtype="float32", tokenizer=""))

  c.data.dataset = "squad"
  c.data.num_shots = 0
  c.data.max_source_len = 256
  c.data.answer_anchor = "Answer: "

  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 100
  c.train.steps = 1500
  c.train.batch_size = 32
  c.train.log_every = 10
  c.train.eval_every = 250
  c.train.eval_num_samples = 100
  c.train.remat = False

  c.eval.methods = ("target_alone", "latent", "token_budget_text", "pca", "latent_shuffled", "no_latent", "chance")
  c.eval.num_samples = 500
  c.eval.batch_size = 100
  c.eval.max_new_tokens = 8
  c.eval.stop_strings = ("\n",)
  c.eval.length_buckets = (32, 64, 128, 256)
  c.eval.bootstrap_samples = 2000
  c.mesh.data = 1
  return c
