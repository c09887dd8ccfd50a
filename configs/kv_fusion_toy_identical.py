"""kv_fusion_toy_identical: the identical-sharer control of configs/kv_fusion_toy.py.

The same fusers, trained the same steps on the same questions, but the target fused with its own prompt cache
(`kv_fusion.sharer = "target"`): what the fusion's extra parameters and training buy without a second model.
kv_fusion_toy's `latent` is read against this run's `latent`.
"""
from configs import kv_fusion_toy


def get_config():
  c = kv_fusion_toy.get_config()
  c.name = "kv_fusion_toy_identical"
  c.kv_fusion.sharer = "target"
  c.eval.methods = ("target_alone", "latent", "latent_shuffled", "latent_gates_off", "latent_zeroed",
                    "latent_noise", "prior")
  return c
