"""The paper's ablation suite on the real models (DESIGN.md §2 table).

stable_64 vs baseline_64 is the stability ablation, stable_64/48/32 the soft-token sweep,
hotpotqa_64 the dataset generalisation; every run also evaluates the baselines and the wire.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiments = [
      dict(name=name, config=f"configs/{name}.py", overrides={})
      for name in ("stable_64", "baseline_64", "stable_48", "stable_32", "hotpotqa_64")
  ]
  return c
