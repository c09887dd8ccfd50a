"""baseline_64: stable_64 without the stability fixes (no InfoNCE, no early stopping)."""
from configs import base


def get_config():
  c = base.get_config()
  c.name = "baseline_64"
  c.eval.methods = (*c.eval.methods, "token_budget_matched")  # the budget in the text methods' format
  c.loss.infonce_weight = 0.0
  c.train.early_stopping = False
  return c
