"""toy_hard: the hardest graded toy world the tiny LMs learn in minutes on a CPU — two chained
changes, a second person whose count is a numeric distractor (stated first half of the time, so
copying the first number is wrong), and test *problems* that never occur in training.
~10.5 bits per question against the easy world's 6.8 (`info.json` beside the data gives the
exact figures). Fewer fillers than the easy world keep the questions short enough to pretrain
on a CPU; the distractor already puts the asked numbers away from the start.

Harder knobs exist (task.TaskSpec: max_operand, num_distractors, ...), but measured: with counts
up to 15 and one distractor change (12.6 bits) the 2-layer source reached only 23% after 1,500
pretraining steps, so no bridge result there could be read.
"""
from configs import toy


def get_config():
  c = toy.get_config()
  c.name = "toy_hard"
  c.toy.world.task.update(dict(num_steps=2, max_operand=9, num_entities=2, num_distractors=0, split="problem",
                              min_filler=1, max_filler=2))
  c.toy.world.pretrain_steps = 1000
  c.data.max_answer_len = 32
  c.eval.max_new_tokens = 24
  return c
