"""Prompts: the seed-42 exemplars, the exact prompt texts, the training pool, and fitting to a budget."""
import random

import pytest

from interlingua_jax.data import prompts
from interlingua_jax.data.records import Example


def _train(n):
  return [Example(f"train-{i}", f"What is {i} + {i}?", f"{i} + {i} = {2 * i}\n#### {2 * i}", str(2 * i))
          for i in range(n)]


TEST = Example("test-0", "What is 20 + 1?", "20 + 1 = 21\n#### 21", "21")


@pytest.mark.parametrize("n", [8, 100, 7473])
def test_exemplar_indices_match_reference(n):
  assert prompts.exemplar_indices(n) == random.Random(42).sample(range(n), 8)
  assert prompts.exemplar_indices(n, k=3, seed=7) == random.Random(7).sample(range(n), 3)


def test_exemplar_indices_pinned():
  """Pins the draw itself, so a change of sampler (e.g. numpy) cannot slip through."""
  assert prompts.exemplar_indices(7473) == [5238, 912, 204, 6074, 2253, 2006, 1828, 1143]


def test_exemplar_indices_bad_k():
  with pytest.raises(ValueError, match=r"cannot draw 8 exemplars from a train split of 5 examples \(data.num_shots\)"):
    prompts.exemplar_indices(5)
  assert prompts.exemplar_indices(5, k=0) == []


def test_gsm8k_prompt_text():
  exemplars = prompts.select_exemplars(_train(10), k=2)
  first, second = (_train(10)[i] for i in random.Random(42).sample(range(10), 2))
  assert prompts.build_prompt("gsm8k", TEST, exemplars) == (
      f"{prompts.GSM8K_INSTRUCTION}\n\n"
      f"Q: {first.question}\nA: {first.answer}\n\n"
      f"Q: {second.question}\nA: {second.answer}\n\n"
      "Q: What is 20 + 1?\nA:")
  assert "#### <number>" in prompts.GSM8K_INSTRUCTION and "\n" not in prompts.GSM8K_INSTRUCTION
  assert TEST.answer not in prompts.build_prompt("gsm8k", TEST, exemplars)  # no gold in the input (§3.1)


def test_zero_shot_prompts():
  assert prompts.build_prompt("toy", TEST) == "Q: What is 20 + 1?\nA:"
  assert prompts.fewshot_prompt("q?", instruction=None) == "Q: q?\nA:"
  assert prompts.build_prompt("gsm8k", TEST) == f"{prompts.GSM8K_INSTRUCTION}\n\nQ: What is 20 + 1?\nA:"


def test_hotpotqa_prompt():
  example = Example("h0", "Where is the tower?", "Paris", "Paris", context="Eiffel Tower: It is in Paris.")
  assert prompts.build_prompt("hotpotqa", example) == (
      "Eiffel Tower: It is in Paris.\n\nQuestion: Where is the tower?\nAnswer:")
  with pytest.raises(ValueError, match="hotpotqa prompts take no exemplars: set data.num_shots = 0"):
    prompts.build_prompt("hotpotqa", example, [example])
  with pytest.raises(ValueError, match="hotpotqa example 'test-0' has no context"):
    prompts.build_prompt("hotpotqa", TEST)
  with pytest.raises(ValueError, match="unknown dataset 'mmlu'"):
    prompts.build_prompt("mmlu", TEST)


def test_training_pool_excludes_exemplars():
  """docs/DESIGN.md §3.10: no exemplar of the evaluation prompt is a training example."""
  train = _train(50)
  exemplars = prompts.select_exemplars(train)
  pool = prompts.training_pool(train, [e.id for e in exemplars])
  assert len(pool) == 42
  assert not {e.id for e in pool} & {e.id for e in exemplars}
  assert not {e.question for e in pool} & {e.question for e in exemplars}
  assert [e.id for e in pool] == [e.id for e in train if e not in exemplars]  # order kept


def test_training_pool_rejects_unknown_ids():
  train = _train(20)
  with pytest.raises(ValueError, match=r"exemplar ids \[3, 5\] are not ids of the train split"):
    prompts.training_pool(train, [3, 5])  # indices instead of ids


def _count_words(text):
  return len(text.split())


def test_fit_prompt_keeps_all_when_it_fits():
  exemplars = prompts.select_exemplars(_train(30))
  prompt, dropped = prompts.fit_prompt("gsm8k", TEST, exemplars, count_tokens=_count_words, max_tokens=10_000)
  assert dropped == 0 and prompt == prompts.build_prompt("gsm8k", TEST, exemplars)


def test_fit_prompt_drops_exemplars_from_the_end():
  exemplars = prompts.select_exemplars(_train(30))
  three = _count_words(prompts.build_prompt("gsm8k", TEST, exemplars[:3]))
  prompt, dropped = prompts.fit_prompt("gsm8k", TEST, exemplars, count_tokens=_count_words, max_tokens=three)
  assert dropped == 5
  assert prompt == prompts.build_prompt("gsm8k", TEST, exemplars[:3])
  assert prompt.endswith("Q: What is 20 + 1?\nA:")  # the question is whole


def test_fit_prompt_question_alone_too_long_is_none():
  """Never an abort: the caller skips and counts such an example."""
  bare = _count_words(prompts.build_prompt("gsm8k", TEST))
  _, dropped = prompts.fit_prompt("gsm8k", TEST, _train(8), count_tokens=_count_words, max_tokens=bare)
  assert dropped == 8
  assert prompts.fit_prompt("gsm8k", TEST, _train(8), count_tokens=_count_words, max_tokens=bare - 1) == (None, 8)


def test_fit_prompt_drops_hotpotqa_paragraphs_from_the_end():
  paragraphs = ["A: one two.", "B: three four five.", "C: six."]
  example = Example("h1", "Who?", "x", "x", context="\n\n".join(paragraphs))
  two = _count_words(prompts.hotpotqa_prompt("Who?", "\n\n".join(paragraphs[:2])))
  prompt, dropped = prompts.fit_prompt("hotpotqa", example, (), count_tokens=_count_words, max_tokens=two)
  assert (prompt, dropped) == (prompts.hotpotqa_prompt("Who?", "\n\n".join(paragraphs[:2])), 1)
  one = _count_words(prompts.hotpotqa_prompt("Who?", paragraphs[0]))
  assert prompts.fit_prompt("hotpotqa", example, (), count_tokens=_count_words, max_tokens=one)[1] == 2
  assert prompts.fit_prompt("hotpotqa", example, (), count_tokens=_count_words, max_tokens=one - 1)[0] is None
