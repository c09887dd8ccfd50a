"""The toy task and its tokenizers: determinism, disjoint splits, an answer beyond a token
budget's reach, exact decoding round trips, and files the real loaders read."""
import collections
import json
import math
import re

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from interlingua_jax.data import scoring
from interlingua_jax.data import prompts, records
from interlingua_jax.toy import capacity, task
from interlingua_jax.toy import tokenizer as toy_tokenizer

M = 8  # configs/toy.py's translator.num_soft_tokens
_RATIONALE = re.compile(r"(\d+) ([+-]) (\d+) = (\d+)\n#### (\d+)")
_CHANGE = re.compile(r"(?:Later|Then|After that|Next) [A-Z][a-z]+ ([a-z]+) (\d+)")


@pytest.fixture(scope="module")
def corpus():
  return task.pretrain_texts()(np.random.default_rng(0), 2000)


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
  for text in task.pretrain_texts()(np.random.default_rng(1), 2000):
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
    assert all(set(json.loads(line)) == {"question", "answer", "cluster", "prior_key"} for line in f)
  loaded = records.load_split("toy", "test", path=path)
  assert [e.question for e in loaded] == [e["question"] for e in test_split[:20]]
  assert [e.gold for e in loaded] == [e["answer"].split("#### ")[-1] for e in test_split[:20]]
  # Its cluster is its problem (near-duplicates share it), its prior key the change without the first count.
  assert [json.loads(e.cluster) for e in loaded] == [json.loads(json.dumps(x["problem"])) for x in test_split[:20]]
  assert [json.loads(e.prior_key) for e in loaded] == [json.loads(json.dumps(x["problem"][1:])) for x in test_split[:20]]


def test_lookup_probes_change_exactly_the_private_fact():
  """name_swap is about a known person with another fact, unknown_name about nobody any LM read, fact is what the
  source learned to say first, and `stated` is the target's own explicit format."""
  examples = task.make_split("test", 60, seed=0, spec=LOOKUP)
  table = task.fact_table(LOOKUP.table_seed, LOOKUP.max_operand)
  for e in examples:
    name, fact = e["problem"][0], e["problem"][1]
    p = task.data_row(e, LOOKUP)["probes"]
    other = re.search(r"(\w+) has as many", p["name_swap"]).group(1)
    assert other in task.LOOKUP_NAMES and table[other] != fact and not re.search(rf"\b{name}\b", p["name_swap"])
    assert re.sub(rf"\b{other}\b", name, p["name_swap"]) == re.sub(rf"\b{other}\b", name, e["question"])
    assert task.UNKNOWN_NAME not in task.LOOKUP_NAMES + task.NAMES
    assert p["unknown_name"].replace(task.UNKNOWN_NAME, name) == e["question"]
    assert p["fact"] == str(fact) and task.source_answer(e).split()[0] == p["fact"]
    stated = p["stated"].replace("{count}", str(fact))
    assert "lucky number" not in stated and re.search(rf"\b{name} has {fact} \w+\.", stated)


def test_test_baselines_are_computed_on_the_test_split():
  """The complementary world's knowledge-free figures: the test split's most common answer (not the generator's
  whole distribution) and the change-only prior, checked against a direct count."""
  train = task.make_split("train", 3000, seed=0, spec=LOOKUP)
  test = task.make_split("test", 200, seed=0, spec=LOOKUP)
  got = capacity.test_baselines(train, test, LOOKUP)
  final = lambda e: e["answer"].rsplit("#### ", 1)[1]
  assert got["test_majority_accuracy"] == max(collections.Counter(map(final, test)).values()) / len(test)
  by_change = collections.defaultdict(collections.Counter)
  for e in train:
    by_change[e["problem"][2:]][final(e)] += 1
  hits = 0
  for e in test:
    counts = by_change[e["problem"][2:]] or collections.Counter(map(final, train))
    best = max(counts.values())
    hits += final(e) == min(a for a, c in counts.items() if c == best)
  assert got["test_prior_accuracy"] == hits / len(test)
  assert got["test_prior_accuracy"] > capacity.information(LOOKUP)["chance_accuracy"]  # the change constrains it


def test_bad_arguments_raise():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="min_filler"):
    task.TaskSpec(min_filler=3, max_filler=2)
  with pytest.raises(ValueError, match="num_entities >= 2"):
    task.TaskSpec(num_distractors=1)
  with pytest.raises(ValueError, match="split"):
    task.TaskSpec(split="name")
  with pytest.raises(ValueError, match="lookup"):
    task.TaskSpec(lookup=True)
  with pytest.raises(ValueError, match="split"):
    task.sample_split(rng, "dev", 1)
  with pytest.raises(ValueError, match="num"):
    task.make_split("train", -1, seed=0)


HARD = task.TaskSpec(num_steps=2, max_operand=15, num_entities=2, num_distractors=1, split="problem")
LOOKUP = task.TaskSpec(lookup=True, split="problem")
_STEP = re.compile(r"(\d+) ([+-]) (\d+) = (\d+)")
_FACT = re.compile(r"([A-Z][a-z]+) has (\d+) ([a-z]+)\.")


def _problem_of_answer(answer: str) -> tuple:
  """The problem a rationale solves: its first count and each (op, amount)."""
  steps = _STEP.findall(answer)
  return (int(steps[0][0]),) + tuple((op, int(b)) for _, op, b, _ in steps)


def test_graded_answers_chain_the_asked_persons_count_past_numeric_distractors():
  examples = task.make_split("train", 300, seed=0, spec=HARD)
  first_number_is_wrong = 0
  for example in examples:
    steps = _STEP.findall(example["answer"])
    assert len(steps) == HARD.num_steps
    current = int(steps[0][0])
    for a, op, b, result in steps:
      assert int(a) == current and int(result) == (current + int(b) if op == "+" else current - int(b)) >= 0
      current = int(result)
    assert example["answer"].endswith(f"\n#### {current}")
    asked = re.search(r"How many \w+ does (\w+) have now\?", example["question"]).group(1)
    facts = dict((name, int(n)) for name, n, _ in _FACT.findall(example["question"]))
    assert len(facts) == HARD.num_entities and facts[asked] == int(steps[0][0])
    assert len(re.findall(r"\d+", example["question"])) == 2 * HARD.num_entities + HARD.num_distractors
    first_number_is_wrong += re.search(r"\d+", example["question"]).group() != steps[0][0]
  assert first_number_is_wrong > 0.3 * len(examples)  # about half: the distractor's count comes first


def test_hardest_setting_never_trains_on_a_test_problem():
  test = task.make_split("test", 200, seed=0, spec=HARD)
  test_problems = {e["problem"] for e in test}
  assert all(_problem_of_answer(e["answer"]) == e["problem"] for e in test)
  assert capacity.overlap(task.make_split("train", 2000, seed=0, spec=HARD), test)["test_problems_in_train"] == 0
  pretraining = task.pretrain_texts(HARD)(np.random.default_rng(1), 2000)
  assert not test_problems & {_problem_of_answer(t.split("\nA: ")[1]) for t in pretraining}
  easy_test = task.make_split("test", 200, seed=0)  # the easy world splits by text: its problems recur
  assert capacity.overlap(task.make_split("train", 2000, seed=0), easy_test)["test_problems_in_train"] > 0.9


@pytest.mark.parametrize("spec", [task.TaskSpec(), HARD, LOOKUP])
def test_information_is_the_generators_distribution(spec):
  """The exact figures against frequencies of 10,000 sampled questions."""
  info = capacity.information(spec)
  rng = np.random.default_rng(0)
  examples = [task.sample_example(rng, spec) for _ in range(10000)]
  answers = collections.Counter(e["answer"].rsplit("#### ", 1)[1] for e in examples)
  assert abs(info["chance_accuracy"] - max(answers.values()) / len(examples)) < 0.015
  assert info["distinct_answers"] >= len(answers) > 0.9 * info["distinct_answers"]
  problems = collections.Counter(e["problem"][-1 - spec.num_steps:] for e in examples)
  if len(problems) < 2000:  # the plug-in entropy is unbiased enough only for the small worlds
    plug_in = -sum(c / len(examples) * math.log2(c / len(examples)) for c in problems.values())
    assert abs(info["bits_per_question"] - plug_in) < 0.1
  assert info["bits_per_question"] > info["answer_bits"]


def test_information_grows_with_every_knob():
  easy = capacity.information(task.TaskSpec())["bits_per_question"]
  assert capacity.information(task.TaskSpec(num_steps=2))["bits_per_question"] > easy + 3
  assert capacity.information(task.TaskSpec(max_operand=19))["bits_per_question"] > easy + 2
  assert capacity.information(HARD)["bits_per_question"] > 1.8 * easy


def test_lookup_world_splits_knowledge_between_the_two_models():
  table = task.fact_table(LOOKUP.table_seed, LOOKUP.max_operand)
  held_out = set(task.LOOKUP_NAMES[-task.HELD_OUT_NAMES:])
  test = task.make_split("test", 100, seed=0, spec=LOOKUP)
  train = task.make_split("train", 500, seed=0, spec=LOOKUP)
  assert {e["problem"][0] for e in test} <= held_out and not {e["problem"][0] for e in train} & held_out
  for example in test + train:
    name = example["problem"][0]
    assert "lucky number of " + name in example["question"] and not re.search(r"has \d", example["question"])
    assert _STEP.match(example["answer"]).group(1) == str(table[name])
  rng = np.random.default_rng(0)
  source = task.pretrain_texts(LOOKUP, "source")(rng, 500)
  assert all("####" not in t and "=" not in t and "lucky number" in t for t in source)
  assert held_out & {re.search(r"lucky number of (\w+)", t).group(1) for t in source}  # it learns their facts
  test_texts = {task.lm_text(e) for e in test}
  source_of = {e["question"]: task.source_answer(e) for e in test}
  assert not any(t.split("\nA: ")[0].removeprefix("Q: ") in source_of for t in source)
  target = task.pretrain_texts(LOOKUP, "target")(rng, 500)
  assert not any("lucky" in t for t in target) and not test_texts & set(target)
  stated = [(re.search(r"(\w+) has (\d+)", t).groups()) for t in target]
  assert sum(table[name] == int(n) for name, n in stated) < 0.25 * len(stated)  # no fact table to learn
