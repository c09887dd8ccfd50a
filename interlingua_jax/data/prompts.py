"""Prompts: the 8-shot GSM8K prompt of docs/DESIGN.md §2, the context prompt of HotpotQA and SQuAD, and
fitting a prompt to a token budget by each dataset's rule; which prompt a dataset uses is its registered
description's (`data/kinds.py`).

The exemplars are drawn once from the train split with a fixed seed and are excluded from
the training pool (docs/DESIGN.md §3.10), so the model never trains on its own evaluation prefix.
"""
import random
from collections.abc import Callable, Collection, Sequence

from interlingua_jax.data import kinds
from interlingua_jax.data.records import Example

GSM8K_INSTRUCTION = ("Solve each problem step by step, then give the final answer on its own line "
                     "as '#### <number>'.")


def exemplar_indices(n: int, k: int = 8, seed: int = 42) -> list[int]:
  """Indices into a train split of size `n`, as the reference drew them:
  `random.Random(seed).sample(range(n), k)` (order matters: it is the prompt order)."""
  if not 0 <= k <= n:
    raise ValueError(f"cannot draw {k} exemplars from a train split of {n} examples (data.num_shots)")
  return random.Random(seed).sample(range(n), k)


def select_exemplars(train: Sequence[Example], k: int = 8, seed: int = 42) -> list[Example]:
  return [train[i] for i in exemplar_indices(len(train), k, seed)]


def training_pool(train: Sequence[Example], exemplar_ids: Collection[str]) -> list[Example]:
  """The train split without the prompt exemplars (docs/DESIGN.md §3.10)."""
  exemplar_ids = set(exemplar_ids)
  missing = exemplar_ids - {example.id for example in train}
  if missing:  # an id that matches nothing would silently exclude nothing
    raise ValueError(f"exemplar ids {sorted(missing, key=str)[:5]} are not ids of the train split; "
                     "pass the `id`s of the selected exemplars")
  return [example for example in train if example.id not in exemplar_ids]


def fewshot_prompt(question: str, exemplars: Sequence[Example] = (), *,
                   instruction: str | None = GSM8K_INSTRUCTION) -> str:
  """`instruction`, then `Q: …\\nA: <answer>` per exemplar, then `Q: <question>\\nA:`, joined by
  blank lines. A GSM8K answer already ends in `#### n`. Zero-shot with no instruction: `Q: …\\nA:`."""
  parts = [] if instruction is None else [instruction]
  parts += [f"Q: {e.question}\nA: {e.answer}" for e in exemplars]
  parts.append(f"Q: {question}\nA:")
  return "\n\n".join(parts)


def hotpotqa_prompt(question: str, context: str) -> str:
  return f"{context}\n\nQuestion: {question}\nAnswer:"


def build_prompt(dataset: str, example: Example, exemplars: Sequence[Example] = ()) -> str:
  """The evaluation prompt for `example`, as its dataset's description builds it: GSM8K few-shot with the
  instruction, the toy world zero-shot without it (its tiny models learn the bare format), HotpotQA and
  SQuAD with their context."""
  return kinds.get(dataset).prompt(example, exemplars)


def fit_prompt(dataset: str, example: Example, exemplars: Sequence[Example], *,
               count_tokens: Callable[[str], int], max_tokens: int) -> tuple[str | None, int]:
  """The longest prompt within `max_tokens`, or None when even the shortest one is over it.

  The rule for long prompts (a run never aborts on one) is the dataset's `shorter`: GSM8K and the toy
  world drop exemplars from the end; HotpotQA drops whole context paragraphs from the end, keeping at
  least one; SQuAD shortens nothing. The question itself is never cut: an example whose shortest prompt
  is over the budget gets None, and the caller skips and counts it. Returns the prompt and how many
  variants were dropped (exemplars or paragraphs). To fit both models, pass `count_tokens` as the larger
  of the two tokenizers' counts.
  """
  kind = kinds.get(dataset)
  dropped = -1
  for dropped, (variant, shots) in enumerate(kind.shorter(example, exemplars)):
    prompt = kind.prompt(variant, shots)
    if count_tokens(prompt) <= max_tokens:
      return prompt, dropped
  return None, dropped
