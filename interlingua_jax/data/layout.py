"""The target LM's input layout, shared by bridged training, bridged generation and text baselines.

    [left pad][BOS][M soft tokens][prompt ids][answer ids][EOS]    training
    [left pad][BOS][M soft tokens][prompt ids]                     generation (answer_ids=None)

Padding is only ever on the left, so the soft tokens and the text are contiguous and a
generated token always follows the last prompt token. Positions count from 0 at the first
real element (BOS, or the first soft token when the tokenizer has no BOS), identically in
training and generation; pads get position 0 (they are masked, so any value would do).
With `num_soft_tokens=0` this is the plain text layout of the text-only baselines.
"""
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interlingua_jax.models import DecoderConfig, embed


class BridgedBatch(NamedTuple):
  """All (B, S) int32 numpy arrays.

  token_ids: input ids; `pad_id` at pads and at soft-token slots.
  soft_index: k at the slot of soft token k, -1 elsewhere (see `place_soft_tokens`).
  attention_mask: 1 at real elements (BOS, soft tokens, text), 0 at pads.
  positions: 0, 1, 2, ... from the first real element; 0 at pads.
  labels: next-token targets, already shifted: labels[:, t] is the token at t + 1.
  loss_mask: 1 where labels[:, t] is an answer token or the EOS, else 0.
  """
  token_ids: np.ndarray
  soft_index: np.ndarray
  attention_mask: np.ndarray
  positions: np.ndarray
  labels: np.ndarray
  loss_mask: np.ndarray


def bridged_batch(prompt_ids: Sequence[Sequence[int]], answer_ids: Sequence[Sequence[int]] | None,
                  *, num_soft_tokens: int, seq_len: int | None, bos_id: int | None, pad_id: int,
                  eos_id: int | None = None) -> BridgedBatch:
  """Left-padded batch in the layout above.

  prompt_ids: per sample, the target prompt's ids without BOS (e.g. the "Answer: " anchor).
  answer_ids: per sample, the answer's ids without EOS; None for generation.
  seq_len: the padded length S; None = the longest sample. Too long a sample is an error,
    never silently truncated: callers truncate before.
  bos_id: the target tokenizer's BOS, placed once; None if it has none.
  eos_id: the EOS the target learns to emit after the answer; required with answers.
  """
  if answer_ids is not None and len(answer_ids) != len(prompt_ids):
    raise ValueError(f"answer_ids has {len(answer_ids)} samples but prompt_ids has {len(prompt_ids)}.")
  if answer_ids is not None and eos_id is None:
    raise ValueError("eos_id is required with answer_ids: the EOS after each answer is a training target.")
  if num_soft_tokens < 0:
    raise ValueError(f"num_soft_tokens must be >= 0, got {num_soft_tokens}.")
  if not prompt_ids:
    raise ValueError("prompt_ids is empty: a batch needs at least one sample.")
  head = [] if bos_id is None else [bos_id]
  rows = []  # (text before the answer, answer + EOS) for each sample
  for i, prompt in enumerate(prompt_ids):
    answer = [] if answer_ids is None else [*answer_ids[i], eos_id]
    rows.append((list(prompt), answer))
    if num_soft_tokens == 0 and not head and not prompt:
      raise ValueError(f"Sample {i} has no BOS, no soft tokens and an empty prompt: nothing to condition on.")
  lengths = [len(head) + num_soft_tokens + len(p) + len(a) for p, a in rows]
  seq_len = max(lengths) if seq_len is None else seq_len
  for i, ((prompt, answer), length) in enumerate(zip(rows, lengths)):
    if length > seq_len:
      raise ValueError(
          f"Sample {i} needs {length} positions (BOS {len(head)} + soft {num_soft_tokens} + prompt "
          f"{len(prompt)} + answer+EOS {len(answer)}) but seq_len is {seq_len}: truncate the prompt "
          "or answer before building the batch, or raise seq_len.")

  shape = (len(rows), seq_len)
  token_ids = np.full(shape, pad_id, np.int32)
  soft_index = np.full(shape, -1, np.int32)
  attention_mask = np.zeros(shape, np.int32)
  is_target = np.zeros(shape, np.int32)  # answer tokens and EOS as inputs
  for i, ((prompt, answer), length) in enumerate(zip(rows, lengths)):
    start = seq_len - length
    soft_start = start + len(head)
    text_start = soft_start + num_soft_tokens
    answer_start = text_start + len(prompt)
    token_ids[i, start:soft_start] = head
    soft_index[i, soft_start:text_start] = np.arange(num_soft_tokens)
    token_ids[i, text_start:] = prompt + answer
    attention_mask[i, start:] = 1
    is_target[i, answer_start:] = 1
  positions = np.maximum(np.cumsum(attention_mask, axis=1) - 1, 0).astype(np.int32)
  labels = np.concatenate([token_ids[:, 1:], np.full((shape[0], 1), pad_id, np.int32)], axis=1)
  loss_mask = np.concatenate([is_target[:, 1:], np.zeros((shape[0], 1), np.int32)], axis=1)
  return BridgedBatch(token_ids, soft_index, attention_mask, positions, labels, loss_mask)


def text_batch(prompt_ids: Sequence[Sequence[int]], answer_ids: Sequence[Sequence[int]] | None = None,
               *, seq_len: int | None, bos_id: int | None, pad_id: int,
               eos_id: int | None = None) -> BridgedBatch:
  """`[left pad][BOS][prompt ids]([answer ids][EOS])`: the text baselines' layout, same conventions."""
  return bridged_batch(prompt_ids, answer_ids, num_soft_tokens=0, seq_len=seq_len, bos_id=bos_id,
                       pad_id=pad_id, eos_id=eos_id)


def place_soft_tokens(token_embeds: jax.Array, soft: jax.Array, soft_index: jax.Array) -> jax.Array:
  """Put soft[b, k] where soft_index[b, s] == k, keep token_embeds elsewhere.

  token_embeds: (B, S, d) target embeddings of `token_ids`; soft: (B, M, d); soft_index: (B, S).
  A gather, so the result is differentiable in `soft`; it has token_embeds' dtype.
  """
  if soft.shape[0] != token_embeds.shape[0] or soft.shape[2] != token_embeds.shape[2]:
    raise ValueError(f"soft {soft.shape} must be (batch, M, d) matching token_embeds {token_embeds.shape}.")
  if soft_index.shape != token_embeds.shape[:2]:
    raise ValueError(f"soft_index {soft_index.shape} must be token_embeds' (batch, seq) "
                     f"{token_embeds.shape[:2]}.")
  if soft.shape[1] == 0:
    return token_embeds
  gathered = jnp.take_along_axis(soft, jnp.maximum(soft_index, 0)[..., None], axis=1)
  return jnp.where(soft_index[..., None] >= 0, gathered.astype(token_embeds.dtype), token_embeds)


def target_inputs(params, config: DecoderConfig, soft: jax.Array, token_ids: jax.Array,
                  soft_index: jax.Array) -> jax.Array:
  """The target's input embeddings: its own token embeddings with the soft tokens placed in their slots."""
  return place_soft_tokens(embed(params, config, token_ids), soft, soft_index)
