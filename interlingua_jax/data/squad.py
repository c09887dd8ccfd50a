"""SQuAD v1.1 as a registered dataset "squad": a paragraph, a question, and an answer that is a span of it.

Reads the official nested `.json` (`{"data": [{"paragraphs": [{"context", "qas": [{"id", "question",
"answers": [{"text", "answer_start"}]}]}]}]}`), flat `.jsonl`/`.parquet` rows in the HF `rajpurkar/squad`
layout (`id, title, context, question, answers={"text": [...], "answer_start": [...]}`) or the hub by name
(`data.hf_name = "rajpurkar/squad"`, splits train and validation). A question has one or more gold
answers; EM and F1 are the max over them, as the official evaluate-v1.1 script scores.

The long-prompt rule is skip-and-count: the context is one paragraph holding the answer, so cutting it
could cut the answer out; a prompt over the budget is skipped and counted (`prompts.fit_prompt`).
"""
from collections.abc import Iterator, Sequence

from interlingua_jax.data import builtin, kinds
from interlingua_jax.data.records import Example, Row


def unnest(document: dict) -> list[dict]:
  """The official nested file as flat HF-layout rows; an object without "data" is one flat row."""
  if "data" not in document:
    return [document]
  rows = []
  for article in document["data"]:
    for paragraph in article.get("paragraphs", ()):
      for qa in paragraph.get("qas", ()):
        answers = qa.get("answers")
        if isinstance(answers, list) and all(isinstance(a, dict) for a in answers):
          answers = {"text": [a.get("text") for a in answers], "answer_start": [a.get("answer_start") for a in answers]}
        rows.append({"id": qa.get("id"), "title": article.get("title"), "context": paragraph.get("context"),
                     "question": qa.get("question"), "answers": answers})
  return rows


def example(row: Row) -> Example:
  question, context = row.text("question"), row.text("context")
  answers = row.field("answers")
  texts = answers.get("text") if isinstance(answers, dict) else None
  if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
    raise row.error(f"field 'answers' must hold a non-empty list of non-empty answer texts "
                    f"({{'text': [...], 'answer_start': [...]}}; SQuAD v1.1, every question answerable), "
                    f"got {str(answers)[:120]!r}")
  golds = tuple(t.strip() for t in texts)
  # Questions on one article share its paragraphs and topic: they are one cluster (intervals, validation carve).
  title = row.values.get("title")
  cluster = f"article:{title}" if isinstance(title, str) and title.strip() else f"context:{context}"
  return Example(row.id, question, golds[0], gold=golds[0], context=context, golds=golds, cluster=cluster)


def _whole(example: Example, exemplars: Sequence[Example]) -> Iterator[tuple[Example, Sequence[Example]]]:
  yield example, exemplars  # never shortened: see the module docstring


DATASET = kinds.register(kinds.Dataset(
    "squad", example=example, prompt=builtin.context_prompt("squad"), shorter=_whole, score=builtin.span_score,
    metrics=("em", "f1"), unnest=unnest, hub_splits="rajpurkar/squad: train, validation", shared_passages=True))
