"""The shared interlingua's toy rehearsal: the byte encoder and the states encoder, three training seeds each.

  python -m interlingua_jax.ablations --suite=configs/suites/interlingua_rehearsal.py --root=runs/rehearsal
  python -m interlingua_jax.analysis --root=runs/rehearsal/<timestamp>   # analysis/interlingua_sweep.tex

configs/interlingua_toy.py (bytes) and configs/interlingua_toy_states.py (the frozen toy Llama's states) on the
extractive toy world; the two targets are pretrained once per suite root (~25 min on 2 CPU cores), then each
run takes minutes. The analysis table gives, per run and target, latent F1 against the token budget of the
same M, PCA and the text baseline, with the paired intervals of latent − budget and latent − PCA.
"""
import ml_collections

SEEDS = (0, 1, 2)


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.experiments = [dict(name="bytes", config="configs/interlingua_toy.py", seeds=SEEDS),
                   dict(name="states", config="configs/interlingua_toy_states.py", seeds=SEEDS)]
  c.overrides = ml_collections.ConfigDict({"toy.cache_dir": "{root}/toy_models"}, allow_dotted_keys=True)
  return c
