"""toy_hard: the hardest graded toy world — two chained changes, counts up to 15, a second
person whose count (and one change) are numeric distractors, and test *problems* that never
occur in training. ~12.6 bits per question against the easy world's 6.8 (`info.json` beside
the data gives the exact figures). Fewer fillers than the easy world keep the questions short
enough to pretrain on a CPU; the distractors already put the asked numbers far from the start.
"""
from configs import toy


def get_config():
  c = toy.get_config()
  c.name = "toy_hard"
  c.toy.world.task.update(dict(num_steps=2, max_operand=15, num_entities=2, num_distractors=1, split="problem",
                              min_filler=1, max_filler=2))
  c.toy.world.pretrain_steps = 1500
  c.data.max_answer_len = 32
  c.eval.max_new_tokens = 24
  return c
