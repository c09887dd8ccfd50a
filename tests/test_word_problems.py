"""The generated GSM8K-format word problems: correct answers, numbers below 100, splits disjoint by problem."""
import collections
import json
import re

import pytest

from interlingua_jax.data import scoring
from interlingua_jax.data import word_problems
from interlingua_jax.data.records import load_split


@pytest.fixture(scope="module")
def splits():
  return word_problems.generate(900, 90, seed=3)


def _solve(question: str) -> int:
  """Recomputes the answer from the question's text alone, independently of the generator's arithmetic."""
  count = int(re.match(r"\w+ has (\d+) ", question).group(1))
  for sentence in re.split(r"(?<=\.) ", question)[1:-1]:
    x = int(re.search(r"(\d+)", sentence).group(1))
    if "times as many" in sentence:
      count *= x
    elif "shares them equally" in sentence:
      assert count % x == 0, sentence
      count //= x
    elif re.search(r"\b(buys|finds|gets|wins)\b", sentence):
      count += x
    else:
      assert re.search(r"\b(gives|loses|sells|uses)\b", sentence), sentence
      count -= x
  return count


def test_every_answer_is_what_the_question_says(splits):
  for row in splits[0] + splits[1]:
    gold = scoring.extract_gsm8k(row["answer"])
    assert gold == str(_solve(row["question"])), row


def test_numbers_below_100_and_counts_whole(splits):
  for row in splits[0] + splits[1]:
    numbers = [int(n) for n in re.findall(r"\d+", row["question"] + row["answer"])]
    assert max(numbers) < 100 and min(numbers) >= 1, row


def test_splits_disjoint_by_problem_and_graded(splits):
  train, test = splits
  assert len(train) == 900 and len(test) == 90
  assert not {r["problem"] for r in train} & {r["problem"] for r in test}
  assert len({r["problem"] for r in train}) == len(train)  # one wording per problem: validation too is disjoint
  assert collections.Counter(r["steps"] for r in test) == {1: 30, 2: 30, 3: 30}
  assert collections.Counter(r["steps"] for r in train) == {1: 300, 2: 300, 3: 300}
  assert len({r["id"] for r in train + test}) == len(train) + len(test)


def test_deterministic_and_seeded():
  assert word_problems.generate(60, 12, seed=1) == word_problems.generate(60, 12, seed=1)
  assert word_problems.generate(60, 12, seed=1) != word_problems.generate(60, 12, seed=2)


def test_prepare_writes_gsm8k_files_the_loader_reads(tmp_path):
  paths = word_problems.prepare(str(tmp_path), seed=0, num_train=30, num_test=9)
  train = load_split("gsm8k", "train", path=paths["train"])
  test = load_split("gsm8k", "test", path=paths["test"])
  assert len(train) == 30 and len(test) == 9
  assert all(e.answer.endswith(f"#### {e.gold}") for e in train + test)
  info = json.loads((tmp_path / next(p.name for p in tmp_path.iterdir()) / "info.json").read_text())
  assert info["shared_problems"] == 0
  again = word_problems.prepare(str(tmp_path), seed=0, num_train=30, num_test=9)
  assert again == paths


def test_impossible_sizes_are_one_clear_error():
  with pytest.raises(ValueError, match="distinct word problems"):
    word_problems.generate(10, 100_000, seed=0)
