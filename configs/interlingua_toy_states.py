"""interlingua_toy_states: the toy rehearsal with the states encoder, minutes on a CPU after the toy world's
pretraining (shared with `interlingua_toy`).

The encoder reads the frozen toy Llama's final hidden states over the question and context (the world has
two models, so one target doubles as the source) instead of learning to read bytes from scratch: what the
byte rehearsal lacks is an encoder that reads, and a pretrained LM's states are the original design's other
encoder. Everything else is `interlingua_toy`: the same world, targets, M = 8 and evaluation, with 6,000 steps
instead of 1,500 (its validation F1 still rose at 1,500). configs/suites/interlingua_rehearsal.py runs both
encoders at both lengths.
"""
from configs import interlingua_toy


def get_config():
  c = interlingua_toy.get_config()
  c.name = "interlingua_toy_states"
  c.interlingua.encoder = "states"
  c.toy.source = "llama"  # resolved to the toy Llama's checkpoint directory, like the targets' paths
  c.source.dtype = "float32"
  c.source.layer = -1  # after the final norm: what the Llama's head reads
  c.train.steps = 6000
  c.train.eval_every = 500
  return c
