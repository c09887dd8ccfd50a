"""The run's three splits: `train` (what the bridge trains on), `validation` and `test`.

Validation is carved from the train split after the few-shot exemplars are removed, so it is
disjoint from the exemplars and from the bridge's training pool; it serves everything
decided during training (evaluation, early stopping, the best checkpoint). The test split is
evaluated once, at the end. Each split's size and a hash of its ids go into the run's summary,
so two runs can be checked to have used the same questions.
"""
import collections
import dataclasses
import hashlib
import random
import re
from collections.abc import Sequence

from interlingua_jax.data import prompts
from interlingua_jax.data.records import Example


@dataclasses.dataclass(frozen=True)
class Splits:
  exemplars: tuple[Example, ...]
  train: tuple[Example, ...]
  validation: tuple[Example, ...]
  test: tuple[Example, ...]

  def summary(self) -> dict[str, dict]:
    """Per split: its size and the sha256 of its sorted ids (order-free: the same set, the same hash)."""
    return {name: {"size": len(part), "ids_sha256": ids_hash(part)}
            for name, part in (("exemplars", self.exemplars), ("train", self.train),
                               ("validation", self.validation), ("test", self.test))}


def ids_hash(examples: Sequence[Example]) -> str:
  return hashlib.sha256("\n".join(sorted(e.id for e in examples)).encode()).hexdigest()


def make(train: Sequence[Example], test: Sequence[Example], *, num_shots: int, shot_seed: int,
         validation_size: int, seed: int, by_passage: bool = False) -> Splits:
  """Exemplars drawn as the reference drew them, then `validation_size` seeded questions of the rest."""
  exemplars = prompts.select_exemplars(train, num_shots, shot_seed) if num_shots else []
  pool = prompts.training_pool(train, [e.id for e in exemplars])
  if not 0 < validation_size < len(pool):
    raise ValueError(f"train.eval_num_samples={validation_size} validation questions must be carved from the "
                     f"{len(pool)} training questions left after the exemplars: use 1..{len(pool) - 1}")
  overlap = {e.id for e in test} & {e.id for e in train}
  if overlap:
    raise ValueError(f"{len(overlap)} test ids also appear in the train split (e.g. {sorted(overlap)[:3]}): "
                     "the test questions would be trained on; give the two splits distinct ids")
  test_texts = {normalized_question(e) for e in test}
  seen_in_test = [e for e in pool if normalized_question(e) in test_texts]
  if seen_in_test:  # ids differ (or there are none: `<split>-<row>`), yet the question is a test question
    raise ValueError(f"{len(seen_in_test)} train question(s) are test questions up to case, spacing and "
                     f"punctuation (e.g. train id {seen_in_test[0].id!r}): the test questions would be trained on; "
                     "remove them from the train file")
  unit = _passage if by_passage else (lambda e: "id:" + e.id)
  validation = _carve(pool, validation_size, seed, unit)
  return Splits(exemplars=tuple(exemplars),
                train=tuple(e for e in pool if unit(e) not in validation),
                validation=tuple(e for e in pool if unit(e) in validation),
                test=tuple(test))


def normalized_question(example: Example) -> str:
  """A question as the overlap check compares it: lower case, letters and digits only, single spaces."""
  return " ".join(re.sub(r"[^0-9a-z]+", " ", (example.context or "") + " " + example.question.lower()).split())


def _passage(example: Example) -> str:
  """The unit validation is carved by for datasets whose questions share passages (SQuAD): the passage."""
  return "context:" + example.context if example.context else "id:" + example.id


def _carve(pool: Sequence[Example], size: int, seed: int, unit) -> set[str]:
  """Whole units (a question, or a passage with all its questions), in a seeded order, until they hold `size`
  questions (so at least `size`): a validation question never shares its paragraph with a training question. Not
  whole clusters: a toy world's problem or a SQuAD article holds so many questions that a validation split of a
  few hundred would cover one or two of them."""
  units = sorted({unit(e) for e in pool})
  sizes = collections.Counter(unit(e) for e in pool)
  chosen, held = set(), 0
  for u in random.Random(seed).sample(units, len(units)):
    if held >= size:
      break
    chosen.add(u)
    held += sizes[u]
  if len(chosen) == len(units):
    raise ValueError(f"train.eval_num_samples={size}: validation would take every one of the {len(units)} training "
                     "passages (or questions); lower train.eval_num_samples")
  return chosen


def evaluation_subset(test: Sequence[Example], num: int, seed: int) -> tuple[list[Example], dict]:
  """`num` test questions drawn with `seed` (in file order), not the first `num` rows: a file ordered by article
  (SQuAD) would otherwise give a few articles. With what a run's summary records of them (size, hash, ids)."""
  chosen = sorted(random.Random(seed).sample(range(len(test)), min(num, len(test))))
  examples = [test[i] for i in chosen]
  return examples, {"size": len(examples), "ids_sha256": ids_hash(examples), "subset_seed": seed,
                    "ids": [e.id for e in examples]}
