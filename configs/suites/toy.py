"""The paper suite rehearsed on the toy world (configs/toy.py), small enough for a CPU.

Mirrors configs/suites/paper.py: the stability ablation (stable vs no fixes at the same M),
each arm trained with three seeds, and a three-point soft-token sweep, M = 8/6/4 being 64/48/32
scaled down by 8. The runs share one cache of pretrained toy LMs under the suite root, so those
are pretrained once.

`--suite=configs/suites/toy.py:reduced` runs the stability ablation alone on configs/tiny.py
(barely trained LMs, a few steps), two seeds with the fixes and one without: it exercises the whole
pipeline and the analysis across seeds (the end-to-end test), not the science.
"""
import ml_collections

_NO_FIXES = {"loss.infonce_weight": 0.0, "train.early_stopping": False}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "reduced"):
    raise ValueError(f"unknown toy suite variant {arg!r}; use configs/suites/toy.py or "
                     "configs/suites/toy.py:reduced")
  reduced = arg == "reduced"
  config = "configs/tiny.py" if reduced else "configs/toy.py"
  seeds = (0, 1) if reduced else (0, 1, 2)
  c = ml_collections.ConfigDict()
  c.experiments = [
      dict(name="toy_stable_8", config=config, overrides={"translator.num_soft_tokens": 8}, seeds=seeds),
      dict(name="toy_baseline_8", config=config, overrides={"translator.num_soft_tokens": 8, **_NO_FIXES},
           seeds=seeds[:1] if reduced else seeds),
  ]
  if not reduced:
    c.experiments += [dict(name=f"toy_stable_{m}", config=config, overrides={"translator.num_soft_tokens": m})
                      for m in (6, 4)]
  c.overrides = ml_collections.ConfigDict({"toy.cache_dir": "{root}/toy_models"},
                                          allow_dotted_keys=True)
  return c
