"""KV-cache bytes, pinned to Llama-3.1-8B (docs/DESIGN.md §3.15: the first implementation ignored GQA)."""
import dataclasses

import numpy as np
import pytest

from interlingua_jax import models
from interlingua_jax.core import costs


@dataclasses.dataclass(frozen=True)
class _Shape:
  num_layers: int
  num_kv_heads: int
  head_dim: int
  num_heads: int = 32


LLAMA_31_8B = _Shape(num_layers=32, num_kv_heads=8, head_dim=128)


def test_llama_31_8b_per_token():
  """128 KiB per token in bf16; counting the 32 query heads (the old bug) gives 4x that, 0.5 MiB."""
  assert costs.kv_cache_bytes(32, 8, 128, 1) == 131_072
  assert costs.kv_cache_bytes_for(LLAMA_31_8B, 1) == 131_072
  assert costs.kv_cache_bytes_for(LLAMA_31_8B, 1) != costs.kv_cache_bytes(32, LLAMA_31_8B.num_heads, 128, 1)


def test_scales_with_tokens_and_precision():
  assert costs.kv_cache_bytes_for(LLAMA_31_8B, 64) == 64 * 131_072
  assert costs.kv_cache_bytes_for(LLAMA_31_8B, 10, bytes_per_element=4) == 2 * 10 * 131_072
  assert costs.kv_cache_bytes_for(LLAMA_31_8B, 0) == 0
  assert costs.kv_cache_bytes(2, 1, 16, np.int64(5), bytes_per_element=1) == 2 * 2 * 1 * 16 * 5


def test_decoder_config_attributes():
  """Any object with the three attributes works, including the models' DecoderConfig."""
  config = models.DecoderConfig.from_hf({
      "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
      "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072,
      "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": False})
  assert costs.kv_cache_bytes_for(config, 1) == 131_072


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(num_tokens=-1), ValueError, "num_tokens must be >= 0"),
    (dict(num_kv_heads=0), ValueError, "num_kv_heads must be >= 1"),
    (dict(num_tokens=1.5), TypeError, "num_tokens must be an integer, got 1.5"),
    (dict(bytes_per_element="2"), TypeError, "bytes_per_element must be an integer"),
])
def test_bad_input(kwargs, error, message):
  args = dict(num_layers=32, num_kv_heads=8, head_dim=128, num_tokens=1) | kwargs
  with pytest.raises(error, match=message):
    costs.kv_cache_bytes(**args)
