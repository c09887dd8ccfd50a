"""toy_complementary: a world where each model knows what the other lacks.

The first count of each question is a private fact ("as many pens as the lucky number of
Sam"): only the source LM pretrained on the fact table, and it learned to answer with the
looked-up count and the change ("5 + 6"), never the result nor the `#### n` line. The target
pretrained on the same problems with the count stated, so it computes and writes
"5 + 6 = 11\n#### 11" but never saw a fact. Test questions are about 8 held-out people the
translator never trains on (the source knows their facts from pretraining), so `latent` can
only succeed if the soft tokens carry the source's knowledge; alone, each model should fail
(near `chance_accuracy` in the world's info.json).
"""
from configs import toy


def get_config():
  c = toy.get_config()
  c.name = "toy_complementary"
  c.toy.world.task.update(dict(lookup=True, split="problem"))
  # What would explain `latent` without the fact crossing (prior, the name swaps) and the bridge's ceiling.
  c.eval.methods = (*c.eval.methods, "source_fact", "latent_name_swap", "latent_unknown_name", "text_relay_stated")
  c.source.layer = -1  # the fact is needed to predict the source's first answer token: read its last layer
  return c
