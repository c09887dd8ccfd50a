"""interlingua_toy_reduced: configs/interlingua_toy.py at the toy world's reduced size (its REDUCED settings)
and a few training steps: seconds per run, for the reduced sweep in the tests. Its scores mean nothing."""
import ml_collections

from configs import interlingua_reduced, interlingua_toy
from interlingua_jax.toy import extractive

KEEP = ("interlingua", "optim", "train", "eval", "compression", "data.max_source_len")  # from interlingua_reduced


def get_config():
  c = interlingua_toy.get_config()
  small = interlingua_reduced.get_config()
  c.name = "interlingua_toy_reduced"
  c.toy.extractive = ml_collections.ConfigDict(extractive.REDUCED)
  targets = c.interlingua.targets
  for key in KEEP:
    *parents, leaf = key.split(".")
    node, other = c, small
    for p in parents:
      node, other = node[p], other[p]
    node[leaf] = other[leaf]
  c.interlingua.targets = targets
  c.train.eval_num_samples = 8
  c.eval.methods = ("target_alone", "latent", "token_budget_text", "pca", "no_latent")
  return c
