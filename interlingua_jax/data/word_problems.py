"""GSM8K-format English word problems the project generates: the offline stand-in for GSM8K on real LMs.

A problem is a start count and 1–3 operations on it (add, subtract, multiply by a small factor, share
equally), every number below 100 and every intermediate count a whole number in [2, 99]. Its *problem*
key is that arithmetic alone (start, operations, operands); the wording (a person, an item, verbs) is
drawn around it. Each problem occurs once, so train, validation (carved from train) and test are
disjoint by problem, not only by text: no test question's arithmetic is ever trained on. The answer is
a short rationale, one sentence per step, ending in GSM8K's `#### <n>` line, so the harness's strict
GSM8K scoring reads it unchanged.

    Mia has 23 stickers. She buys 15 more stickers. Then she gives 7 stickers to her brother.
    How many stickers does Mia have now?
    -> "Mia has 23 + 15 = 38 stickers.\nThen she has 38 - 7 = 31 stickers.\n#### 31"
"""
import dataclasses
import hashlib
import json
import os
import random

from interlingua_jax.core import outputs

VERSION = 1  # bump when the generator changes: cached splits are then rebuilt
MAX_NUMBER = 99  # every number in a question, rationale and answer is below 100
MAX_STEPS = 3
OPS = ("add", "subtract", "multiply", "share")

_PEOPLE = (("Mia", "she"), ("Liam", "he"), ("Emma", "she"), ("Noah", "he"), ("Olivia", "she"), ("James", "he"),
           ("Ava", "she"), ("Lucas", "he"), ("Sofia", "she"), ("Ethan", "he"), ("Chloe", "she"), ("Jack", "he"),
           ("Grace", "she"), ("Omar", "he"), ("Zara", "she"), ("Ravi", "he"), ("Nina", "she"), ("Tom", "he"))
_ITEMS = ("stickers", "marbles", "apples", "pencils", "cookies", "stamps", "books", "shells", "coins", "cards",
          "balloons", "eggs", "toy cars", "beads", "crayons", "oranges")
_GAINS = ("buys {b} more {item}", "finds {b} more {item}", "gets {b} more {item} from a friend",
          "wins {b} more {item}")
_LOSSES = ("gives {b} {item} to a friend", "loses {b} {item}", "sells {b} {item}", "uses {b} {item}")


@dataclasses.dataclass(frozen=True)
class Problem:
  """The arithmetic of one question: what fixes its answer, whatever the wording."""
  start: int
  steps: tuple[tuple[str, int], ...]  # (op, operand)

  @property
  def key(self) -> str:
    return f"{self.start}" + "".join(f"|{op}:{x}" for op, x in self.steps)

  def values(self) -> list[int]:
    """The count after each step, the start first."""
    counts = [self.start]
    for op, x in self.steps:
      c = counts[-1]
      counts.append({"add": c + x, "subtract": c - x, "multiply": c * x, "share": c // x}[op])
    return counts


def _random_problem(rng: random.Random, num_steps: int) -> Problem | None:
  """A problem whose every count stays in [2, 99]; None when the draw wandered out (the caller redraws)."""
  start = count = rng.randint(2, MAX_NUMBER)
  steps = []
  for _ in range(num_steps):
    op = rng.choice(OPS)
    if op == "add" and count < MAX_NUMBER:
      x = rng.randint(1, MAX_NUMBER - count)
      count += x
    elif op == "subtract" and count > 2:
      x = rng.randint(1, count - 2)
      count -= x
    elif op == "multiply" and 2 * count <= MAX_NUMBER:
      x = rng.randint(2, min(5, MAX_NUMBER // count))
      count *= x
    elif op == "share" and (divisors := [k for k in range(2, 10) if count % k == 0 and count // k >= 2]):
      x = rng.choice(divisors)
      count //= x
    else:
      return None
    steps.append((op, x))
  return Problem(start, tuple(steps))


def _sentence(op: str, x: int, item: str, pronoun: str, rng: random.Random) -> str:
  if op == "add":
    return f"{pronoun.capitalize()} " + rng.choice(_GAINS).format(b=x, item=item) + "."
  if op == "subtract":
    return f"{pronoun.capitalize()} " + rng.choice(_LOSSES).format(b=x, item=item) + "."
  if op == "multiply":
    return f"{pronoun.capitalize()} ends up with {x} times as many {item} as before."
  return f"{pronoun.capitalize()} shares them equally among {x} friends and keeps only one share."


_SYMBOL = {"add": "+", "subtract": "-", "multiply": "*", "share": "/"}


def render(problem: Problem, rng: random.Random, index: int) -> dict:
  """One GSM8K-format row (question, answer with rationale and `#### n`) plus its problem key and step count."""
  name, pronoun = rng.choice(_PEOPLE)
  item = rng.choice(_ITEMS)
  sentences = [f"{name} has {problem.start} {item}."]
  sentences += [_sentence(op, x, item, pronoun, rng) for op, x in problem.steps]
  question = " ".join(sentences) + f" How many {item} does {name} have now?"
  counts = problem.values()
  lines = []
  for i, (op, x) in enumerate(problem.steps):
    who = name if i == 0 else f"Then {pronoun}"
    lines.append(f"{who} has {counts[i]} {_SYMBOL[op]} {x} = {counts[i + 1]} {item}.")
  answer = "\n".join(lines) + f"\n#### {counts[-1]}"
  return {"id": f"wp-{index:05d}", "question": question, "answer": answer, "problem": problem.key,
          "steps": len(problem.steps)}


def generate(num_train: int, num_test: int, *, seed: int) -> tuple[list[dict], list[dict]]:
  """(train, test) rows: distinct problems, 1, 2 and 3 steps in turn within each split, each problem in one
  split only.

  Deterministic from the arguments. A problem whose key hashes into the first tenth belongs to the test
  split, any other to train; a split takes a drawn problem only while it is not full and the problem has
  the step count that is the split's turn; a problem is never taken twice.
  """
  rng = random.Random(seed)
  seen: set[str] = set()
  train: list[dict] = []
  test: list[dict] = []
  draws = since_last = 0
  while len(train) < num_train or len(test) < num_test:
    draws += 1
    since_last += 1
    if since_last > 20_000:  # the space of problems of this step count is exhausted for one split
      raise ValueError(f"cannot draw {num_train} + {num_test} distinct word problems with numbers below "
                       f"{MAX_NUMBER + 1}; lower word_problems.num_train / num_test.")
    problem = _random_problem(rng, 1 + draws % MAX_STEPS)
    if problem is None or problem.key in seen:
      continue
    is_test = int(hashlib.sha256(problem.key.encode()).hexdigest(), 16) % 10 == 0
    split = test if is_test else train
    if len(split) >= (num_test if is_test else num_train) or len(problem.steps) != 1 + len(split) % MAX_STEPS:
      continue
    seen.add(problem.key)
    since_last = 0
    split.append(render(problem, rng, len(seen) - 1))
  return train, test


def prepare(root: str, *, seed: int, num_train: int, num_test: int) -> dict[str, str]:
  """{"train", "test"} JSON-lines paths under `root/word_problems_<hash>/`, written once (each file whole or
  not at all, the info file last, so a killed run rebuilds rather than reads half a split)."""
  settings = dict(seed=seed, num_train=num_train, num_test=num_test, version=VERSION)
  key = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=5).hexdigest()
  directory = os.path.join(root, f"word_problems_{key}")
  paths = {"train": os.path.join(directory, "train.jsonl"), "test": os.path.join(directory, "test.jsonl")}
  info = os.path.join(directory, "info.json")
  if not os.path.exists(info):
    os.makedirs(directory, exist_ok=True)
    train, test = generate(num_train, num_test, seed=seed)
    outputs.write_jsonl(paths["train"], train)
    outputs.write_jsonl(paths["test"], test)
    outputs.write_json(info, {**settings, "train_problems": len(train), "test_problems": len(test),
                              "shared_problems": len({r["problem"] for r in train} & {r["problem"] for r in test})})
  return paths
