"""The paper's ablation suite on the real models (docs/DESIGN.md §2 table).

stable_64 vs baseline_64 is the stability ablation, each arm trained with three seeds (a claim
about training dynamics needs more than one run per arm); stable_64/48/32 the soft-token sweep,
hotpotqa_64 the dataset generalisation; every run also evaluates the baselines, the controls and
the wire.
"""
import ml_collections

STABILITY_SEEDS = (1234, 1235, 1236)


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiments = [dict(name=name, config=f"configs/{name}.py", overrides={}, seeds=STABILITY_SEEDS)
                   for name in ("stable_64", "baseline_64")]
  c.experiments += [dict(name=name, config=f"configs/{name}.py", overrides={})
                    for name in ("stable_48", "stable_32", "hotpotqa_64")]
  return c
