"""What the interlingua reads and what each target is taught: one training row per question.

The encoder reads `reading_text`: the question first, then the context, so that the cut at the reader's
`max_len` drops the end of the context, never the question. A `Reader` says in which units: UTF-8 bytes
(the byte encoder) or the frozen source LM's tokens (the states encoder). Each target t gets its own
bridged row (`layout.bridged_batch`, its own tokenizer): `[BOS][M soft tokens][anchor][answer][EOS]`,
the answer cut to its first K tokens, which is all the loss reads (`first_k_mask`): a longer answer's
EOS lies past the K-th loss position either way. Target rows have one fixed width; the encoder's input is
padded to the longest and each batch cut to its length bucket (`PARTS`), so the train step compiles once per
bucket.
"""
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from interlingua_jax.data import layout
from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.bridges.interlingua.encoder import PAD, encode_bytes

ENCODER_IDS, ENCODER_MASK = "encoder_ids", "encoder_mask"  # what the encoder reads: bytes or source tokens
# The one part of a row whose width varies, right-padded: each training batch is cut to its length bucket
# (a states encoder's source LM reads up to the batch's longest text's bucket, not the pool's longest).
PARTS = {"encoder": pipeline.PaddedPart(ENCODER_MASK, (ENCODER_IDS, ENCODER_MASK), left=False)}


def reading_text(example: Example) -> str:
  """The text the encoder reads (and the token-budget baseline cuts): question, then context if any."""
  return example.question if not example.context else f"{example.question}\n\n{example.context}"


def byte_ids(example: Example, max_bytes: int) -> list[int]:
  ids, mask = encode_bytes([reading_text(example)], max_bytes)
  return ids[0, :int(mask.sum())].tolist()


@dataclasses.dataclass(frozen=True)
class Reader:
  """The encoder's input units: UTF-8 bytes (tokenizer None) or a source LM tokenizer's ids (BOS added as the
  tokenizer adds it), at most max_len of them, right-padded (the encoder's positions count from the first)."""
  max_len: int
  tokenizer: object | None = None

  def ids(self, example: Example) -> list[int]:
    if self.tokenizer is None:
      return byte_ids(example, self.max_len)
    tok = self.tokenizer
    return pipeline.with_bos(tok, pipeline.token_ids(tok, reading_text(example)))[:self.max_len]

  def pad(self, rows: Sequence[Sequence[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, width) ids and their mask, from the rows' lengths (a pad id may also be a real token's)."""
    pad_id = PAD if self.tokenizer is None else (self.tokenizer.pad_token_id or 0)
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
      ids[i, :len(r)], mask[i, :len(r)] = r, 1
    return ids, mask


@dataclasses.dataclass(frozen=True)
class RowSpec:
  """The fixed shapes of a run's rows: what the encoder reads and its width, and per target the bridged
  row's length."""
  num_soft_tokens: int
  k_tokens: int
  anchor: str
  reader: Reader
  width: int
  target_lengths: Mapping[str, int]


def row_spec(examples: Sequence[Example], tokenizers: Mapping[str, object], *, num_soft_tokens: int, k_tokens: int,
             anchor: str, reader: Reader) -> RowSpec:
  width = max(len(reader.ids(e)) for e in examples)
  lengths = {name: (tok.bos_token_id is not None) + num_soft_tokens + len(pipeline.anchor_ids(tok, anchor)) + k_tokens + 1
             for name, tok in tokenizers.items()}
  return RowSpec(num_soft_tokens, k_tokens, anchor, reader, width, lengths)


def encode_example(example: Example, tokenizers: Mapping[str, object], spec: RowSpec) -> dict[str, np.ndarray]:
  """One row: what the encoder reads and, for each target `name`, the fields `name/<BridgedBatch field>`."""
  ids, mask = spec.reader.pad([spec.reader.ids(example)], spec.width)
  out = {ENCODER_IDS: ids[0], ENCODER_MASK: mask[0]}
  for name, tok in tokenizers.items():
    answer = pipeline.answer_ids(tok, spec.anchor, example.answer)[:spec.k_tokens]
    row = layout.bridged_batch([pipeline.anchor_ids(tok, spec.anchor)], [answer], num_soft_tokens=spec.num_soft_tokens,
                               seq_len=spec.target_lengths[name], bos_id=tok.bos_token_id, pad_id=tok.pad_token_id,
                               eos_id=tok.eos_token_id)
    out.update({f"{name}/{field}": v[0] for field, v in row._asdict().items()})
  return out


def target_batch(batch: Mapping[str, object], name: str) -> layout.BridgedBatch:
  """Target `name`'s rows of a batch of `encode_example` rows."""
  return layout.BridgedBatch(*(batch[f"{name}/{field}"] for field in layout.BridgedBatch._fields))
