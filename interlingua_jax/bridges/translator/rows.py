"""The translator's training rows: the source prompt and the bridged target row, both left-padded, and the
target-tokenised question (the InfoNCE positive), at static lengths measured on the whole pool.
"""
import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from interlingua_jax.data import layout
from interlingua_jax.data.pipeline import PaddedPart, PromptBuilder, anchor_ids, answer_ids, token_ids
from interlingua_jax.data.records import Example

PARTS = {
    "source": PaddedPart("source_mask", ("source_ids", "source_mask"), left=True),
    "target": PaddedPart("target_attention_mask", ("target_token_ids", "target_soft_index", "target_attention_mask",
                                                   "target_positions", "target_labels", "target_loss_mask"), left=True)}



@dataclasses.dataclass(frozen=True)
class Lengths:
  """The static shapes of a run: source prompt, bridged target row, target question, answer."""
  source: int
  target: int
  question: int
  answer: int


def encode_example(example: Example, *, builder: PromptBuilder, target_tokenizer, anchor: str,
                   num_soft_tokens: int, lengths: Lengths) -> dict[str, np.ndarray]:
  """One training row: the source prompt (left-padded), the bridged target row, the question."""
  src = builder.ids(builder.source_tokenizer, builder.bridge_prompt(example))
  answer = answer_ids(target_tokenizer, anchor, example.answer)[:lengths.answer]
  question = token_ids(target_tokenizer, example.question)[:lengths.question]
  row = layout.bridged_batch([anchor_ids(target_tokenizer, anchor)], [answer], num_soft_tokens=num_soft_tokens,
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
  src = max(len(builder.ids(builder.source_tokenizer, builder.bridge_prompt(e))) for e in examples)
  answers = [len(answer_ids(target_tokenizer, anchor, e.answer)) for e in examples]
  cut = sum(a > max_answer_len for a in answers)
  if cut:
    logging.warning("%d of %d answers exceed data.max_answer_len=%d target tokens and are cut", cut,
                    len(examples), max_answer_len)
  answer = min(max(answers), max_answer_len)
  question = max(len(token_ids(target_tokenizer, e.question)) for e in examples)
  bos = 0 if target_tokenizer.bos_token_id is None else 1
  target = bos + num_soft_tokens + len(anchor_ids(target_tokenizer, anchor)) + answer + 1
  return Lengths(source=src, target=target, question=question, answer=answer)


def encode_pool(examples: Sequence[Example], **kwargs) -> list[dict[str, np.ndarray]]:
  return [encode_example(e, **kwargs) for e in examples]
