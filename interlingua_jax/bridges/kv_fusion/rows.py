"""KV fusion's training rows: the text both LMs read, tokenised by each, the map between their tokens, and the
answer the target is taught to write on the fused cache.

    source   the source's prompt (left-padded)
    prefix   the target's prompt but its last token (left-padded): the cache the fusers rewrite
    chunk    [last prompt token, answer...] with labels [answer..., EOS] (right-padded): run on the fused cache

`alignment[j]` is the source *token* (0 = its first real token, -1 = none) that target prefix slot j reads:
a token index, not a slot, so that cutting the source to its length bucket (which moves slots) leaves it true.
"""
from collections.abc import Sequence

import numpy as np

from interlingua_jax.bridges.kv_fusion.alignment import token_alignment
from interlingua_jax.data.pipeline import PaddedPart, PromptBuilder, answer_ids, token_ids
from interlingua_jax.data.records import Example

PARTS = {
    "source": PaddedPart("source_mask", ("source_ids", "source_mask"), left=True),
    "prefix": PaddedPart("prefix_mask", ("prefix_ids", "prefix_mask", "alignment"), left=True),
    "chunk": PaddedPart("chunk_mask", ("chunk_ids", "chunk_mask", "labels", "loss_mask"), left=False),
}


def tokens_with_spans(builder: PromptBuilder, tokenizer, text: str) -> tuple[list[int], np.ndarray]:
  """What a model reads for `text` (`PromptBuilder.ids`: exactly one BOS) and each token's character span.

  The BOS gets the empty span (0, 0). Needs a fast tokenizer (offsets) and no chat template (the two models
  must read one text for their tokens to be aligned by it; `KVFusionKind.check` refuses the template).
  """
  encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
  ids, spans = list(encoded["input_ids"]), [tuple(s) for s in encoded["offset_mapping"]]
  full = builder.ids(tokenizer, text)
  if full[len(full) - len(ids):] != ids:
    raise ValueError("the prompt's tokens differ from its offsets' tokens: KV fusion needs data.chat_template=False.")
  spans = [(0, 0)] * (len(full) - len(ids)) + spans
  return full, np.asarray(spans, np.int64).reshape(-1, 2)


def prompt_alignment(builder: PromptBuilder, source_tokenizer, target_tokenizer,
                     text: str) -> tuple[list[int], list[int], np.ndarray]:
  """(source ids, target ids, the source token each target token reads) of one prompt."""
  source, source_spans = tokens_with_spans(builder, source_tokenizer, text)
  target, target_spans = tokens_with_spans(builder, target_tokenizer, text)
  return source, target, token_alignment(source_spans, target_spans)


def _left(values: Sequence[int], width: int, pad: int) -> np.ndarray:
  return np.array([pad] * (width - len(values)) + list(values), np.int32)


def _right(values: Sequence[int], width: int, pad: int) -> np.ndarray:
  return np.array(list(values) + [pad] * (width - len(values)), np.int32)


def encode_pool(examples: Sequence[Example], *, builder: PromptBuilder, target_tokenizer, anchor: str,
                max_answer_len: int) -> list[dict[str, np.ndarray]]:
  """Every example's row, padded to the pool's longest of each part (answers cut at max_answer_len tokens)."""
  source_tokenizer = builder.source_tokenizer
  raw = []
  for e in examples:
    source, target, index = prompt_alignment(builder, source_tokenizer, target_tokenizer, builder.source_prompt(e))
    answer = answer_ids(target_tokenizer, anchor, e.answer)[:max_answer_len]
    raw.append((source, target, index, answer))
  widths = [max(len(r[i]) for r in raw) for i in range(4)]
  rows = []
  for source, target, index, answer in raw:
    chunk = [target[-1], *answer]
    rows.append({
        "source_ids": _left(source, widths[0], source_tokenizer.pad_token_id),
        "source_mask": _left([1] * len(source), widths[0], 0),
        "prefix_ids": _left(target[:-1], widths[1] - 1, target_tokenizer.pad_token_id),
        "prefix_mask": _left([1] * (len(target) - 1), widths[1] - 1, 0),
        "alignment": _left(index[:-1], widths[1] - 1, -1),
        "chunk_ids": _right(chunk, widths[3] + 1, target_tokenizer.pad_token_id),
        "chunk_mask": _right([1] * len(chunk), widths[3] + 1, 0),
        "labels": _right([*answer, target_tokenizer.eos_token_id], widths[3] + 1, target_tokenizer.pad_token_id),
        "loss_mask": _right([1] * len(chunk), widths[3] + 1, 0),
    })
  return rows
