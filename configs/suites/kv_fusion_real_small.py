"""KV-cache fusion between two real instruct LMs on a CPU, three training seeds on the same 100 test questions:
configs/kv_fusion_real_small.py (Qwen2.5-Coder-0.5B's prompt cache fused into SmolLM2-135M's), each run with
every control a cache bridge has (gates closed, zeroed, noise, shuffled), the text relay and both single models
(the routers). About 40 min per run on the 2-core CPU. Read the seeds table of
`python -m interlingua_jax.analysis --root=ROOT` and the gates figure (`gates_per_layer`).
"""
import ml_collections

SEEDS = (0, 1, 2)


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiments = [dict(name="kv_fusion_real_small", config="configs/kv_fusion_real_small.py", seeds=SEEDS)]
  return c
