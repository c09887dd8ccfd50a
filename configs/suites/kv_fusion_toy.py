"""KV-cache fusion in the complementary toy world, three training seeds per arm, on the same 500 test questions:

- `kv_fusion`: configs/kv_fusion_toy.py (the source's prompt cache fused into the target's), with every control
  a cache bridge has (gates closed, zeroed, noise, shuffled) and the knowledge-free baselines;
- `kv_fusion_identical`: configs/kv_fusion_toy_identical.py, the target fused with its own cache (what the fusers
  and their training buy without a second model);
- `soft_tokens`: configs/toy_complementary.py, the soft-token translator on the same world and questions.

The runs share one cache of pretrained toy LMs under the suite root. Read the seeds table of
`python -m interlingua_jax.analysis --root=ROOT` and the gates figure (`gates_per_layer`).
"""
import ml_collections

SEEDS = (0, 1, 2)


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiments = [
      dict(name="kv_fusion", config="configs/kv_fusion_toy.py", seeds=SEEDS),
      dict(name="kv_fusion_identical", config="configs/kv_fusion_toy_identical.py", seeds=SEEDS),
      dict(name="soft_tokens", config="configs/toy_complementary.py", seeds=SEEDS),
  ]
  c.overrides = ml_collections.ConfigDict({"toy.cache_dir": "{root}/toy_models"}, allow_dotted_keys=True)
  return c
