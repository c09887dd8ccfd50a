"""Record loading from fixture files (no hub access): formats, ids, golds, and every bad input."""
import json
import time

import datasets
import datasets.config
import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from interlingua_jax.data import records

GSM8K_ROWS = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "A car costs $1,200 and a bike $300. Total?", "answer": "1200 + 300 = 1500\n#### 1,500"},
    {"question": "It is -2 degrees and drops 3. Now?", "answer": "-2 - 3 = -5\n#### -5"},
]
HOTPOT_ROWS = [
    {"id": "5a8b57f25542995d1e6f1371", "question": "Which magazine was started first?",
     "answer": "Arthur's Magazine", "type": "comparison",
     "context": {"title": ["Arthur's Magazine", "First for Women"],
                 "sentences": [["Arthur's Magazine was an American literary periodical.", " It ran from 1844."],
                               ["First for Women is a woman's magazine.", " It started in 1989."]]}},
    {"id": "5a8c7595554299585d9e36b6", "question": "Where is the tower?", "answer": "Paris",
     "context": {"title": ["Eiffel Tower"], "sentences": [["The Eiffel Tower is in Paris."]]}},
]


def _write_jsonl(path, rows):
  path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
  return str(path)


def test_gsm8k_jsonl(tmp_path):
  examples = records.load_split("gsm8k", "test", path=_write_jsonl(tmp_path / "test.jsonl", GSM8K_ROWS))
  assert [e.id for e in examples] == ["test-0", "test-1", "test-2"]
  assert [e.gold for e in examples] == ["7", "1500", "-5"]
  assert examples[0] == records.Example("test-0", GSM8K_ROWS[0]["question"], GSM8K_ROWS[0]["answer"], "7", None)


def test_ids_stable_and_taken_from_id_field(tmp_path):
  path = _write_jsonl(tmp_path / "train.jsonl", [dict(row, id=f"q{9 - i}") for i, row in enumerate(GSM8K_ROWS)])
  first = records.load_split("gsm8k", "train", path=path)
  assert [e.id for e in first] == ["q9", "q8", "q7"]
  assert records.load_split("gsm8k", "train", path=path) == first


def test_gold_from_each_records_own_answer(tmp_path):
  """docs/DESIGN.md §3.2: golds differ per record even when the question text carries a `#### 12`."""
  rows = [{"question": f"Q: x\nA: 6 + 6\n#### 12\n\nQ: item {i}?", "answer": f"{i} * 2 = {2 * i}\n#### {2 * i}"}
          for i in range(1, 5)]
  examples = records.load_split("gsm8k", "test", path=_write_jsonl(tmp_path / "t.jsonl", rows))
  assert [e.gold for e in examples] == ["2", "4", "6", "8"]


def test_json_array_and_json_lines(tmp_path):
  array = tmp_path / "array.json"
  array.write_text(json.dumps(GSM8K_ROWS), encoding="utf-8")
  lines = _write_jsonl(tmp_path / "lines.json", GSM8K_ROWS)
  expected = records.load_split("gsm8k", "test", path=_write_jsonl(tmp_path / "t.jsonl", GSM8K_ROWS))
  assert records.load_split("gsm8k", "test", path=str(array)) == expected
  assert records.load_split("gsm8k", "test", path=lines) == expected


def test_parquet(tmp_path):
  gsm_path, hotpot_path = str(tmp_path / "gsm.parquet"), str(tmp_path / "hotpot.parquet")
  pq.write_table(pa.Table.from_pylist(GSM8K_ROWS), gsm_path)
  pq.write_table(pa.Table.from_pylist(HOTPOT_ROWS), hotpot_path)
  assert [e.gold for e in records.load_split("gsm8k", "test", path=gsm_path)] == ["7", "1500", "-5"]
  hotpot = records.load_split("hotpotqa", "validation", path=hotpot_path)
  assert hotpot == records.load_split("hotpotqa", "validation",
                                      path=_write_jsonl(tmp_path / "h.jsonl", HOTPOT_ROWS))


def test_hotpotqa_context_rendering(tmp_path):
  examples = records.load_split("hotpotqa", "validation", path=_write_jsonl(tmp_path / "h.jsonl", HOTPOT_ROWS))
  first = examples[0]
  assert first.id == "5a8b57f25542995d1e6f1371"
  assert first.gold == "Arthur's Magazine"
  assert first.context == ("Arthur's Magazine: Arthur's Magazine was an American literary periodical. It ran "
                           "from 1844.\n\nFirst for Women: First for Women is a woman's magazine. It started in 1989.")
  assert examples[1].context == "Eiffel Tower: The Eiffel Tower is in Paris."


def test_hotpotqa_original_layout(tmp_path):
  """The original HotpotQA files: `_id` and context as `[[title, [sentences]], ...]`."""
  rows = [{"_id": "abc", "question": "Where is the tower?", "answer": "Paris",
           "context": [["Eiffel Tower", ["The Eiffel Tower", " is in Paris."]], ["Paris", ["Paris is big."]]]}]
  (example,) = records.load_split("hotpotqa", "dev", path=_write_jsonl(tmp_path / "h.jsonl", rows))
  assert example.id == "abc"
  assert example.context == "Eiffel Tower: The Eiffel Tower is in Paris.\n\nParis: Paris is big."


def test_toy_reads_gsm8k_format(tmp_path):
  rows = [{"question": "ann has 3 . ben has 4 . how many does ben have ?", "answer": "#### 4"}]
  (example,) = records.load_split("toy", "test", path=_write_jsonl(tmp_path / "toy.jsonl", rows))
  assert example.gold == "4" and example.context is None


@pytest.mark.parametrize("dataset, rows, message", [
    ("gsm8k", [GSM8K_ROWS[0], {"question": "Q?"}], r"row 1: missing field 'answer' \(fields present: \['question'\]\)"),
    ("gsm8k", [{"answer": "#### 3"}], r"row 0: missing field 'question'"),
    ("gsm8k", [{"question": "Q?", "answer": None}], r"row 0: missing field 'answer'"),
    ("gsm8k", [{"question": "  ", "answer": "#### 3"}], r"row 0: field 'question' must be a non-empty string"),
    ("gsm8k", [{"question": "Q?", "answer": 3}], r"row 0: field 'answer' must be a non-empty string"),
    ("gsm8k", [{"question": "Q?", "answer": "The answer is 3"}], r"row 0: field 'answer' has no '#### <number>'"),
    ("hotpotqa", [{"question": "Q?", "answer": "Paris"}], r"row 0: missing field 'context'"),
    ("hotpotqa", [{"question": "Q?", "answer": "P", "context": {"title": ["a", "b"], "sentences": [["x"]]}}],
     r"row 0: field 'context' must be"),
    ("hotpotqa", [{"question": "Q?", "answer": "P", "context": {"title": [], "sentences": []}}],
     r"row 0: field 'context' must be"),
    ("gsm8k", [dict(GSM8K_ROWS[0], id="a"), dict(GSM8K_ROWS[1], id="a")], r"rows 0 and 1 share the id 'a'"),
    ("gsm8k", [], r"the 'test' split has no rows"),
])
def test_bad_rows(tmp_path, dataset, rows, message):
  path = _write_jsonl(tmp_path / "bad.jsonl", rows)
  with pytest.raises(ValueError, match=message) as info:
    records.load_split(dataset, "test", path=path)
  assert path in str(info.value)


def test_bad_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    records.load_split("gsm8k", "test", path=str(tmp_path / "nope.jsonl"))
  csv = tmp_path / "data.csv"
  csv.write_text("question,answer\n", encoding="utf-8")
  with pytest.raises(ValueError, match=r"unsupported format '.csv'; use one of .jsonl, .json, .parquet"):
    records.load_split("gsm8k", "test", path=str(csv))
  broken = tmp_path / "broken.jsonl"
  broken.write_text(json.dumps(GSM8K_ROWS[0]) + "\n\n{not json\n", encoding="utf-8")
  with pytest.raises(ValueError, match="broken.jsonl' line 3: invalid JSON"):
    records.load_split("gsm8k", "test", path=str(broken))
  scalars = tmp_path / "scalars.json"
  scalars.write_text("[1, 2]", encoding="utf-8")
  with pytest.raises(ValueError, match="row 0: expected a JSON object, got int"):
    records.load_split("gsm8k", "test", path=str(scalars))


def test_unknown_dataset(tmp_path):
  with pytest.raises(ValueError, match=r"unknown dataset 'mmlu' \(data.dataset\); choose from gsm8k, hotpotqa, toy"):
    records.load_split("mmlu", "test", path=_write_jsonl(tmp_path / "t.jsonl", GSM8K_ROWS))


def test_offline_without_path_is_one_clear_error(monkeypatch):
  for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
    monkeypatch.setenv(name, "1")
  # The libraries read these variables at import time; set what they already read too.
  monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
  monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
  monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
  start = time.monotonic()
  with pytest.raises(RuntimeError, match=r"could not load .*set data\.test_path to the local") as info:
    records.load_split("gsm8k", "test", hf_name="interlingua-jax-tests/not-cached", hf_config="main")
  assert time.monotonic() - start < 10
  assert isinstance(info.value.__cause__, OSError)
  with pytest.raises(RuntimeError, match=r"set data\.train_path"):
    records.load_split("gsm8k", "train", hf_name="interlingua-jax-tests/not-cached")


def test_no_path_and_no_hub_name():
  with pytest.raises(ValueError, match=r"no file and no hub name for toy split 'train': set data\.train_path"):
    records.load_split("toy", "train")


def test_hub_loading_through_datasets(monkeypatch):
  calls = []

  def fake_load_dataset(name, config, split):
    calls.append((name, config, split))
    return datasets.Dataset.from_list(HOTPOT_ROWS)

  monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
  examples = records.load_split("hotpotqa", "validation", hf_name="hotpotqa/hotpot_qa", hf_config="distractor")
  assert calls == [("hotpotqa/hotpot_qa", "distractor", "validation")]
  assert [e.id for e in examples] == [row["id"] for row in HOTPOT_ROWS]
  assert examples[1].context == "Eiffel Tower: The Eiffel Tower is in Paris."
