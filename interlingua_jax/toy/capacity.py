"""How much a toy question carries, and the capacity figure: accuracy against M and against bits.

`information(spec)` is exact, from the generator's own distribution (before the split's
rejection, which removes 1 in 10 problems): the bits of the *problem* (first count and each
(operation, amount) — what fixes the answer, so what soft tokens must carry at least; the
wording, fillers and distractors add none of it), the bits and number of distinct answers, and
the accuracy of always answering the most frequent one (chance). `overlap` measures, on the
actual splits, how many test problems also occur in training.
"""
import collections
import math
from typing import Sequence

from interlingua_jax.toy import task as toy_task


def information(spec: toy_task.TaskSpec) -> dict[str, float]:
  """{"bits_per_question", "answer_bits", "distinct_answers", "chance_accuracy"} of one setting.

  The chain rule over the generator: H(problem) = H(first count) + sum over steps of
  E[H(step | current count)], where a step is a gain (any amount) or a loss (at most the count),
  each with probability 1/2 unless the count is 0 (then a gain). The lookup world's first count
  is its person's fact, uniform over the people.
  """
  n = spec.max_operand
  if spec.lookup:
    first = collections.Counter(toy_task.fact_table(spec.table_seed, n).values())
    counts = {v: c / len(toy_task.LOOKUP_NAMES) for v, c in first.items()}
  else:
    counts = {v: 1 / n for v in range(1, n + 1)}
  bits = -sum(p * math.log2(p) for p in counts.values())
  for _ in range(spec.num_steps):
    new = collections.defaultdict(float)
    for value, p in counts.items():
      if value == 0:
        bits += p * math.log2(n)
        changes = [(p / n, value + b) for b in range(1, n + 1)]
      else:
        bits += p * (1 + 0.5 * math.log2(n) + 0.5 * math.log2(value))
        changes = ([(p / (2 * n), value + b) for b in range(1, n + 1)]
                   + [(p / (2 * value), value - b) for b in range(1, value + 1)])
      for q, result in changes:
        new[result] += q
    counts = new
  return {"bits_per_question": bits, "answer_bits": -sum(p * math.log2(p) for p in counts.values() if p),
          "distinct_answers": len(counts), "chance_accuracy": max(counts.values())}


def overlap(train: Sequence[dict], test: Sequence[dict]) -> dict[str, float]:
  """The share of test questions whose problem (and, separately, text) also occurs in training."""
  problems = {e["problem"] for e in train}
  texts = {e["question"] for e in train}
  return {"test_problems_in_train": sum(e["problem"] in problems for e in test) / max(len(test), 1),
          "test_texts_in_train": sum(e["question"] in texts for e in test) / max(len(test), 1),
          "distinct_test_problems": len({e["problem"] for e in test})}


def _final(example: dict) -> str:
  return example["answer"].rsplit("#### ", 1)[-1]


def test_baselines(train: Sequence[dict], test: Sequence[dict], spec: toy_task.TaskSpec) -> dict[str, float]:
  """Knowledge-free accuracies on the actual test split: always the test split's most common answer (chance as a
  reader should take it: `chance_accuracy` above is over the generator's whole distribution), and the prior that
  answers each test question with the most common training answer of the same change (`prior_key`)."""
  finals = collections.Counter(_final(e) for e in test)
  key = lambda e: toy_task.changes(e, spec)
  by_change: dict = collections.defaultdict(collections.Counter)
  for e in train:
    by_change[key(e)][_final(e)] += 1
  overall = collections.Counter(_final(e) for e in train)
  guess = lambda e: min((by_change.get(key(e)) or overall).most_common(), key=lambda kv: (-kv[1], kv[0]))[0]
  return {"test_majority_accuracy": max(finals.values()) / max(len(test), 1),
          "test_prior_accuracy": sum(guess(e) == _final(e) for e in test) / max(len(test), 1)}
