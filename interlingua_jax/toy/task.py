"""A synthetic GSM8K-format task small enough to learn from scratch on a CPU in minutes.

Each question states one count early ("Ann has 3 pens."), pads the middle with
number-free filler sentences, and only at the end says what changed ("Later Ann
loses 2 pens.") and what is asked. The answer is a one-step rationale and the
GSM8K final line: "3 - 2 = 1\n#### 1". So the text solution is easy for a tiny
RoPE LM (copy two digits, add or subtract them), while the second operand and
the operation lie far beyond the first few tokens: a prompt truncated to a small
token budget cannot be answered, but a translator that reads the whole question
can pass the two numbers and the operation on.

Splits are disjoint by construction: a question belongs to the test split iff a
stable hash of its text falls in one bucket, and every train or pretraining
sampler rejects such questions.
"""
import hashlib
import json
import os
from typing import Callable, Sequence

import numpy as np

NAMES = ("Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Leo")
ITEMS = ("apples", "pens", "cards", "coins", "eggs", "books", "stamps", "shells", "keys", "cups")
GAIN_VERBS = ("buys", "finds", "gets", "wins", "makes")
LOSS_VERBS = ("loses", "sells", "eats", "drops", "breaks")
_TIMES = ("Later", "Then", "After that", "Next")
_ADJECTIVES = ("warm", "cold", "long", "quiet", "busy", "sunny", "grey", "calm")
_PLACES = ("park", "shop", "lake", "school", "market", "farm", "river", "hill")
_ACTIVITIES = ("to sing", "to read", "to swim", "to paint", "to run", "to cook", "to draw", "to dance")
_THINGS = ("sky", "road", "wind", "sea", "room", "town", "garden", "bus")
_FILLERS = (
    lambda r: f"{_pick(r, NAMES)} likes {_pick(r, _ACTIVITIES)}.",
    lambda r: f"The {_pick(r, _THINGS)} is {_pick(r, _ADJECTIVES)} today.",
    lambda r: f"{_pick(r, NAMES)} walks to the {_pick(r, _PLACES)}.",
    lambda r: f"It is a {_pick(r, _ADJECTIVES)} day in the {_pick(r, _PLACES)}.",
    lambda r: f"{_pick(r, NAMES)} and {_pick(r, NAMES)} talk about the {_pick(r, _THINGS)}.",
    lambda r: f"Nobody wants {_pick(r, _ACTIVITIES)} at the {_pick(r, _PLACES)}.",
)
MAX_OPERAND = 9
_TEST_BUCKETS = 10  # 1 in 10 of all possible questions is reserved for the test split
VERSION = 1  # bump whenever the generator changes: cached toy models and data are then rebuilt
# The text a toy LM pretrains on (between <s> and </s>): the harness's zero-shot prompt
# (`data.prompts.fewshot_prompt` without instruction) followed by " " + the answer.
LM_TEMPLATE = "Q: {question}\nA: {answer}"


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
  return options[rng.integers(len(options))]


def _filler(rng: np.random.Generator, count: int) -> list[str]:
  return [_FILLERS[rng.integers(len(_FILLERS))](rng) for _ in range(count)]


def sample_example(rng: np.random.Generator, *, min_filler: int = 2, max_filler: int = 4) -> dict[str, str]:
  """One question of either split as a GSM8K record {"question", "answer"}.

  min_filler..max_filler number-free sentences separate the first operand from
  the second; at most one of them comes before the first operand, so the first
  operand's position varies too.
  """
  if not 0 <= min_filler <= max_filler:
    raise ValueError(f"need 0 <= min_filler <= max_filler, got {min_filler}, {max_filler}")
  name, item = _pick(rng, NAMES), _pick(rng, ITEMS)
  a = int(rng.integers(1, MAX_OPERAND + 1))
  gain = bool(rng.integers(2))
  b = int(rng.integers(1, (MAX_OPERAND if gain else a) + 1))
  verb = _pick(rng, GAIN_VERBS if gain else LOSS_VERBS)
  more = " more" if gain else ""
  filler = _filler(rng, int(rng.integers(min_filler, max_filler + 1)))
  before = int(rng.integers(min(1, len(filler)) + 1))
  sentences = (filler[:before] + [f"{name} has {a} {item}."] + filler[before:]
               + [f"{_pick(rng, _TIMES)} {name} {verb} {b}{more} {item}.",
                  f"How many {item} does {name} have now?"])
  result = a + b if gain else a - b
  answer = f"{a} {'+' if gain else '-'} {b} = {result}\n#### {result}"
  return {"question": " ".join(sentences), "answer": answer}


def is_test_question(question: str) -> bool:
  """The split a question belongs to, fixed by its text alone (so no sampler can leak)."""
  digest = hashlib.blake2b(question.encode("utf-8"), digest_size=8).digest()
  return int.from_bytes(digest, "little") % _TEST_BUCKETS == 0


def sample_split(rng: np.random.Generator, split: str, num: int, **kwargs) -> list[dict[str, str]]:
  """num fresh examples of one split (repeats possible): the pretraining and translator stream."""
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  want_test = split == "test"
  out = []
  while len(out) < num:
    example = sample_example(rng, **kwargs)
    if is_test_question(example["question"]) == want_test:
      out.append(example)
  return out


def make_split(split: str, num: int, *, seed: int, **kwargs) -> list[dict[str, str]]:
  """A fixed split of num distinct questions, the same for the same seed."""
  if num < 0:
    raise ValueError(f"num must be >= 0, got {num}")
  rng = np.random.default_rng([seed, 0 if split == "train" else 1])
  seen, out = set(), []
  while len(out) < num:
    for example in sample_split(rng, split, 1, **kwargs):
      if example["question"] not in seen:
        seen.add(example["question"])
        out.append(example)
  return out


def lm_text(example: dict[str, str], template: str = LM_TEMPLATE) -> str:
  return template.format(question=example["question"], answer=example["answer"])


def text_sampler(template: str = LM_TEMPLATE, **kwargs) -> Callable[[np.random.Generator, int], list[str]]:
  """A `sample_texts(rng, n)` of fresh train-split texts for `pretrain.pretrain_lm`."""
  return lambda rng, n: [lm_text(e, template) for e in sample_split(rng, "train", n, **kwargs)]


def write_jsonl(path: str, examples: Sequence[dict[str, str]]) -> None:
  """GSM8K's own field names, so the real GSM8K loading code reads the toy splits."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for example in examples:
      f.write(json.dumps({"question": example["question"], "answer": example["answer"]}) + "\n")
  os.replace(tmp, path)
