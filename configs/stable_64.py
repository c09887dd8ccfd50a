"""stable_64: 64 soft tokens, b=1024, depth 8, with InfoNCE and early stopping (GSM8K)."""
from configs import base


def get_config():
  return base.get_config()
