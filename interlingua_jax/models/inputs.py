"""Strict checks of the inputs a run reads: weights, tokenizers, data files. Each names the file.

Without them a bad input surfaces far from its cause: an int32 weight is silently cast to float,
NaN frozen weights or token ids beyond the vocabulary show up as "non-finite training metrics …
lower the learning rate", a missing tokenizer as `'NoneType' object has no attribute …`.
"""
import os

import numpy as np

from interlingua_jax.core.errors import InputError
from interlingua_jax.models.config import CheckpointError

FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")  # safetensors dtype names that hold weights
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
MAX_LINE_BYTES = 1 << 20  # one record; GSM8K's longest is ~1 kB, a HotpotQA context ~10 kB


def check_weight_dtype(file: str, name: str, dtype: str) -> None:
  if dtype not in FLOAT_DTYPES:
    raise CheckpointError(f"{file}: tensor {name!r} is stored as {dtype}, not a float type "
                          f"({', '.join(FLOAT_DTYPES)}); the file is not a model checkpoint or is damaged.")


def check_finite_weights(file: str, name: str, array: np.ndarray) -> None:
  if not np.isfinite(array).all():
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    raise CheckpointError(f"{file}: tensor {name!r} holds {bad} NaN/inf values; frozen weights must be finite "
                          "(re-download or re-convert the checkpoint).")


def check_tokenizer(directory: str, tokenizer, vocab_size: int) -> None:
  """A tokenizer exists, and every id it can produce (and its special ids) is a row of the model's embedding."""
  if tokenizer is None:
    raise InputError(f"{directory}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)}); copy the "
                     "model's tokenizer files into that directory.")
  ids = {"the largest token id": len(tokenizer) - 1}
  for special in ("pad_token_id", "bos_token_id", "eos_token_id"):
    if getattr(tokenizer, special, None) is not None:
      ids[special] = getattr(tokenizer, special)
  for what, i in ids.items():
    if i >= vocab_size:
      raise InputError(f"{directory}: the tokenizer's {what} is {i} but the model's vocabulary has {vocab_size} rows "
                       "(config.json vocab_size); the tokenizer does not belong to these weights.")


def check_data_file(path: str, max_line_bytes: int = MAX_LINE_BYTES) -> None:
  """Refuses a JSON Lines record longer than `max_line_bytes` before anything parses it (a runaway or binary
  file); a `.json` file holding one JSON array is read whole and not checked here."""
  if os.path.splitext(path)[1].lower() not in (".jsonl", ".json") or not os.path.isfile(path):
    return
  with open(path, "rb") as f:
    if path.lower().endswith(".json") and f.read(4096).lstrip().startswith(b"["):
      return
    f.seek(0)
    for line_no, line in enumerate(iter(lambda: f.readline(max_line_bytes + 1), b""), 1):
      if len(line) > max_line_bytes:
        raise InputError(f"dataset file {path!r} line {line_no}: longer than {max_line_bytes:,} bytes; a data file "
                         "holds one JSON record per line.")
