"""The built-in datasets GSM8K, HotpotQA (distractor) and the toy world, each one registered description
(`data/kinds.py`); SQuAD is in `data/squad.py`.
"""
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from interlingua_jax.data import scoring
from interlingua_jax.data import kinds, prompts
from interlingua_jax.data.records import CONTEXT_SEPARATOR, Example, Row


def gsm8k_example(row: Row) -> Example:
  question, answer = row.text("question"), row.text("answer")
  gold = scoring.extract_gsm8k(answer)  # this record's own answer field, nothing else
  if gold is None:
    raise row.error(f"field 'answer' has no '#### <number>' line to take the gold answer from: {answer[-80:]!r}")
  return Example(row.id, question, answer, gold=gold)


def hotpotqa_example(row: Row) -> Example:
  question, answer = row.text("question"), row.text("answer")
  return Example(row.id, question, answer, gold=answer.strip(), context=_render_context(row))


def _render_context(row: Row) -> str:
  """Titled paragraphs separated by blank lines. Reads the HF distractor layout
  `{"title": [...], "sentences": [[...], ...]}` and the original files' `[[title, [sentences]], ...]`."""
  context: Any = row.field("context")
  pairs = None
  if isinstance(context, dict):
    titles, sentences = context.get("title"), context.get("sentences")
    if isinstance(titles, list) and isinstance(sentences, list) and len(titles) == len(sentences):
      pairs = list(zip(titles, sentences))
  elif isinstance(context, list) and all(isinstance(p, list) and len(p) == 2 for p in context):
    pairs = [tuple(p) for p in context]
  if not pairs or not all(isinstance(t, str) and isinstance(s, list) and all(isinstance(x, str) for x in s)
                          for t, s in pairs):
    raise row.error(f"field 'context' must be {{'title': [str], 'sentences': [[str]]}} with one sentence list "
                    f"per title (HotpotQA distractor format), got {str(context)[:120]!r}")
  # HotpotQA sentences carry their own leading spaces, so they join with "".
  return CONTEXT_SEPARATOR.join(f"{title}: {''.join(sentences).strip()}" for title, sentences in pairs)


def drop_exemplars(example: Example, exemplars: Sequence[Example]) -> Iterator[tuple[Example, Sequence[Example]]]:
  """The few-shot rule for long prompts: drop exemplars from the end, down to none."""
  for n in range(len(exemplars) + 1):
    yield example, exemplars[:len(exemplars) - n]


def _drop_paragraphs(example: Example, exemplars: Sequence[Example]) -> Iterator[tuple[Example, Sequence[Example]]]:
  """HotpotQA's rule: drop whole context paragraphs from the end, keeping at least one."""
  if example.context is None:  # no paragraphs to drop: the prompt names the problem
    yield example, exemplars
    return
  paragraphs = example.context.split(CONTEXT_SEPARATOR)
  for n in range(len(paragraphs)):
    yield dataclasses.replace(example, context=CONTEXT_SEPARATOR.join(paragraphs[:len(paragraphs) - n])), exemplars


def context_prompt(name: str) -> Callable[[Example, Sequence[Example]], str]:
  """Reading comprehension (`name`'s prompt): the passage, then the question; zero-shot."""
  def prompt(example: Example, exemplars: Sequence[Example]) -> str:
    if exemplars:
      raise ValueError(f"{name} prompts take no exemplars: set data.num_shots = 0")
    if example.context is None:
      raise ValueError(f"{name} example {example.id!r} has no context paragraphs")
    return prompts.hotpotqa_prompt(example.question, example.context)
  return prompt


def _number_score(prediction: str, golds: tuple[str, ...]) -> dict:
  extracted = scoring.extract_gsm8k(prediction)
  return {"correct": scoring.gsm8k_equal(extracted, golds[0]), "extracted": extracted}


def span_score(prediction: str, golds: tuple[str, ...]) -> dict:
  """SQuAD EM/F1, each the max over the golds as the official script takes it; `correct` is exact match."""
  em = max(scoring.squad_em(prediction, gold) for gold in golds)
  return {"correct": em == 1.0, "extracted": prediction.strip(), "em": em,
          "f1": max(scoring.squad_f1(prediction, gold) for gold in golds)}


kinds.register(kinds.Dataset(
    "gsm8k", example=gsm8k_example, prompt=lambda e, shots: prompts.fewshot_prompt(e.question, shots),
    shorter=drop_exemplars, score=_number_score, hub_splits="openai/gsm8k main: train, test"))
kinds.register(kinds.Dataset(
    "hotpotqa", example=hotpotqa_example, prompt=context_prompt("hotpotqa"), shorter=_drop_paragraphs, score=span_score,
    metrics=("em", "f1"), hub_splits="HotpotQA distractor: train, validation"))
# The toy world's tiny models learn the bare zero-shot format, without the instruction.
kinds.register(kinds.Dataset(
    "toy", example=gsm8k_example, prompt=lambda e, shots: prompts.fewshot_prompt(e.question, shots, instruction=None),
    shorter=drop_exemplars, score=_number_score))
