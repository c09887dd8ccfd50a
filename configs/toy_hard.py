"""toy_hard: the hardest graded toy world the tiny LMs learn in minutes on a CPU — two chained
changes ("3 + 4 = 7\n7 - 2 = 5\n#### 5") and test *problems* that never occur in training.
~10.5 bits per question against the easy world's 6.8 (`info.json` beside the data gives the
exact figures). Fewer fillers than the easy world keep the questions short enough to pretrain
on a CPU.

Harder knobs exist (task.TaskSpec), but measured with these 2-layer LMs: counts up to 15 and a
second person with one change (12.6 bits): the source reached 23% after 1,500 pretraining steps;
a second person's count as the only distractor (still 10.5 bits): the target reached 53.5% after
1,000 steps, taking the right person's count in only 57% of the questions (a coin flip between
the two people). Neither leaves room to read a bridge result.

The translator trains 3,000 steps here (the easy world's 1,000 are not enough): measured at M = 16,
validation accuracy 0.53 at step 1,000, 0.78 at 1,500, 0.87 at 2,000 of a 3,000-step schedule.
"""
from configs import toy


def get_config():
  c = toy.get_config()
  c.name = "toy_hard"
  c.toy.world.task.update(dict(num_steps=2, max_operand=9, num_entities=1, num_distractors=0, split="problem",
                              min_filler=1, max_filler=2))
  c.toy.world.pretrain_steps = 1000
  c.train.steps = 3000
  c.data.max_answer_len = 32
  c.eval.max_new_tokens = 24
  return c
