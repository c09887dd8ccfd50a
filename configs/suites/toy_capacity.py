"""The capacity curve: where do M soft tokens stop being enough? (docs/DESIGN.md §6)

Sweeps M at two difficulty levels, the easy world (configs/toy.py, ~6.8 bits per question)
and the hardest graded one (configs/toy_hard.py, ~10.5 bits; the exact figures are in each
world's info.json), every run answering with the bridge, the token budget of the same M, the
target alone and the controls, so the analysis (`python -m interlingua_jax.analysis --root=<suite root>`, figure
`capacity`) puts them on the same axes. The worlds' LMs are pretrained once, in a cache shared by the suite.

`--suite=configs/suites/toy_capacity.py:reduced` runs the same grid shrunk by configs/tiny.py
(seconds per run): it exercises the pipeline, not the science.
"""
import ml_collections

from configs import tiny

LEVELS = (("easy", "configs/toy.py"), ("hard", "configs/toy_hard.py"))
SOFT_TOKENS = (1, 2, 4, 8, 16)
METHODS = ("target_alone", "latent", "token_budget", "latent_shuffled", "no_latent", "chance")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "reduced"):
    raise ValueError(f"unknown capacity suite variant {arg!r}; use configs/suites/toy_capacity.py or "
                     "configs/suites/toy_capacity.py:reduced")
  shrink = tiny.SHRINK if arg == "reduced" else {}
  soft_tokens = SOFT_TOKENS[:2] if arg == "reduced" else SOFT_TOKENS
  c = ml_collections.ConfigDict()
  c.experiments = [
      dict(name=f"capacity_{level}_m{m}", config=config,
           overrides={**shrink, "translator.num_soft_tokens": m, "eval.methods": METHODS})
      for level, config in LEVELS for m in soft_tokens]
  c.overrides = ml_collections.ConfigDict({"toy.cache_dir": "{root}/toy_models"}, allow_dotted_keys=True)
  return c
