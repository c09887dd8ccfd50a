"""The dataset registry (adding a dataset is one registered description) and SQuAD v1.1: both file
layouts, multi-gold EM/F1 as the official script takes them, the prompt and the long-prompt rule."""
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interlingua_jax.data import scoring
from interlingua_jax.evaluation import results
from interlingua_jax.run import validate
from interlingua_jax.data import builtin, kinds, prompts, records

SQUAD_NESTED = {"version": "1.1", "data": [
    {"title": "Super_Bowl_50", "paragraphs": [
        {"context": "Super Bowl 50 was won by the Denver Broncos, who beat the Carolina Panthers 24-10.",
         "qas": [{"id": "q1", "question": "Which team won Super Bowl 50?",
                  "answers": [{"text": "Denver Broncos", "answer_start": 29},
                              {"text": "Broncos", "answer_start": 36}]},
                 {"id": "q2", "question": "Who lost?",
                  "answers": [{"text": "the Carolina Panthers", "answer_start": 54}]}]}]},
    {"title": "Tolven", "paragraphs": [
        {"context": "Tolven has four old stone bridges.",
         "qas": [{"id": "q3", "question": "How many bridges does Tolven have?",
                  "answers": [{"text": "four", "answer_start": 11}, {"text": "four old stone bridges",
                                                                   "answer_start": 11}]}]}]}]}


def _flat_rows(document: dict) -> list[dict]:
  """The HF `rajpurkar/squad` layout of the same questions, written out independently of `squad.unnest`."""
  return [{"id": qa["id"], "title": article["title"], "context": paragraph["context"], "question": qa["question"],
           "answers": {"text": [a["text"] for a in qa["answers"]],
                       "answer_start": [a["answer_start"] for a in qa["answers"]]}}
          for article in document["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def test_squad_reads_the_official_and_the_flat_layouts_alike(tmp_path):
  nested = tmp_path / "dev-v1.1.json"
  nested.write_text(json.dumps(SQUAD_NESTED, indent=2), encoding="utf-8")
  flat = tmp_path / "dev.jsonl"
  flat.write_text("".join(json.dumps(r) + "\n" for r in _flat_rows(SQUAD_NESTED)), encoding="utf-8")
  parquet = tmp_path / "dev.parquet"
  pq.write_table(pa.Table.from_pylist(_flat_rows(SQUAD_NESTED)), parquet)
  examples = records.load_split("squad", "validation", path=str(nested))
  assert [e.id for e in examples] == ["q1", "q2", "q3"]
  q1 = examples[0]
  assert q1.golds == ("Denver Broncos", "Broncos") and q1.gold == q1.answer == "Denver Broncos"
  assert q1.context == SQUAD_NESTED["data"][0]["paragraphs"][0]["context"]
  assert records.load_split("squad", "validation", path=str(flat)) == examples
  assert records.load_split("squad", "validation", path=str(parquet)) == examples


def test_squad_by_name_through_datasets(monkeypatch):
  calls = []

  def fake_load_dataset(name, config, split):
    calls.append((name, config, split))
    return datasets.Dataset.from_list(_flat_rows(SQUAD_NESTED))

  monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
  examples = records.load_split("squad", "validation", hf_name="rajpurkar/squad")
  assert calls == [("rajpurkar/squad", None, "validation")]
  assert [e.golds for e in examples] == [("Denver Broncos", "Broncos"), ("the Carolina Panthers",),
                                         ("four", "four old stone bridges")]


def test_squad_multi_gold_em_f1_are_the_max_over_golds():
  golds = ("Denver Broncos", "Broncos")
  assert scoring.score("squad", " the Denver Broncos\n", golds) == {
      "correct": True, "extracted": "the Denver Broncos", "em": 1.0, "f1": 1.0}
  # "Broncos won": vs "Denver Broncos" P=1/2 R=1/2 F1=1/2; vs "Broncos" P=1/2 R=1 F1=2/3 -> max 2/3.
  partial = scoring.score("squad", "Broncos won", golds)
  assert partial["em"] == 0.0 and partial["correct"] is False
  assert partial["f1"] == pytest.approx(2 / 3)
  # "four stone" vs "four" F1=2/3; vs "four old stone bridges" P=1 R=2/4 F1=2/3; EM only on the exact one.
  assert scoring.score("squad", "four stone", ("four", "four old stone bridges"))["f1"] == pytest.approx(2 / 3)
  assert scoring.score("squad", "Four old stone bridges.", ("four", "four old stone bridges"))["em"] == 1.0
  # A single gold string still works, and an empty prediction never scores (docs/DESIGN.md §3.11).
  assert scoring.score("squad", "Denver", "Denver Broncos")["f1"] == pytest.approx(2 / 3)
  assert scoring.score("squad", "the", ("a", "Broncos")) == {"correct": False, "extracted": "the", "em": 0.0, "f1": 0.0}
  with pytest.raises(ValueError, match="gold answer must be a non-empty string"):
    scoring.score("squad", "x", ("Broncos", " "))


def test_squad_prompt_and_skip_rule():
  example = records.Example("q1", "Who won?", "Broncos", gold="Broncos", context="The Broncos won.")
  prompt = prompts.build_prompt("squad", example)
  assert prompt == "The Broncos won.\n\nQuestion: Who won?\nAnswer:"
  assert prompt == prompts.hotpotqa_prompt("Who won?", example.context)
  count = lambda text: len(text.split())
  assert prompts.fit_prompt("squad", example, (), count_tokens=count, max_tokens=count(prompt)) == (prompt, 0)
  assert prompts.fit_prompt("squad", example, (), count_tokens=count, max_tokens=count(prompt) - 1) == (None, 0)
  with pytest.raises(ValueError, match="squad prompts take no exemplars"):
    prompts.build_prompt("squad", example, [example])


@pytest.mark.parametrize("answers, match", [
    ([], "non-empty list of non-empty answer texts"),
    ({"text": ["ok", 3], "answer_start": [0, 0]}, "non-empty list of non-empty answer texts"),
    ([{"text": "  ", "answer_start": 0}], "non-empty list of non-empty answer texts"),
    (None, "missing field 'answers'"),
])
def test_squad_bad_rows_name_file_row_and_field(tmp_path, answers, match):
  document = {"data": [{"title": "t", "paragraphs": [
      {"context": "C.", "qas": [{"id": "x", "question": "Q?", "answers": answers}]}]}]}
  path = tmp_path / "bad.json"
  path.write_text(json.dumps(document), encoding="utf-8")
  with pytest.raises(ValueError, match=rf"bad\.json row 0: .*{match}"):
    records.load_split("squad", "train", path=str(path))


def test_multi_gold_examples_keep_gold_first():
  with pytest.raises(ValueError, match="golds must start with gold"):
    records.Example("a", "Q?", "x", gold="x", golds=("y", "x"))
  assert records.Example("a", "Q?", "x", gold="x").golds == ("x",)


def test_a_new_dataset_is_one_registered_description(tmp_path, monkeypatch):
  """docs/DESIGN.md §5 "How to add a dataset", done once: a capital-city quiz, from its JSONL to its summary."""
  kinds.names()  # the built-ins first, then a copy of the registry that the test may change
  monkeypatch.setattr(kinds, "REGISTRY", dict(kinds.REGISTRY))

  def example(row: records.Row) -> records.Example:
    capital = row.text("capital")
    return records.Example(row.id, f"What is the capital of {row.text('country')}?", capital, gold=capital)

  kinds.register(kinds.Dataset(
      "capitals", example=example, prompt=lambda e, shots: prompts.fewshot_prompt(e.question, shots, instruction=None),
      shorter=builtin.drop_exemplars, score=builtin.span_score, metrics=("em", "f1")))
  path = tmp_path / "capitals.jsonl"
  path.write_text('{"country": "France", "capital": "Paris"}\n{"country": "Peru", "capital": "Lima"}\n')
  train = records.load_split("capitals", "train", path=str(path))
  assert [(e.id, e.gold) for e in train] == [("train-0", "Paris"), ("train-1", "Lima")]
  assert prompts.build_prompt("capitals", train[1], train[:1]) == (
      "Q: What is the capital of France?\nA: Paris\n\nQ: What is the capital of Peru?\nA:")
  fitted, dropped = prompts.fit_prompt("capitals", train[1], train[:1], count_tokens=len, max_tokens=40)
  assert (fitted, dropped) == ("Q: What is the capital of Peru?\nA:", 1)
  assert scoring.score("capitals", " Lima.", train[1].golds)["em"] == 1.0
  assert validate.RULES["data.dataset"]("capitals") is None
  rows = [{"id": e.id, "method": "target_alone", "latency_s": 0.0, "kv_cache_bytes": 0, "target_prompt_tokens": 9,
           "soft_tokens": 0, "source_prompt_tokens": 0, "generated_tokens": 2,
           **scoring.score("capitals", pred, e.golds)} for e, pred in zip(train, ["Paris", "Lima city"])]
  summary = results.aggregate(rows, dataset="capitals", num_soft_tokens=0, bootstrap_samples=100, seed=0)
  entry = summary["methods"]["target_alone"]
  assert entry["em"] == 0.5 and entry["f1"] == pytest.approx((1 + 2 / 3) / 2) and entry["accuracy"] == 0.5
  assert len(entry["f1_ci95"]) == 2 and len(entry["em_ci95"]) == 2
  with pytest.raises(ValueError, match="already registered"):
    kinds.register(kinds.Dataset("capitals", example=example, prompt=None, shorter=None, score=None))
  with pytest.raises(ValueError, match=r"unknown dataset 'capital' \(data.dataset\); choose from gsm8k, hotpotqa, toy, squad, capit"):
    records.load_split("capital", "train", path=str(path))
