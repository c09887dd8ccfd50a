"""Inference costs: the KV cache a decoder holds for a number of tokens.

Grouped-query attention caches keys and values for the *key/value* heads only; the first
implementation counted query heads and reported 0.5 MB per token instead of 128 KiB for
Llama-3.1-8B in bf16 (docs/DESIGN.md §3.15).
"""
import operator
from typing import Protocol


class DecoderShape(Protocol):
  num_layers: int
  num_kv_heads: int
  head_dim: int


def _integer(name: str, value: int, minimum: int) -> int:
  try:
    value = operator.index(value)
  except TypeError:
    raise TypeError(f"{name} must be an integer, got {value!r}") from None
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return value


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, num_tokens: int,
                   bytes_per_element: int = 2) -> int:
  """2 (keys and values) × layers × kv_heads × head_dim × bytes per element × tokens."""
  return (2 * _integer("num_layers", num_layers, 1) * _integer("num_kv_heads", num_kv_heads, 1)
          * _integer("head_dim", head_dim, 1) * _integer("bytes_per_element", bytes_per_element, 1)
          * _integer("num_tokens", num_tokens, 0))


def kv_cache_bytes_for(config: DecoderShape, num_tokens: int, bytes_per_element: int = 2) -> int:
  """`kv_cache_bytes` for any config with `num_layers`, `num_kv_heads` and `head_dim` (e.g. DecoderConfig)."""
  return kv_cache_bytes(config.num_layers, config.num_kv_heads, config.head_dim, num_tokens, bytes_per_element)
