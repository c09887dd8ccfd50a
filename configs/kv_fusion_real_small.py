"""kv_fusion_real_small: KV fusion between two real instruct LMs on a 2-core CPU: Qwen2.5-Coder-0.5B's prompt cache
(the sharer: 24 layers, 2 KV heads x 64) rewrites SmolLM2-135M's (the receiver: 30 layers, 3 KV heads x 64); the
top 24 receiver layers are fused (terminal alignment), tokens aligned by the text they cover (two tokenizers).

configs/real_small.py's data and decoding (generated GSM8K-format word problems, strict `####` scoring, raw
completions), cut further for the CPU: both models read the whole 1-shot prompt in every training step (the
sharer's cache cannot be precomputed the way the translator's source states are), so one exemplar [real_small: 2]
and 80 steps at batch 8 [C2C: ~300 steps nearly as good, on GPUs]. Read `latent` against target_alone (= its
gates closed), the zeroed, noise and shuffled caches, the text relay and the oracle router.
"""
from configs import real_small


def get_config():
  c = real_small.get_config()
  c.name = "kv_fusion_real_small"
  c.bridge.kind = "kv_fusion"
  c.data.num_shots = 1
  c.data.bridge_shots = -1
  c.kv_fusion.hidden_size = 256
  c.optim.learning_rate = 5e-4
  c.optim.warmup_steps = 10
  c.train.steps = 80
  c.train.eval_every = 40
  c.train.eval_num_samples = 24
  c.kv_fusion.anneal_steps = c.train.steps
  c.train.cache_source_states = False
  c.eval.methods = ("source_alone", "target_alone", "latent", "text_relay", "latent_shuffled", "latent_gates_off",
                    "latent_zeroed", "latent_noise")
  c.compression.formats = ("bf16", "int8", "int4")
  c.compression.num_samples = 10
  return c
