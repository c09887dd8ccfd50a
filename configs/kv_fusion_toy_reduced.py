"""kv_fusion_toy_reduced: configs/kv_fusion_toy.py cut to fit the test suite (the world of toy_reduced's size,
a short training): every stage of the kind and every control runs; tests/test_kv_fusion_kind.py checks the
gate-0 identity and that the controls are reported, not a trained result.
"""
from configs import kv_fusion_toy


def get_config():
  c = kv_fusion_toy.get_config()
  c.name = "kv_fusion_toy_reduced"
  c.toy.world.num_train = 3000
  c.toy.world.num_test = 100
  c.toy.world.pretrain_steps = 300
  c.train.steps = 60
  c.train.eval_every = 30
  c.train.eval_num_samples = 16
  c.optim.warmup_steps = 10
  c.kv_fusion.anneal_steps = c.train.steps
  c.eval.methods = ("target_alone", "latent", "latent_shuffled", "latent_gates_off", "latent_zeroed",
                    "latent_noise", "prior")
  c.eval.num_samples = 24
  c.eval.latency_batch_sizes = (1,)
  c.eval.latency_samples = 2
  c.eval.bootstrap_samples = 200
  c.compression.formats = ("int8",)
  c.compression.num_samples = 6
  return c
