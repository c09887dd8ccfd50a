"""Answer scoring: strict GSM8K `####` extraction and SQuAD-normalised EM / F1 for HotpotQA and SQuAD.

The first implementation's headline number came from scoring bugs (docs/DESIGN.md §3.2, 3.3,
3.11): a lenient "last number in the text" fallback, and HotpotQA scored with the GSM8K
extractor so that two failed extractions compared equal. Here a GSM8K prediction without
a `#### <number>` marker is wrong, and HotpotQA never goes near the number extractor.
"""
import collections
import decimal
import re
import string
from collections.abc import Sequence

from interlingua_jax.data import kinds

# The official GSM8K answer pattern: `####`, then the number (thousands commas allowed).
# Spaces or tabs may separate them, never a newline; nothing else (no `$`, no words).
_GSM8K_ANSWER = re.compile(r"####[ \t]*(-?\d[\d,]*(?:\.\d+)?)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def extract_gsm8k(text: str) -> str | None:
  """The number after the first `#### <number>` in `text`, commas removed; None if absent.

  Callers pass the *prediction* (the generated text with the prompt stripped), so the
  first marker is the model's own answer, never an exemplar's. A model that goes on to
  invent a next question and answers it too is scored on its first answer. There is
  deliberately no fallback to the last number in the text (docs/DESIGN.md §3.3).
  """
  match = _GSM8K_ANSWER.search(text)
  return None if match is None else match.group(1).replace(",", "")


def gsm8k_equal(extracted: str | None, gold: str) -> bool:
  """Numeric equality, so that `5.0` matches `5`; an absent extraction is wrong."""
  if extracted is None:
    return False
  return _as_number(extracted, "extracted answer") == _as_number(gold, "gold answer")


def _as_number(text: str, what: str) -> decimal.Decimal:
  try:
    return decimal.Decimal(text.replace(",", ""))
  except decimal.InvalidOperation:
    raise ValueError(f"{what} {text!r} is not a number; GSM8K golds come from the record's "
                     "`#### <number>` line (records.load_split extracts them)") from None


def normalize_answer(text: str) -> str:
  """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace."""
  text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def squad_em(prediction: str, gold: str) -> float:
  """1.0 when the normalised strings match. A prediction that normalises to nothing never
  scores, even against a gold that also normalises to nothing (docs/DESIGN.md §3.11)."""
  pred = normalize_answer(prediction)
  return float(bool(pred) and pred == normalize_answer(gold))


def squad_f1(prediction: str, gold: str) -> float:
  """Token-overlap F1 between the normalised strings (bag of words, as SQuAD scores it)."""
  pred_tokens = normalize_answer(prediction).split()
  gold_tokens = normalize_answer(gold).split()
  common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
  if common == 0:
    return 0.0
  precision = common / len(pred_tokens)
  recall = common / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def score(dataset: str, prediction: str, gold: str | Sequence[str]) -> dict:
  """Scores one prediction (prompt already stripped) against the record's gold, or all its golds
  (`Example.golds`), by its dataset's registered scorer (`data/kinds.py`).

  Returns `correct` and `extracted` for every dataset, plus the dataset's extra metrics (`em` and `f1`
  for hotpotqa and squad, the max over the golds, whose `extracted` is the stripped prediction and whose
  `correct` is exact match).
  """
  golds = (gold,) if isinstance(gold, str) else tuple(gold)
  if not golds or not all(isinstance(g, str) and g.strip() for g in golds):
    raise ValueError(f"gold answer must be a non-empty string, got {gold!r}")
  return kinds.get(dataset).score(prediction, golds)
