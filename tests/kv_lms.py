"""The two tiny random LMs of the KV-fusion tests, of different families and cache shapes, and their prompts."""
import jax
import jax.numpy as jnp
import numpy as np

from interlingua_jax.models import CausalLM, DecoderConfig, init_params


def scaled_lm(config: DecoderConfig, seed: int) -> CausalLM:
  """Random weights at std 0.1 (norms at 1): logits spread over a few units, so greedy choices are decisive."""
  params = jax.tree.map(np.asarray, init_params(config, jax.random.key(seed)))  # scaled in numpy: eager jnp ops
  return CausalLM(config, jax.tree.map(lambda x: jnp.asarray(x if (x == 1).all() else 5 * x), params))  # compile


def target_and_source() -> tuple[CausalLM, CausalLM]:
  """A llama-type target (3 layers, 2 KV heads x 8) and a qwen2-type source (2 layers, 3 KV heads x 16)."""
  target = scaled_lm(DecoderConfig(model_type="llama", vocab_size=64, hidden_size=32, intermediate_size=64,
                                   num_layers=3, num_heads=4, num_kv_heads=2, head_dim=8), 0)
  source = scaled_lm(DecoderConfig(model_type="qwen2", vocab_size=80, hidden_size=48, intermediate_size=96,
                                   num_layers=2, num_heads=6, num_kv_heads=3, head_dim=16, rope_theta=1e6), 1)
  return target, source


def left_padded(vocab: int, length: int, pads, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Random ids (B, length) with row b's first pads[b] slots padding (id 0, mask 0)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(3, vocab, (len(pads), length)).astype(np.int32)
  mask = np.ones_like(ids)
  for row, p in enumerate(pads):
    ids[row, :p], mask[row, :p] = 0, 0
  return ids, mask
