"""The real-model study in miniature (configs/real_small.py: Qwen2.5-Coder-0.5B-Instruct → SmolLM2-135M-Instruct on
generated word problems): the bridge at M ∈ {8, 16, 32} soft tokens with RMS calibration, and M = 16 without it.

The M = 16 calibrated run is configs/real_small.py itself and evaluates every method and control; the other
arms evaluate the bridge, the token budget of their own M and the controls on the same 100 test questions
(the models-alone and text-relay figures do not depend on M). Every run writes its own source-state cache;
the analysis (`python -m interlingua_jax.analysis --root=<suite root>`) puts them in one table.
"""
import ml_collections

SOFT_TOKENS = (8, 16, 32)
ARM_METHODS = ("latent", "token_budget", "latent_shuffled", "no_latent")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg is not None:
    raise ValueError(f"unknown real_small suite variant {arg!r}; use configs/suites/real_small.py")
  c = ml_collections.ConfigDict()
  c.experiments = [dict(name="real_small_m16", config="configs/real_small.py", overrides={}),
                   dict(name="real_small_m16_uncalibrated", config="configs/real_small.py",
                        overrides={"translator.calibrate_rms": False, "eval.methods": ARM_METHODS})]
  c.experiments += [dict(name=f"real_small_m{m}", config="configs/real_small.py",
                         overrides={"translator.num_soft_tokens": m, "eval.methods": ARM_METHODS})
                    for m in SOFT_TOKENS if m != 16]
  return c
