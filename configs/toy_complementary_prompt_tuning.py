"""toy_complementary_prompt_tuning: the complementary world's learned-prefix control.

The same translator, trained the same steps on the same questions, but reading zeros instead of the
source's states (`translator.reads_source=False`): its M soft tokens are learned constants that never
see the question. Its `latent` is what training alone buys the target; the bridge's `latent` in
configs/toy_complementary.py is read against it.
"""
from configs import toy_complementary


def get_config():
  c = toy_complementary.get_config()
  c.name = "toy_complementary_prompt_tuning"
  c.translator.reads_source = False
  c.eval.methods = ("target_alone", "latent", "no_latent", "prior")
  return c
