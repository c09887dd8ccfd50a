"""The shared interlingua's hyperparameter grid (docs/DESIGN.md §2): M × d_z × first-token weight × K.

  python -m interlingua_jax.ablations --suite=configs/suites/interlingua_sweep.py --root=/runs
  python -m interlingua_jax.analysis --root=/runs/<timestamp>   # table + figure: analysis/interlingua_sweep.*

The full suite is the 24 runs of configs/interlingua_squad_32.py (Llama-3.1-8B + Qwen2.5-7B on SQuAD) and
three arms trained with `interlingua.calibrate_rms=True` (one per M at d_z 256, weight 0.5, K 4).
`:reduced` is NOT the whole grid: it is two opposite corners of the same four axes, shrunk (M ∈ {2, 4},
d_z ∈ {16, 32}, weight ∈ {0.5, 1.0}, K ∈ {1, 2}) on configs/interlingua_toy_reduced.py (the toy extractive
world at its reduced size, seconds per run), so the test suite exercises the suite runner and the analysis.
"""
import itertools

import ml_collections

GRID = {"interlingua.num_soft_tokens": (32, 48, 64), "interlingua.latent_dim": (256, 512),
        "interlingua.first_token_weight": (0.5, 1.0), "interlingua.k_tokens": (4, 8)}
REDUCED_CORNERS = ((2, 16, 0.5, 1), (4, 32, 1.0, 2))


def _name(m, dz, w, k) -> str:
  return f"interlingua_m{m}_dz{dz}_w{w:g}_k{k}"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "reduced"):
    raise ValueError(f"unknown interlingua sweep variant {arg!r}; use configs/suites/interlingua_sweep.py or "
                     "configs/suites/interlingua_sweep.py:reduced")
  points = REDUCED_CORNERS if arg == "reduced" else tuple(itertools.product(*GRID.values()))
  config = "configs/interlingua_toy_reduced.py" if arg == "reduced" else "configs/interlingua_squad_32.py"
  c = ml_collections.ConfigDict()
  c.experiments = [dict(name=_name(*p), config=config, overrides=dict(zip(GRID, p))) for p in points]
  if arg is None:  # RMS calibration trained in, not applied to a model trained without it: one arm per M
    c.experiments += [dict(name=_name(m, 256, 0.5, 4) + "_calibrated", config=config,
                           overrides={**dict(zip(GRID, (m, 256, 0.5, 4))), "interlingua.calibrate_rms": True})
                      for m in GRID["interlingua.num_soft_tokens"]]
  if arg == "reduced":  # the toy targets are pretrained once, shared by the runs
    c.overrides = ml_collections.ConfigDict({"toy.cache_dir": "{root}/toy_models"}, allow_dotted_keys=True)
  return c
