"""interlingua_toy_states: the toy rehearsal with the states encoder, about 1.5 minutes on a CPU after the toy
world's pretraining (shared with `interlingua_toy`).

The encoder reads the frozen toy Llama's final hidden states over the question and context (the world has
two models, so one target doubles as the source) instead of learning to read bytes from scratch: what the
byte rehearsal lacks is an encoder that reads, and a pretrained LM's states are the seed design's other
encoder. Everything else is `interlingua_toy`: the same world, targets, M = 8, steps and evaluation.
"""
from configs import interlingua_toy


def get_config():
  c = interlingua_toy.get_config()
  c.name = "interlingua_toy_states"
  c.interlingua.encoder = "states"
  c.toy.source = "llama"  # resolved to the toy Llama's checkpoint directory, like the targets' paths
  c.source.dtype = "float32"
  c.source.layer = -1  # after the final norm: what the Llama's head reads
  return c
