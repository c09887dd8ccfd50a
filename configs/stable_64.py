"""stable_64: 64 soft tokens, b=1024, depth 8, with InfoNCE and early stopping (GSM8K)."""
from configs import base


def get_config():
  c = base.get_config()
  c.eval.methods = (*c.eval.methods, "token_budget_matched")  # the budget in the text methods' format
  return c
