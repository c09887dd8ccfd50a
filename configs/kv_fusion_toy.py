"""kv_fusion_toy: KV-cache fusion (Cache-to-Cache) in the complementary toy world.

The source knows each person's private fact, the target can compute but knows no fact; the target reads its
own full prompt, its cache rewritten from the source's. Read `latent` against the controls only a cache bridge
has (gates closed = target_alone, the source cache zeroed or replaced by noise of its statistics), the shared
ones (another question's cache, the name probes), the text channel and the knowledge-free prior; and against
configs/toy_complementary.py's soft-token bridge on the same questions.
"""
from configs import toy_complementary


def get_config():
  c = toy_complementary.get_config()
  c.name = "kv_fusion_toy"
  c.bridge.kind = "kv_fusion"
  c.kv_fusion.hidden_size = 64
  c.kv_fusion.anneal_steps = c.train.steps
  c.eval.methods = ("source_alone", "target_alone", "latent", "text_relay", "latent_shuffled", "latent_gates_off",
                    "latent_zeroed", "latent_noise", "chance", "prior", "source_fact", "latent_name_swap",
                    "latent_unknown_name", "text_relay_stated")
  c.compression.formats = ("bf16", "int8", "int4")
  return c
