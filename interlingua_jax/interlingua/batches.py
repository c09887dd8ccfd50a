"""What the interlingua reads and what each target is taught: one training row per question.

The encoder reads `reading_text`: the question first, then the context, so that the cut at
`interlingua.max_bytes` drops the end of the context, never the question. Each target t gets its own
bridged row (`layout.bridged_batch`, its own tokenizer): `[BOS][M soft tokens][anchor][answer][EOS]`,
the answer cut to its first K tokens, which is all the loss reads (`first_k_mask`): a longer answer's
EOS lies past the K-th loss position either way. Rows are padded to fixed widths, so one train step
compiles once.
"""
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from interlingua_jax import layout
from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.interlingua.encoder import PAD, encode_bytes

BYTES, BYTES_MASK = "bytes", "bytes_mask"


def reading_text(example: Example) -> str:
  """The text the encoder reads (and the token-budget baseline cuts): question, then context if any."""
  return example.question if not example.context else f"{example.question}\n\n{example.context}"


def byte_ids(example: Example, max_bytes: int) -> list[int]:
  ids, mask = encode_bytes([reading_text(example)], max_bytes)
  return ids[0, :int(mask.sum())].tolist()


def pad_bytes(rows: Sequence[Sequence[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
  """Right-padded (B, width) ids and mask: the encoder's positions count from the first byte."""
  ids = np.full((len(rows), width), PAD, np.int32)
  for i, r in enumerate(rows):
    ids[i, :len(r)] = r
  return ids, (ids != PAD).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class RowSpec:
  """The fixed shapes of a run's rows: byte width and, per target, the bridged row's length."""
  num_latents: int
  k_tokens: int
  anchor: str
  byte_width: int
  target_lengths: Mapping[str, int]


def row_spec(examples: Sequence[Example], tokenizers: Mapping[str, object], *, num_latents: int, k_tokens: int,
             anchor: str, max_bytes: int) -> RowSpec:
  width = max(len(byte_ids(e, max_bytes)) for e in examples)
  lengths = {name: (tok.bos_token_id is not None) + num_latents + len(pipeline.anchor_ids(tok, anchor)) + k_tokens + 1
             for name, tok in tokenizers.items()}
  return RowSpec(num_latents, k_tokens, anchor, width, lengths)


def encode_example(example: Example, tokenizers: Mapping[str, object], spec: RowSpec) -> dict[str, np.ndarray]:
  """One row: the bytes the encoder reads and, for each target `name`, the fields `name/<BridgedBatch field>`."""
  ids, mask = pad_bytes([byte_ids(example, spec.byte_width)], spec.byte_width)
  out = {BYTES: ids[0], BYTES_MASK: mask[0]}
  for name, tok in tokenizers.items():
    answer = pipeline.answer_ids(tok, spec.anchor, example.answer)[:spec.k_tokens]
    row = layout.bridged_batch([pipeline.anchor_ids(tok, spec.anchor)], [answer], num_soft_tokens=spec.num_latents,
                               seq_len=spec.target_lengths[name], bos_id=tok.bos_token_id, pad_id=tok.pad_token_id,
                               eos_id=tok.eos_token_id)
    out.update({f"{name}/{field}": v[0] for field, v in row._asdict().items()})
  return out


def target_batch(batch: Mapping[str, object], name: str) -> layout.BridgedBatch:
  """Target `name`'s rows of a batch of `encode_example` rows."""
  return layout.BridgedBatch(*(batch[f"{name}/{field}"] for field in layout.BridgedBatch._fields))
