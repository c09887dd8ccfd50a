"""Prompts, and tokenised training batches through grain, padded to length buckets, with a checkpointable iterator.

A bridge kind encodes every example as arrays padded to the pool's longest and names their `PaddedPart`s (its
source prompt, its target row, an encoder's input). Each global batch is then cut to the smallest of
`length_buckets` that holds its longest row of each part (the cut drops pad columns only): short batches cost
short compute, and the jitted train step compiles once per bucket pair, a bounded number of shapes
that the run logs. Each process takes its own rows of every global batch, so a global batch
is the same set of examples whatever the number of hosts. With cached source states,
each process's rows then get their frozen-source states, left-padded exactly as `source_ids`.
"""
import dataclasses
import functools
import logging
from collections.abc import Mapping, Sequence

import grain
import numpy as np

from interlingua_jax.data import prompts
from interlingua_jax.data.records import Example


@dataclasses.dataclass(frozen=True)
class PaddedPart:
  """Fields of every training row padded to the pool's longest, cut per batch to its length bucket. The mask's
  row sums are the lengths; a left-padded part (the row's end aligned) keeps its last columns, a right-padded one
  its first, so the cut drops pad columns only."""
  mask: str
  fields: tuple[str, ...]
  left: bool


SOURCE_INDEX = "source_index"  # an example's row of the source cache, added by `train_dataset`
SOURCE_STATES = "source_states"  # (B, S, d) cached source states: the loss then skips the source forward


def token_ids(tokenizer, text: str) -> list[int]:
  """Ids of `text` without special tokens: BOS/EOS placement is the layout's job, never the tokenizer's."""
  return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def with_bos(tokenizer, ids: list[int]) -> list[int]:
  """Exactly one BOS in front when the tokenizer has one (docs/DESIGN.md §3.5: never two), whether or not
  the text already began with it (a chat template writes it as text)."""
  bos = tokenizer.bos_token_id
  return ids if bos is None or ids[:1] == [bos] else [bos, *ids]


def split_anchor(anchor: str) -> tuple[str, str]:
  """(the anchor the target reads, the separator that starts its answer).

  The anchor's trailing whitespace belongs to the answer ("Answer: " + "Natalia" is read as
  "Answer:" then " Natalia", one space, tokenised as the models saw such text in pretraining);
  an anchor without trailing whitespace is followed by one space ("A:" → "A:" + " 12").
  """
  text = anchor.rstrip()
  return text, anchor[len(text):] or " "


def anchor_ids(tokenizer, anchor: str) -> list[int]:
  return token_ids(tokenizer, split_anchor(anchor)[0])


def answer_ids(tokenizer, anchor: str, answer: str) -> list[int]:
  return token_ids(tokenizer, split_anchor(anchor)[1] + answer.strip())


def bucket(length: int, buckets: Sequence[int]) -> int:
  """The smallest bucket that holds `length`; beyond the largest, the largest doubled until it does.

  Few static lengths means the jitted programs compile a few times, not once per batch.
  """
  for b in sorted(buckets):
    if length <= b:
      return b
  b = max(buckets)
  while b < length:
    b *= 2
  return b


@dataclasses.dataclass(frozen=True)
class PromptBuilder:
  """Builds the prompt every text method and the source read, identically in training and evaluation.

  chat_template=True wraps every text prompt as one user turn of the tokenizer's chat template
  (instruct checkpoints); the bridged target row `[BOS][soft][anchor]` is not wrapped.
  """
  dataset: str
  exemplars: tuple[Example, ...]
  source_tokenizer: object
  target_tokenizer: object
  max_source_len: int
  chat_template: bool = False
  bridge_shots: int | None = None  # exemplars in the source's prompt for the soft tokens (None: all of them)

  def ids(self, tokenizer, text: str) -> list[int]:
    """What a model reads for a text prompt: the chat template if on, exactly one BOS."""
    if self.chat_template:
      text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                           add_generation_prompt=True)
    return with_bos(tokenizer, token_ids(tokenizer, text))

  @functools.lru_cache(maxsize=None)  # training, every evaluation method and the wire analysis ask again
  def source_prompt(self, example: Example) -> str | None:
    """The full prompt, fitted to both tokenizers by `prompts.fit_prompt`'s rule; None when it cannot fit."""
    count = lambda text: max(len(self.ids(t, text)) for t in (self.source_tokenizer, self.target_tokenizer))
    prompt, dropped = prompts.fit_prompt(self.dataset, example, self.exemplars, count_tokens=count,
                                         max_tokens=self.max_source_len)
    if dropped and prompt is not None:
      logging.debug("example %s: dropped %d exemplar(s)/paragraph(s) to fit %d source tokens", example.id, dropped,
                   self.max_source_len)
    return prompt

  @functools.lru_cache(maxsize=None)
  def bridge_prompt(self, example: Example) -> str | None:
    """What the source reads for the soft tokens: the full prompt, or with only the first `bridge_shots`
    exemplars. The bridged target row never shows the exemplars, so they only cost source compute (8 GSM8K
    exemplars are ~85% of the source's tokens)."""
    if self.bridge_shots is None or self.bridge_shots >= len(self.exemplars):
      return self.source_prompt(example)
    return dataclasses.replace(self, exemplars=self.exemplars[:self.bridge_shots], bridge_shots=None).source_prompt(
        example)


def train_dataset(encoded: Sequence[dict[str, np.ndarray]], *, global_batch_size: int, seed: int,
                  parts: Mapping[str, PaddedPart], length_buckets: Sequence[int] = (),
                  process_index: int = 0, process_count: int = 1,
                  source_states: Sequence[np.ndarray] | None = None) -> grain.IterDataset:
  """Seeded shuffle of the whole pool every epoch, global batches' `parts` cut to `length_buckets`, this
  process's rows; endless. No buckets = every batch padded to the pool's longest. `source_states[i]`: example
  i's cached states, added to its rows (`add_source_states`); the shuffle and the batches are the same with or
  without them."""
  if not encoded:
    raise ValueError("the training pool is empty: check data.train_path / the train split.")
  if global_batch_size % process_count:
    raise ValueError(f"train.batch_size={global_batch_size} must be divisible by the {process_count} processes.")
  cut = functools.partial(cut_to_buckets, buckets=tuple(length_buckets), parts=parts)
  rows = lambda batch: {k: v[process_index::process_count] for k, v in batch.items()}
  if source_states is not None:
    if len(source_states) != len(encoded):
      raise ValueError(f"the source cache holds {len(source_states)} examples, the pool {len(encoded)}.")
    encoded = [dict(e, **{SOURCE_INDEX: np.int32(i)}) for i, e in enumerate(encoded)]
  ds = grain.MapDataset.source(list(encoded)).shuffle(seed=seed).repeat()
  ds = ds.batch(global_batch_size, drop_remainder=True).map(cut).map(rows)
  if source_states is not None:
    ds = ds.map(functools.partial(add_source_states, source_states=source_states))
  return ds.to_iter_dataset()


def add_source_states(batch: dict[str, np.ndarray], source_states: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
  """The rows' cached states in place of their cache index, left-padded to the batch's `source_ids` width:
  each row's real tokens end the row, as they do in `source_ids`. Zeros under the pad, whose keys the
  bridge masks (exactly zero attention weight), so they are never read."""
  out = dict(batch)
  index, mask = out.pop(SOURCE_INDEX), batch["source_mask"]
  width = mask.shape[1]
  first = source_states[0]  # every example's states share width and dtype (e.g. a `source_cache.SourceStates`)
  states = np.zeros((len(index), width, first.shape[-1]), first.dtype)
  for row, (i, length) in enumerate(zip(index, mask.sum(axis=1))):
    cached = source_states[int(i)]
    if len(cached) != length:
      raise ValueError(f"the cached source states of example {int(i)} cover {len(cached)} tokens, its prompt "
                       f"{length}: the cache does not belong to this pool.")
    states[row, width - length:] = cached
  out[SOURCE_STATES] = states
  return out


def cut_to_buckets(batch: dict[str, np.ndarray], buckets: tuple[int, ...],
                   parts: Mapping[str, PaddedPart]) -> dict[str, np.ndarray]:
  """Drops the all-pad columns of each part's fields, down to the batch's length bucket."""
  if not buckets:
    return batch
  out = dict(batch)
  for part in parts.values():
    if part.mask in batch:
      full = batch[part.mask].shape[1]
      keep = min(bucket(int(batch[part.mask].sum(axis=1).max()), buckets), full)
      columns = slice(full - keep, None) if part.left else slice(0, keep)
      out.update({k: batch[k][:, columns] for k in part.fields})
  return out


def compiled_shapes(encoded: Sequence[dict[str, np.ndarray]], buckets: Sequence[int],
                    parts: Mapping[str, PaddedPart]) -> dict[str, list[int]]:
  """The padded lengths training batches can take, per part: at most their product of shapes compile."""
  out = {}
  for name, part in parts.items():
    full = encoded[0][part.mask].shape[0]
    out[name] = sorted({min(bucket(int(e[part.mask].sum()), buckets), full) if buckets else full for e in encoded})
  return out
