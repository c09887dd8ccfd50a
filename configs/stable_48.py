"""stable_48: 48 soft tokens, b=1024, depth 6, with the stability fixes (GSM8K)."""
from configs import base


def get_config():
  c = base.get_config()
  c.name = "stable_48"
  c.eval.methods = (*c.eval.methods, "token_budget_matched")  # the budget in the text methods' format
  c.translator.num_soft_tokens = 48
  c.translator.depth = 6
  return c
