"""The run's splits: validation carved from train, disjoint from the exemplars, the training pool and test."""
import pytest

from interlingua_jax.data import splits
from interlingua_jax.data.records import Example


def _examples(split: str, n: int) -> list[Example]:
  return [Example(f"{split}-{i}", f"q{i}?", f"#### {i}", str(i)) for i in range(n)]


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
