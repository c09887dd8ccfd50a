"""Tokenised, fixed-shape training batches through grain, with a checkpointable iterator.

Every example becomes the arrays of one bridged training row (`layout.bridged_batch`) plus
the source prompt and the target-tokenised question (the InfoNCE positive). Lengths are
fixed per run, so the jitted train step compiles once. Each process reads its own slice
of the globally shuffled stream (`jax.process_index()::jax.process_count()`), so a global
batch is the same set of examples whatever the number of hosts.
"""
import dataclasses
import functools
import logging
from collections.abc import Sequence

import grain
import numpy as np

from interlingua_jax import layout
from interlingua_jax.data import prompts
from interlingua_jax.data.records import Example


def token_ids(tokenizer, text: str) -> list[int]:
  """Ids of `text` without special tokens: BOS/EOS placement is the layout's job, never the tokenizer's."""
  return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def with_bos(tokenizer, ids: list[int]) -> list[int]:
  """A single BOS in front when the tokenizer has one (DESIGN §3.5: never two)."""
  return ids if tokenizer.bos_token_id is None else [tokenizer.bos_token_id, *ids]


@dataclasses.dataclass(frozen=True)
class Lengths:
  """The static shapes of a run: source prompt, bridged target row, target question, answer."""
  source: int
  target: int
  question: int
  answer: int


@dataclasses.dataclass(frozen=True)
class PromptBuilder:
  """Builds the prompt every text method and the source read, identically in training and evaluation."""
  dataset: str
  exemplars: tuple[Example, ...]
  source_tokenizer: object
  target_tokenizer: object
  max_source_len: int

  @functools.lru_cache(maxsize=None)  # training, every evaluation method and the wire analysis ask again
  def source_prompt(self, example: Example) -> str:
    """The full (k-shot) prompt, fitted to both tokenizers: exemplars are dropped from the end, never the question."""
    count = lambda text: 1 + max(len(token_ids(t, text)) for t in (self.source_tokenizer, self.target_tokenizer))
    prompt, dropped = prompts.fit_prompt(self.dataset, example, self.exemplars, count_tokens=count,
                                         max_tokens=self.max_source_len)
    if dropped:
      logging.info("example %s: dropped %d exemplar(s) to fit %d source tokens", example.id, dropped,
                   self.max_source_len)
    return prompt


def encode_example(example: Example, *, builder: PromptBuilder, target_tokenizer, anchor: str,
                   num_soft_tokens: int, lengths: Lengths) -> dict[str, np.ndarray]:
  """One training row: the source prompt (left-padded), the bridged target row, the question."""
  src = with_bos(builder.source_tokenizer, token_ids(builder.source_tokenizer, builder.source_prompt(example)))
  answer = token_ids(target_tokenizer, " " + example.answer)[:lengths.answer]
  question = token_ids(target_tokenizer, example.question)[:lengths.question]
  row = layout.bridged_batch([token_ids(target_tokenizer, anchor)], [answer], num_soft_tokens=num_soft_tokens,
                             seq_len=lengths.target, bos_id=target_tokenizer.bos_token_id,
                             pad_id=target_tokenizer.pad_token_id, eos_id=target_tokenizer.eos_token_id)
  source_pad = lengths.source - len(src)
  out = {f"target_{k}": v[0] for k, v in row._asdict().items()}
  out["source_ids"] = np.array([builder.source_tokenizer.pad_token_id] * source_pad + src, np.int32)
  out["source_mask"] = np.array([0] * source_pad + [1] * len(src), np.int32)
  out["question_ids"] = np.array(question + [target_tokenizer.pad_token_id] * (lengths.question - len(question)),
                                 np.int32)
  out["question_mask"] = np.array([1] * len(question) + [0] * (lengths.question - len(question)), np.int32)
  return out


def measure_lengths(examples: Sequence[Example], *, builder: PromptBuilder, target_tokenizer, anchor: str,
                    num_soft_tokens: int, max_answer_len: int) -> Lengths:
  """The static shapes that fit every example (answers longer than max_answer_len are cut, and logged)."""
  src = max(len(token_ids(builder.source_tokenizer, builder.source_prompt(e))) + 1 for e in examples)
  answers = [len(token_ids(target_tokenizer, " " + e.answer)) for e in examples]
  cut = sum(a > max_answer_len for a in answers)
  if cut:
    logging.warning("%d of %d answers exceed data.max_answer_len=%d target tokens and are cut", cut,
                    len(examples), max_answer_len)
  answer = min(max(answers), max_answer_len)
  question = max(len(token_ids(target_tokenizer, e.question)) for e in examples)
  bos = 0 if target_tokenizer.bos_token_id is None else 1
  target = bos + num_soft_tokens + len(token_ids(target_tokenizer, anchor)) + answer + 1
  return Lengths(source=src, target=target, question=question, answer=answer)


def train_dataset(encoded: Sequence[dict[str, np.ndarray]], *, global_batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
  """Seeded shuffle of the whole pool every epoch, this process's slice, batched; endless."""
  if not encoded:
    raise ValueError("the training pool is empty: check data.train_path / the train split.")
  if global_batch_size % process_count:
    raise ValueError(f"train.batch_size={global_batch_size} must be divisible by the {process_count} processes.")
  ds = grain.MapDataset.source(list(encoded)).shuffle(seed=seed).repeat()
  ds = ds[process_index::process_count]
  return ds.batch(global_batch_size // process_count, drop_remainder=True).to_iter_dataset()
