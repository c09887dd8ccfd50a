"""The shared interlingua's toy rehearsal: byte encoder or states encoder × 1,500 or 6,000 steps, three training
seeds each (12 runs).

  python -m interlingua_jax.ablations --suite=configs/suites/interlingua_rehearsal.py --root=runs/rehearsal
  python -m interlingua_jax.analysis --root=runs/rehearsal/<timestamp>   # analysis/interlingua_sweep.tex

configs/interlingua_toy.py (bytes, 1,500 steps) and configs/interlingua_toy_states.py (the frozen toy Llama's
states, 6,000 steps), each also at the other's number of steps, on the extractive toy world; the two targets
are pretrained once per suite root (~25 min on 2 CPU cores), then each run takes minutes. The analysis table gives, per run and target, latent F1 against the token budget of the
same M, PCA and the text baseline, with the paired intervals of latent − budget and latent − PCA.
"""
import ml_collections

SEEDS = (0, 1, 2)
SHORT = {"train.steps": 1500, "train.eval_every": 250}  # interlingua_toy's own
LONG = {"train.steps": 6000, "train.eval_every": 500}  # interlingua_toy_states' own


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiments = [dict(name="bytes_1500", config="configs/interlingua_toy.py", seeds=SEEDS),
                   dict(name="bytes_6000", config="configs/interlingua_toy.py", overrides=LONG, seeds=SEEDS),
                   dict(name="states_1500", config="configs/interlingua_toy_states.py", overrides=SHORT, seeds=SEEDS),
                   dict(name="states_6000", config="configs/interlingua_toy_states.py", seeds=SEEDS)]
  c.overrides = ml_collections.ConfigDict({"toy.cache_dir": "{root}/toy_models"}, allow_dotted_keys=True)
  return c
