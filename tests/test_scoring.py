"""Scoring: strict GSM8K extraction, SQuAD EM/F1, and the scoring bugs of docs/DESIGN.md §3.2, 3.3, 3.11."""
import json

import pytest
from hypothesis import given, strategies as st

from interlingua_jax.data import scoring
from interlingua_jax.data import prompts, records


@pytest.mark.parametrize("text, expected", [
    ("She pays 6 + 6 = 12 dollars.\n#### 12", "12"),
    ("#### 1,234", "1234"),
    ("#### 1,234,567.50", "1234567.50"),
    ("#### -7", "-7"),
    ("####-7", "-7"),
    ("#### 3.75", "3.75"),
    ("#### 42.", "42"),
    ("####\t8 apples", "8"),
    ("The answer is 5.\n#### 5\n\nQ: next?\nA: 9\n#### 9", "5"),  # the first marker in the prediction
    ("#### no number\n#### 4", "4"),  # the first marker that carries a number
])
def test_extract_gsm8k(text, expected):
  assert scoring.extract_gsm8k(text) == expected


@pytest.mark.parametrize("text", [
    "The answer is 42",  # no marker
    "",
    "#### forty-two",
    "#### $42",  # strict: nothing but spaces between the marker and the number
    "####\n42",
    "### 42",
])
def test_extract_gsm8k_none(text):
  assert scoring.extract_gsm8k(text) is None


@pytest.mark.parametrize("prediction, gold, correct", [
    ("#### 5.0", "5", True),
    ("#### 5", "5.00", True),
    ("#### 1,000", "1000", True),
    ("#### -3", "-3", True),
    ("#### -3", "3", False),
    ("#### 5.5", "5", False),
    ("#### 6", "5", False),
])
def test_gsm8k_numeric_comparison(prediction, gold, correct):
  result = scoring.score("gsm8k", prediction, gold)
  assert result["correct"] is correct
  assert set(result) == {"correct", "extracted"}


def test_no_last_number_fallback():
  """docs/DESIGN.md §3.3: a prediction without `####` is wrong even when it ends in the gold."""
  prediction = "Natalia sold 48 / 2 = 24 clips in May, 48 + 24 = 72 in all. The answer is 72"
  result = scoring.score("gsm8k", prediction, "72")
  assert result == {"correct": False, "extracted": None}


def test_gold_from_record_not_from_fewshot_prefix(tmp_path):
  """docs/DESIGN.md §3.2: every exemplar ends in `#### 12`, the gold is the record's own number.

  The record goes through the real loader (`load_split`), which takes the gold from its own answer
  field; extracting from prompt + completion (the buggy way) finds the exemplars' 12, and scoring
  the prediction alone against the record's gold does not.
  """
  rows = [{"question": f"Q{i}?", "answer": "2 * 6 = 12\n#### 12"} for i in range(8)]
  (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (tmp_path / "test.jsonl").write_text(json.dumps({"question": "How many?", "answer": "3 + 4 = 7\n#### 7"}) + "\n")
  exemplars = records.load_split("gsm8k", "train", path=str(tmp_path / "train.jsonl"))
  (record,) = records.load_split("gsm8k", "test", path=str(tmp_path / "test.jsonl"))
  prompt = prompts.fewshot_prompt(record.question, exemplars)
  assert prompt.count("#### 12") == 8
  assert record.gold == "7"
  assert scoring.extract_gsm8k(prompt) == "12"  # what the buggy extractor returned as gold
  prediction = " 3 + 4 = 7\n#### 7"
  assert scoring.score("gsm8k", prediction, record.gold)["correct"]
  assert not scoring.score("gsm8k", " 2 * 6 = 12\n#### 12", record.gold)["correct"]


def test_normalize_answer():
  assert scoring.normalize_answer("  The  Eiffel-Tower!  ") == "eiffeltower"
  assert scoring.normalize_answer("An apple, a pear and THE plum.") == "apple pear and plum"
  assert scoring.normalize_answer("theatre another") == "theatre another"  # articles are whole words only


@pytest.mark.parametrize("prediction, gold, em, f1", [
    ("Paris", "paris", 1.0, 1.0),
    ("The Paris.", "paris", 1.0, 1.0),
    ("Paris France", "Paris", 0.0, 2 * (1 / 2) * 1 / (1 / 2 + 1)),
    ("the city of Paris", "Paris, the city", 0.0, 2 * (2 / 3) * 1 / (2 / 3 + 1)),
    ("London", "Paris", 0.0, 0.0),
    ("yes yes", "yes", 0.0, 2 * (1 / 2) * 1 / (1 / 2 + 1)),  # bag of words: one "yes" overlaps
])
def test_squad_em_f1(prediction, gold, em, f1):
  assert scoring.squad_em(prediction, gold) == em
  assert scoring.squad_f1(prediction, gold) == pytest.approx(f1)


def test_empty_prediction_never_correct():
  for gold in ("Paris", "The", "a"):  # golds of only articles normalise to "" too
    for prediction in ("", "   ", "the", "?!"):
      result = scoring.score("hotpotqa", prediction, gold)
      assert result["correct"] is False and result["em"] == 0.0 and result["f1"] == 0.0


def test_hotpotqa_never_uses_gsm8k_extractor():
  """docs/DESIGN.md §3.11: both sides had no `####`, both extracted to `[invalid]`, and that counted."""
  assert scoring.extract_gsm8k("Arthur's Magazine") is None
  assert scoring.extract_gsm8k("First for Women") is None  # equal extractions under the buggy scorer
  result = scoring.score("hotpotqa", "Arthur's Magazine", "First for Women")
  assert result["correct"] is False and result["em"] == 0.0 and result["f1"] == 0.0
  result = scoring.score("hotpotqa", " First for Women", "First for Women")
  assert result == {"correct": True, "extracted": "First for Women", "em": 1.0, "f1": 1.0}


def test_toy_scores_like_gsm8k():
  assert scoring.score("toy", "#### 7", "7")["correct"]
  assert not scoring.score("toy", "7", "7")["correct"]


def test_score_bad_input():
  with pytest.raises(ValueError, match="unknown dataset 'mmlu'"):
    scoring.score("mmlu", "x", "y")
  with pytest.raises(ValueError, match="gold answer must be a non-empty string"):
    scoring.score("gsm8k", "#### 1", "")
  with pytest.raises(ValueError, match="gold answer 'twelve' is not a number"):
    scoring.score("gsm8k", "#### 12", "twelve")


@given(st.integers(-10**12, 10**12))
def test_extract_roundtrips_formatted_integers(n):
  assert scoring.extract_gsm8k(f"so\n#### {n:,}") == str(n)
  assert scoring.score("gsm8k", f"#### {n:,}", str(n))["correct"]
  assert not scoring.score("gsm8k", f"#### {n + 1:,}", str(n))["correct"]


@given(st.text(max_size=30), st.text(max_size=30))
def test_f1_bounds_and_symmetry(a, b):
  f1 = scoring.squad_f1(a, b)
  assert 0.0 <= f1 <= 1.0
  assert f1 == pytest.approx(scoring.squad_f1(b, a))
  assert scoring.squad_em(a, b) <= f1 + 1e-12
