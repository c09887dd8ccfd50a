"""The run's splits: validation carved from train, disjoint from the exemplars, the training pool and test."""
import pytest

from interlingua_jax.data import splits
from interlingua_jax.data.records import Example


def _examples(split: str, n: int) -> list[Example]:
  return [Example(f"{split}-{i}", f"{split} question {i}?", f"#### {i}", str(i)) for i in range(n)]


def test_validation_is_carved_from_train_and_disjoint_from_everything_else():
  train, test = _examples("train", 40), _examples("test", 10)
  sp = splits.make(train, test, num_shots=4, shot_seed=42, validation_size=8, seed=0)
  ids = {name: {e.id for e in part} for name, part in
         (("exemplars", sp.exemplars), ("train", sp.train), ("validation", sp.validation), ("test", sp.test))}
  assert [len(ids[k]) for k in ("exemplars", "train", "validation", "test")] == [4, 28, 8, 10]
  names = list(ids)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      assert not ids[a] & ids[b], (a, b)
  assert ids["exemplars"] | ids["train"] | ids["validation"] == {e.id for e in train}
  again = splits.make(train, test, num_shots=4, shot_seed=42, validation_size=8, seed=0)
  other = splits.make(train, test, num_shots=4, shot_seed=42, validation_size=8, seed=1)
  assert again == sp and {e.id for e in other.validation} != ids["validation"]
  summary = sp.summary()
  assert summary["validation"] == {"size": 8, "ids_sha256": splits.ids_hash(sp.validation)}
  assert splits.ids_hash(list(reversed(sp.test))) == summary["test"]["ids_sha256"]  # a set, not an order
  assert summary["test"]["ids_sha256"] != summary["validation"]["ids_sha256"]


def test_bad_splits_are_clear_errors():
  train = _examples("train", 10)
  with pytest.raises(ValueError, match=r"train.eval_num_samples=10 .* use 1..8"):
    splits.make(train, _examples("test", 3), num_shots=1, shot_seed=0, validation_size=10, seed=0)
  with pytest.raises(ValueError, match="also appear in the train split"):
    splits.make(train, _examples("train", 2), num_shots=0, shot_seed=0, validation_size=2, seed=0)


def test_a_test_question_in_train_under_another_id_is_refused():
  """Files without ids get `<split>-<row>` ids, which never collide: the question text must be compared."""
  train, test = _examples("train", 10), _examples("test", 3)
  copy = Example("train-99", "  TEST question 1 ?", "#### 1", "1")  # case, spacing and punctuation differ
  with pytest.raises(ValueError, match=r"1 train question\(s\) are test questions .* 'train-99'"):
    splits.make(train + [copy], test, num_shots=0, shot_seed=0, validation_size=2, seed=0)
  same_text_other_context = Example("train-98", "test question 1?", "#### 1", "1", context="another passage")
  splits.make(train + [same_text_other_context], test, num_shots=0, shot_seed=0, validation_size=2, seed=0)


def test_validation_takes_whole_passages():
  """A validation question never shares its passage (a SQuAD paragraph) with a training question."""
  train = [Example(f"train-{i}", f"train question {i}?", "x", "x", context=f"passage {i % 7}") for i in range(70)]
  sp = splits.make(train, _examples("test", 3), num_shots=0, shot_seed=0, validation_size=15, seed=0,
                   by_passage=True)
  held = {e.context for e in sp.validation}
  assert held and not held & {e.context for e in sp.train}
  assert 15 <= len(sp.validation) < 15 + 10 and len(held) == len(sp.validation) // 10
  with pytest.raises(ValueError, match="every one of the 7 training passages"):
    splits.make(train, _examples("test", 3), num_shots=0, shot_seed=0, validation_size=65, seed=0, by_passage=True)
  by_question = splits.make(train, _examples("test", 3), num_shots=0, shot_seed=0, validation_size=15, seed=0)
  assert len(by_question.validation) == 15  # datasets without shared passages carve question by question


def test_the_evaluated_subset_is_seeded_not_the_first_rows():
  test = _examples("test", 100)
  chosen, record = splits.evaluation_subset(test, 10, seed=0)
  assert [e.id for e in chosen] != [e.id for e in test[:10]]
  assert [e.id for e in chosen] == sorted((e.id for e in chosen), key=lambda i: int(i.split("-")[1]))  # file order
  assert record == {"size": 10, "ids_sha256": splits.ids_hash(chosen), "subset_seed": 0, "ids": [e.id for e in chosen]}
  assert splits.evaluation_subset(test, 10, seed=0)[0] == chosen
  assert splits.evaluation_subset(test, 10, seed=1)[0] != chosen
  assert splits.evaluation_subset(test, 500, seed=3)[0] == test  # all of a smaller split, in its order
