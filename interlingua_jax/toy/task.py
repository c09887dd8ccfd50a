"""A synthetic GSM8K-format task small enough to learn from scratch on a CPU in minutes, with
knobs for how much a question carries.

The easy world (`TaskSpec()`): a question states one count early ("Ann has 3 pens."), pads the
middle with number-free filler sentences, and only at the end says what changed ("Later Ann
loses 2 pens.") and what is asked. The answer is a rationale and the GSM8K final line:
"3 - 2 = 1\n#### 1". The second operand and the operation lie far beyond the first few tokens,
so a prompt truncated to a small token budget cannot be answered.

The knobs (`TaskSpec`) make a question carry more (docs/DESIGN.md §6): `num_steps` chained
changes to the asked count ("3 + 4 = 7\n7 - 2 = 5\n#### 5"), `max_operand` (two-digit
numbers), `num_entities` (other people with counts of the same item, stated with numbers, so
copying the first numbers is wrong) and `num_distractors` (changes to those other counts).
`lookup=True` is the complementary world: the first count is not stated but named ("as many
as her lucky number"), a fact only the source LM learns in pretraining (`pretrain_texts`).

Splits are disjoint by construction: `is_test` decides from the question's text
(`split="text"`) or from its *problem*, the numbers and operations that fix the answer
(`split="problem"`: no test problem occurs in training under any wording), and every train or
pretraining sampler rejects test questions.
"""
import dataclasses
import functools
import hashlib
import json
import os
import re
from typing import Callable, Sequence

import numpy as np

from interlingua_jax.core import outputs

NAMES = ("Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Leo")
# The complementary world's people: its fact table covers these too, and questions about the
# last HELD_OUT_NAMES of them are the only test questions (the bridge never trains on them).
LOOKUP_NAMES = NAMES + ("Max", "Ned", "Ola", "Pam", "Rex", "Sam", "Tom", "Una", "Val", "Wes", "Zoe", "Amy")
HELD_OUT_NAMES = 8
UNKNOWN_NAME = "Bob"  # a person no toy LM ever read about: the name-swap control's unknown name
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
_TEST_BUCKETS = 10  # 1 in 10 of all possible questions (or problems) is reserved for the test split
VERSION = 2  # bump whenever the generator changes: cached toy models and data are then rebuilt
# The text a toy LM pretrains on (between <s> and </s>): the harness's zero-shot prompt
# (`data.prompts.fewshot_prompt` without instruction) followed by " " + the answer.
LM_TEMPLATE = "Q: {question}\nA: {answer}"
SPLITS = ("text", "problem")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """How much a toy question carries; the defaults are the easy world of configs/toy.py."""
  num_steps: int = 1  # chained changes to the asked count
  max_operand: int = 9  # counts and changes are drawn from 1..max_operand
  num_entities: int = 1  # people with a count of the item; all but the asked one are distractors
  num_distractors: int = 0  # changes to the other people's counts, among the asked one's
  min_filler: int = 2  # number-free sentences after the first count
  max_filler: int = 4
  split: str = "text"  # "text" | "problem": what a test question must not share with training
  lookup: bool = False  # the complementary world: the first count is a fact only the source knows
  table_seed: int = 0  # the lookup world's fact table

  def __post_init__(self):
    if self.num_steps < 1 or self.max_operand < 1:
      raise ValueError(f"toy.task: need num_steps >= 1 and max_operand >= 1, got {self.num_steps}, "
                       f"{self.max_operand}")
    if not 0 <= self.min_filler <= self.max_filler:
      raise ValueError(f"need 0 <= min_filler <= max_filler, got {self.min_filler}, {self.max_filler}")
    if not 1 <= self.num_entities <= len(NAMES):
      raise ValueError(f"toy.task.num_entities must be in 1..{len(NAMES)}, got {self.num_entities}")
    if self.num_distractors and self.num_entities < 2:
      raise ValueError(f"toy.task.num_distractors={self.num_distractors} needs num_entities >= 2 "
                       "(distractor changes happen to the other people)")
    if self.split not in SPLITS:
      raise ValueError(f"toy.task.split must be one of {SPLITS}, got {self.split!r}")
    if self.lookup and (self.num_entities > 1 or self.split != "problem"):
      raise ValueError("toy.task.lookup=True needs num_entities=1 and split='problem' (its test split is "
                       "held-out people's problems)")


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
  return options[rng.integers(len(options))]


def _filler(rng: np.random.Generator, count: int) -> list[str]:
  return [_FILLERS[rng.integers(len(_FILLERS))](rng) for _ in range(count)]


@functools.cache
def fact_table(table_seed: int, max_operand: int) -> dict[str, int]:
  """The lookup world's private facts: each person's lucky number."""
  rng = np.random.default_rng([table_seed, 7])
  return {name: int(v) for name, v in zip(LOOKUP_NAMES, rng.integers(1, max_operand + 1, len(LOOKUP_NAMES)))}


def _change(rng: np.random.Generator, current: int, max_operand: int) -> tuple[bool, int, str]:
  """(gain, amount, verb): a loss never takes more than there is."""
  gain = current == 0 or bool(rng.integers(2))
  b = int(rng.integers(1, (max_operand if gain else current) + 1))
  return gain, b, _pick(rng, GAIN_VERBS if gain else LOSS_VERBS)


def _event(rng: np.random.Generator, name: str, change: tuple[bool, int, str], item: str) -> str:
  gain, b, verb = change
  return f"{_pick(rng, _TIMES)} {name} {verb} {b}{' more' if gain else ''} {item}."


def sample_example(rng: np.random.Generator, spec: TaskSpec = TaskSpec(), *,
                   explicit: bool = False) -> dict:
  """One question of either split: {"question", "answer", "problem"}.

  "problem" is what fixes the answer: (first count, (op, amount) per step) — with the person's
  name in the lookup world. `explicit=True` states a lookup question's first count outright
  (the text the target LM pretrains on). At most one filler sentence comes before the first
  count, so its position varies too.
  """
  names = LOOKUP_NAMES if spec.lookup else NAMES
  name, item = _pick(rng, names), _pick(rng, ITEMS)
  if spec.lookup and not explicit:
    a = fact_table(spec.table_seed, spec.max_operand)[name]
  else:  # the target's explicit lookup texts draw the count: they must not teach the fact table
    a = int(rng.integers(1, spec.max_operand + 1))
  steps, lines, current = [], [], a
  for _ in range(spec.num_steps):
    gain, b, verb = _change(rng, current, spec.max_operand)
    new = current + b if gain else current - b
    steps.append((gain, b, verb))
    lines.append(f"{current} {'+' if gain else '-'} {b} = {new}")
    current = new
  filler = _filler(rng, int(rng.integers(spec.min_filler, spec.max_filler + 1)))
  before = int(rng.integers(min(1, len(filler)) + 1))
  events = [_event(rng, name, step, item) for step in steps]
  if spec.lookup and not explicit:
    facts = [f"{name} has as many {item} as the lucky number of {name}."]
  else:
    facts = [f"{name} has {a} {item}."]
  if spec.num_entities > 1:  # drawn after the rest, so the easy world's stream stays as it was
    others = [str(n) for n in rng.permutation([n for n in NAMES if n != name])[:spec.num_entities - 1]]
    counts = {n: int(rng.integers(1, spec.max_operand + 1)) for n in others}
    facts += [f"{n} has {counts[n]} {item}." for n in others]
    facts = [facts[i] for i in rng.permutation(len(facts))]
    for _ in range(spec.num_distractors):
      other = _pick(rng, others)
      change = _change(rng, counts[other], spec.max_operand)
      counts[other] += change[1] if change[0] else -change[1]
      events.insert(int(rng.integers(len(events) + 1)), _event(rng, other, change, item))
  sentences = filler[:before] + facts + filler[before:] + events + [f"How many {item} does {name} have now?"]
  problem = (a,) + tuple(("+" if gain else "-", b) for gain, b, _ in steps)
  return {"question": " ".join(sentences), "answer": "\n".join(lines) + f"\n#### {current}",
          "problem": ((name,) if spec.lookup else ()) + problem}


def _bucket(text: str, buckets: int) -> int:
  digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
  return int.from_bytes(digest, "little") % buckets


def is_test_question(question: str) -> bool:
  """The text split: a question's split fixed by its text alone (so no sampler can leak)."""
  return _bucket(question, _TEST_BUCKETS) == 0


def is_test(example: dict, spec: TaskSpec = TaskSpec()) -> bool:
  """Whether an example belongs to the test split, by text or by problem (see the module doc).

  In the lookup world half the problems of the held-out people are test problems; their other
  half only the source LM reads in pretraining, so it knows their facts.
  """
  if spec.split == "text":
    return is_test_question(example["question"])
  if spec.lookup:
    return (example["problem"][0] in LOOKUP_NAMES[-HELD_OUT_NAMES:]
            and _bucket(repr(example["problem"]), 2) == 0)
  return _bucket(repr(example["problem"]), _TEST_BUCKETS) == 0


def _in_split(example: dict, spec: TaskSpec, split: str) -> bool:
  """Split "train" is the bridge's data, "test" the test, "pretrain" any non-test question."""
  if is_test(example, spec):
    return split == "test"
  held_out = spec.lookup and example["problem"][0] in LOOKUP_NAMES[-HELD_OUT_NAMES:]
  return split == "pretrain" or (split == "train" and not held_out)


def sample_split(rng: np.random.Generator, split: str, num: int, spec: TaskSpec = TaskSpec(),
                 explicit: bool = False) -> list[dict]:
  """num fresh examples of one split (repeats possible): the pretraining and bridge-training stream."""
  if split not in ("train", "test", "pretrain"):
    raise ValueError(f"split must be 'train', 'test' or 'pretrain', got {split!r}")
  out = []
  while len(out) < num:
    example = sample_example(rng, spec, explicit=explicit)
    if _in_split(example, spec, split):
      out.append(example)
  return out


def make_split(split: str, num: int, *, seed: int, spec: TaskSpec = TaskSpec()) -> list[dict]:
  """A fixed split of num distinct questions, the same for the same seed."""
  if num < 0:
    raise ValueError(f"num must be >= 0, got {num}")
  rng = np.random.default_rng([seed, 0 if split == "train" else 1])
  seen, out = set(), []
  while len(out) < num:
    for example in sample_split(rng, split, 1, spec):
      if example["question"] not in seen:
        seen.add(example["question"])
        out.append(example)
  return out


def lm_text(example: dict, template: str = LM_TEMPLATE) -> str:
  return template.format(question=example["question"], answer=example["answer"])


def source_answer(example: dict) -> str:
  """What the lookup world's source learns to answer: the looked-up count and the changes, never the
  result nor the `#### n` line (so alone it scores nothing, yet it must know the fact)."""
  return " ".join([str(example["problem"][1])] + [f"{op} {b}" for op, b in example["problem"][2:]])


def pretrain_texts(spec: TaskSpec = TaskSpec(), role: str = "target",
                   template: str = LM_TEMPLATE) -> Callable[[np.random.Generator, int], list[str]]:
  """A `sample_texts(rng, n)` of fresh non-test texts for `pretrain.pretrain_lm`.

  Both roles read train questions with their answers, except in the lookup world: the source
  reads every non-test lookup question with `source_answer` (it learns the facts, not the
  arithmetic nor the answer format); the target reads the same problems with the count stated
  (it learns the arithmetic, never the facts).
  """
  if role not in ("source", "target"):
    raise ValueError(f"role must be 'source' or 'target', got {role!r}")
  if not spec.lookup:
    return lambda rng, n: [lm_text(e, template) for e in sample_split(rng, "train", n, spec)]
  if role == "source":
    return lambda rng, n: [template.format(question=e["question"], answer=source_answer(e))
                           for e in sample_split(rng, "pretrain", n, spec)]
  return lambda rng, n: [lm_text(e, template) for e in sample_split(rng, "pretrain", n, spec, explicit=True)]


def lookup_probes(example: dict, spec: TaskSpec) -> dict[str, str]:
  """What the complementary world's controls read for one lookup question (`methods.PROBES`).

  "name_swap": the question about another known person whose fact differs (so a bridge that carries the fact
  must now carry the wrong one); "unknown_name": about a person no LM ever read; "fact": the private count,
  what the source's answer starts with (its fact accuracy, the bridge's ceiling); "stated": the question in the
  target's own pretraining format, the fact sentence stating a count, `{count}` left to fill (the text relay
  that writes the source's number into it).
  """
  name, fact = example["problem"][0], example["problem"][1]
  item = re.search(rf"\b{name} has as many (\w+) as the lucky number of {name}\.", example["question"]).group(1)
  table = fact_table(spec.table_seed, spec.max_operand)
  others = sorted(n for n in LOOKUP_NAMES if table[n] != fact)
  other = others[_bucket(example["question"], len(others))]
  rename = lambda new: re.sub(rf"\b{name}\b", new, example["question"])
  stated = example["question"].replace(f"{name} has as many {item} as the lucky number of {name}.",
                                       f"{name} has {{count}} {item}.")
  return {"name_swap": rename(other), "unknown_name": rename(UNKNOWN_NAME), "fact": str(fact), "stated": stated}


def changes(example: dict, spec: TaskSpec) -> tuple:
  """The problem without its first count (and person): what a question says without any private fact."""
  return example["problem"][2:] if spec.lookup else example["problem"][1:]


def data_row(example: dict, spec: TaskSpec) -> dict:
  """One JSON-lines row: GSM8K's own field names (the real GSM8K loader reads the toy splits), the problem as the
  question's cluster (its near-duplicates differ only in wording), the change without the first count as the
  knowledge-free prior's key, and in the lookup world the controls' probes."""
  row = {"question": example["question"], "answer": example["answer"], "cluster": json.dumps(example["problem"]),
         "prior_key": json.dumps(changes(example, spec))}
  if spec.lookup:
    row["probes"] = lookup_probes(example, spec)
  return row


def write_jsonl(path: str, examples: Sequence[dict], spec: TaskSpec = TaskSpec()) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  outputs.write_jsonl(path, (data_row(e, spec) for e in examples))
