"""The toy task and its tokenizers: determinism, disjoint splits, an answer beyond a token
budget's reach, exact decoding round trips, and files the real loaders read."""
import json
import re

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from interlingua_jax import scoring
from interlingua_jax.data import prompts, records
from interlingua_jax.toy import task
from interlingua_jax.toy import tokenizer as toy_tokenizer

M = 8  # configs/toy.py's translator.num_soft_tokens
_RATIONALE = re.compile(r"(\d+) ([+-]) (\d+) = (\d+)\n#### (\d+)")
_CHANGE = re.compile(r"(?:Later|Then|After that|Next) [A-Z][a-z]+ ([a-z]+) (\d+)")


@pytest.fixture(scope="module")
def corpus():
  return task.text_sampler()(np.random.default_rng(0), 2000)


@pytest.fixture(scope="module")
def source_tok(corpus):
  return toy_tokenizer.train_source_tokenizer(corpus)


@pytest.fixture(scope="module")
def target_tok(corpus):
  return toy_tokenizer.train_target_tokenizer(corpus)


@pytest.fixture(scope="module")
def test_split():
  return task.make_split("test", 300, seed=0)


def test_make_split_is_deterministic_per_seed():
  assert task.make_split("test", 40, seed=3) == task.make_split("test", 40, seed=3)
  assert task.make_split("test", 40, seed=3) != task.make_split("test", 40, seed=4)
  rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
  assert task.sample_split(rng_a, "train", 20) == task.sample_split(rng_b, "train", 20)


def test_splits_are_disjoint_and_pretraining_never_sees_test_questions(test_split):
  train = task.make_split("train", 3000, seed=0)
  train_questions = {e["question"] for e in train}
  test_questions = {e["question"] for e in test_split}
  assert len(train_questions) == 3000 and len(test_questions) == 300  # distinct within a split
  assert not train_questions & test_questions
  assert all(task.is_test_question(q) for q in test_questions)
  assert not any(task.is_test_question(q) for q in train_questions)
  for text in task.text_sampler()(np.random.default_rng(1), 2000):
    question = text.removeprefix("Q: ").split("\nA: ")[0]
    assert question not in test_questions and not task.is_test_question(question)


def test_answers_are_gsm8k_format_and_right(test_split):
  for example in test_split:
    a, op, b, result, final = _RATIONALE.fullmatch(example["answer"]).groups()
    assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(final) >= 0
    assert scoring.extract_gsm8k(example["answer"]) == final
    # Exactly two numbers, in order; the late one comes with the verb that fixes the operation.
    assert re.findall(r"\d+", example["question"]) == [a, b]
    verb, late = _CHANGE.search(example["question"]).groups()
    assert late == b and verb in (task.GAIN_VERBS if op == "+" else task.LOSS_VERBS)


def test_answer_needs_text_beyond_the_token_budget(target_tok, test_split):
  """The harness's prompt is many times longer than M target tokens, and its first M tokens
  end before the sentence that holds the second operand and the operation."""
  for example in test_split:
    prompt = prompts.fewshot_prompt(example["question"], instruction=None)
    ids = target_tok(prompt, add_special_tokens=False)["input_ids"]
    assert len(ids) >= 4 * M
    budget_text = target_tok.decode(ids[:M])
    assert prompt.startswith(budget_text)
    assert len(budget_text) <= _CHANGE.search(prompt).start()


def test_tokenizers_round_trip_the_text_exactly(source_tok, target_tok, test_split):
  for example in test_split:
    text = task.lm_text(example)
    for tok in (source_tok, target_tok):
      assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    # What the target generates after "A:" (a space, the rationale, a newline, `#### n`) decodes unchanged.
    answer_ids = target_tok(" " + example["answer"], add_special_tokens=False)["input_ids"]
    assert target_tok.decode(answer_ids) == " " + example["answer"]
    assert "\n#### " in source_tok.decode(source_tok(example["answer"], add_special_tokens=False)["input_ids"])


def test_tokenizers_prepend_one_bos_and_share_special_ids(source_tok, target_tok):
  for tok in (source_tok, target_tok):
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (
        toy_tokenizer.PAD_ID, toy_tokenizer.BOS_ID, toy_tokenizer.EOS_ID)
    ids = tok("Q: Ann has 3 pens.")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.bos_token_id not in tok("Q: Ann has 3 pens.", add_special_tokens=False)["input_ids"]


def test_the_two_tokenizers_differ(source_tok, target_tok, test_split):
  assert source_tok.get_vocab() != target_tok.get_vocab()
  question = test_split[0]["question"]
  src = source_tok(question, add_special_tokens=False)["input_ids"]
  tgt = target_tok(question, add_special_tokens=False)["input_ids"]
  assert len(src) == len(question.split())  # source: one token per toy word (as a "▁word" piece)
  assert len(tgt) > len(src)  # target: byte-level pieces, finer


def test_out_of_corpus_text(source_tok, target_tok):
  text = "Answer: ¿café? 3"
  assert target_tok.decode(target_tok(text)["input_ids"], skip_special_tokens=True) == text  # bytes: no UNK
  assert source_tok.unk_token_id in source_tok(text)["input_ids"]  # unseen characters are <unk>


def test_tokenizers_save_and_reload_with_auto_tokenizer(tmp_path, source_tok, target_tok, test_split):
  text = task.lm_text(test_split[1])
  for name, tok in (("source", source_tok), ("target", target_tok)):
    tok.save_pretrained(tmp_path / name)
    loaded = AutoTokenizer.from_pretrained(tmp_path / name)
    assert isinstance(loaded, PreTrainedTokenizerFast)
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (1, 2, 0)


def test_jsonl_is_read_by_the_gsm8k_loader(tmp_path, test_split):
  path = str(tmp_path / "toy" / "test.jsonl")
  task.write_jsonl(path, test_split[:20])
  with open(path) as f:
    assert all(set(json.loads(line)) == {"question", "answer"} for line in f)
  loaded = records.load_split("toy", "test", path=path)
  assert [e.question for e in loaded] == [e["question"] for e in test_split[:20]]
  assert [e.gold for e in loaded] == [e["answer"].split("#### ")[-1] for e in test_split[:20]]


def test_bad_arguments_raise():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="min_filler"):
    task.sample_example(rng, min_filler=3, max_filler=2)
  with pytest.raises(ValueError, match="split"):
    task.sample_split(rng, "dev", 1)
  with pytest.raises(ValueError, match="num"):
    task.make_split("train", -1, seed=0)
