"""Which source layer and which source token each target layer and token reads, for KV fusion.

Host-side numpy only: both maps are fixed before anything is compiled (the layer map by the two depths, the
token map by the two tokenizations of one prompt), so they enter jitted code as constants or plain arrays.
"""
import numpy as np


def _count(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an int; got {value!r}. Pass the model config's num_layers.")
  if value < 1:
    raise ValueError(f"{name} must be >= 1; got {value}. Pass the model config's num_layers.")
  return int(value)


def terminal_layer_map(num_source_layers: int, num_target_layers: int) -> list[int | None]:
  """For each target layer, the source layer fused into it (None: that target layer is left as it is).

  Aligned from the top ("terminal" alignment): the last target layer reads the last source layer, the one
  below it the one below, and so on. Why the top: the deepest layers of both models are the closest to the
  next-token prediction they share, so they are the most alike in what they hold; the lowest layers are the
  most tied to each model's own tokenizer and embeddings. Whichever model is deeper, its extra bottom layers
  are the ones left out, and the fused layers keep the source's final, most processed states.
  """
  num_source_layers = _count("num_source_layers", num_source_layers)
  num_target_layers = _count("num_target_layers", num_target_layers)
  offset = num_source_layers - num_target_layers
  return [t + offset if t + offset >= 0 else None for t in range(num_target_layers)]


def _spans(name: str, offsets) -> np.ndarray:
  """Checks one tokenization's (N, 2) character spans; returns them as int64."""
  spans = np.asarray(offsets)
  if spans.size == 0:
    return np.zeros((0, 2), np.int64)
  if spans.ndim != 2 or spans.shape[1] != 2:
    raise ValueError(f"{name} must be (num_tokens, 2) (start, end) character spans; got shape {spans.shape}. "
                     "Pass the tokenizer's offset_mapping for one sequence.")
  if not np.issubdtype(spans.dtype, np.integer):
    raise ValueError(f"{name} must hold integer character offsets; got dtype {spans.dtype}.")
  spans = spans.astype(np.int64)
  starts, ends = spans[:, 0], spans[:, 1]
  if (starts < 0).any():
    i = int(np.argmax(starts < 0))
    raise ValueError(f"{name}[{i}] = {tuple(spans[i])} starts before the text; offsets must be >= 0.")
  if (ends < starts).any():
    i = int(np.argmax(ends < starts))
    raise ValueError(f"{name}[{i}] = {tuple(spans[i])} ends before it starts; each span must be (start, end), "
                     "start <= end.")
  unsorted = (np.diff(starts) < 0) | (np.diff(ends) < 0)
  if unsorted.any():
    i = int(np.argmax(unsorted)) + 1
    raise ValueError(f"{name} is not in text order: {name}[{i}] = {tuple(spans[i])} comes after "
                     f"{tuple(spans[i - 1])}. HF tokenizers give (0, 0) to every special token; give a special "
                     "token after the text its real place, e.g. (len(text), len(text)).")
  return spans


def token_alignment(source_offsets, target_offsets) -> np.ndarray:
  """For each target token, the index of the source token it reads; -1 where there is none.

  Both arguments are (N, 2) character spans (start, end) of the same text, one row per token, as an HF fast
  tokenizer's `return_offsets_mapping=True` gives them, in text order. A target token reads the last source
  token whose span overlaps its own: the source token that has seen all of the target token's text, or as
  much of it as any source token has, under causal attention. A target token that overlaps none (an empty span
  such as BOS, or a gap the source tokenizer left out, like a whitespace it dropped) reads the nearest
  preceding source token, the last one that ends at or before its start (an empty source span at the same
  place counts, so BOS reads BOS); -1 if the source has none (e.g. it has no BOS).

  Returns int32 (T,). Memory is O(S * T) booleans, fine for prompts.
  """
  source = _spans("source_offsets", source_offsets)
  target = _spans("target_offsets", target_offsets)
  s_start, s_end = source[None, :, 0], source[None, :, 1]
  t_start, t_end = target[:, None, 0], target[:, None, 1]
  overlaps = np.maximum(s_start, t_start) < np.minimum(s_end, t_end)  # (T, S); empty spans overlap nothing
  before = s_end <= t_start
  positions = np.arange(source.shape[0])
  last_overlap = np.where(overlaps, positions, -1).max(axis=1, initial=-1)
  last_before = np.where(before, positions, -1).max(axis=1, initial=-1)
  return np.where(overlaps.any(axis=1), last_overlap, last_before).astype(np.int32)


def gather_positions(x, index):
  """Rows of a (B, S, ...) array picked by a source-token index; -1 picks nothing.

  x: (B, S, ...) numpy or JAX array (e.g. one layer of the source cache, `cache.k[l]`); it stays in its own
  array library, so this also runs inside jit. index: host int array, (T,) shared by the batch or (B, T) per row
  (rows of a batch are different prompts, so they may align differently), values in [-1, S). For a left-padded
  source cache, add each row's padding to its non-negative entries first.

  Returns (gathered (B, T, ...) with zeros where index is -1, valid (B, T) bool numpy: a source token was there).
  """
  index = np.asarray(index)
  if not np.issubdtype(index.dtype, np.integer):
    raise ValueError(f"index must be integer source positions; got dtype {index.dtype}. "
                     "Pass token_alignment's result.")
  if x.ndim < 2:
    raise ValueError(f"x must be (B, S, ...); got shape {tuple(x.shape)}.")
  batch, length = x.shape[0], x.shape[1]
  if index.ndim == 1:
    index = np.broadcast_to(index, (batch, index.shape[0]))
  if index.ndim != 2 or index.shape[0] != batch:
    raise ValueError(f"index must be (T,) or (B={batch}, T); got shape {index.shape}.")
  if index.size and (index.min() < -1 or index.max() >= length):
    raise ValueError(f"index holds {int(index.min())}..{int(index.max())}, outside [-1, {length}) "
                     f"for a source of {length} positions.")
  valid = index >= 0
  rows = x[np.arange(batch)[:, None], np.where(valid, index, 0)]  # (B, T, ...)
  xp = x.__array_namespace__() if hasattr(x, "__array_namespace__") else np
  mask = valid.reshape(valid.shape + (1,) * (x.ndim - 2))
  return xp.where(mask, rows, xp.zeros((), dtype=rows.dtype)), valid
