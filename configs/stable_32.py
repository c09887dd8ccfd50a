"""stable_32: 32 soft tokens, b=768, depth 4, 12 heads, warmup 600, with the stability fixes."""
from configs import base


def get_config():
  c = base.get_config()
  c.name = "stable_32"
  c.eval.methods = (*c.eval.methods, "token_budget_matched")  # the budget in the text methods' format
  c.translator.num_soft_tokens = 32
  c.translator.bottleneck = 768
  c.translator.depth = 4
  c.translator.num_heads = 12
  c.optim.warmup_steps = 600
  c.loss.infonce_start_step = 300
  return c
