"""The run's three splits: `train` (what the translator trains on), `validation` and `test`.

Validation is carved from the train split after the few-shot exemplars are removed, so it is
disjoint from the exemplars and from the translator's training pool; it serves everything
decided during training (evaluation, early stopping, the best checkpoint). The test split is
evaluated once, at the end. Each split's size and a hash of its ids go into the run's summary,
so two runs can be checked to have used the same questions.
"""
import dataclasses
import hashlib
import random
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
         validation_size: int, seed: int) -> Splits:
  """Exemplars drawn as the reference drew them, then `validation_size` seeded questions of the rest."""
  exemplars = prompts.select_exemplars(train, num_shots, shot_seed) if num_shots else []
  pool = prompts.training_pool(train, [e.id for e in exemplars])
  if not 0 < validation_size < len(pool):
    raise ValueError(f"train.eval_num_samples={validation_size} validation questions must be carved from the "
                     f"{len(pool)} training questions left after the exemplars: use 1..{len(pool) - 1}")
  chosen = set(random.Random(seed).sample(range(len(pool)), validation_size))
  overlap = {e.id for e in test} & {e.id for e in train}
  if overlap:
    raise ValueError(f"{len(overlap)} test ids also appear in the train split (e.g. {sorted(overlap)[:3]}): "
                     "the test questions would be trained on; give the two splits distinct ids")
  return Splits(exemplars=tuple(exemplars),
                train=tuple(e for i, e in enumerate(pool) if i not in chosen),
                validation=tuple(e for i, e in enumerate(pool) if i in chosen),
                test=tuple(test))
