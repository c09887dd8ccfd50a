"""Model FLOPs and decode bytes: the arithmetic behind the benchmarks' MFU and HBM-bound figures.

Definitions (the ones the GPU targets are stated in), with N = weights that take part in matmuls
(the embedding lookup reads one row and does not count; an untied or tied head does):
  source forward                       2 · N_source    per source token (frozen, no head)
  target forward + backward to inputs  4 · N_target    per target token (no weight gradients)
  bridge forward + backward            6 · N_bridge    per soft token
Attention scores (QKᵀ, PV) and remat recomputation are not model FLOPs here; `forward_flops` adds
the scores for a plain forward, where they are part of the work being timed.

A decode step is bound by memory, not compute: it reads every weight once and each row's KV cache,
so no implementation beats (weight bytes + KV bytes) ÷ copy bandwidth per step.

Only a config's shape attributes are read (vocab_size, hidden_size, intermediate_size, num_layers,
num_heads, num_kv_heads, head_dim), so any object with them will do.
"""
from interlingua_jax.core import costs
from interlingua_jax.models import DecoderConfig


def layer_matmul_params(config: DecoderConfig) -> int:
  """Matmul weights of one decoder layer: q, k, v, o projections and the gated MLP's three matrices."""
  c = config
  attention = c.hidden_size * c.head_dim * (2 * c.num_heads + 2 * c.num_kv_heads)
  return attention + 3 * c.hidden_size * c.intermediate_size


def head_params(config: DecoderConfig) -> int:
  return config.hidden_size * config.vocab_size


def matmul_params(config: DecoderConfig, num_layers: int | None = None, *, head: bool = True) -> int:
  """Matmul weights a token passes through: the first `num_layers` layers (all by default), plus the head."""
  layers = config.num_layers if num_layers is None else num_layers
  if not 0 <= layers <= config.num_layers:
    raise ValueError(f"num_layers={layers} is outside [0, {config.num_layers}].")
  return layers * layer_matmul_params(config) + (head_params(config) if head else 0)


def forward_flops(config: DecoderConfig, batch: int, seq: int) -> int:
  """A full causal forward with logits: 2·N per token plus QKᵀ and PV over the whole S × S score matrix
  (what a dense attention computes, masked half included)."""
  scores = 4 * config.num_layers * batch * seq * seq * config.num_heads * config.head_dim
  return 2 * matmul_params(config) * batch * seq + scores


def train_step_flops(*, source: DecoderConfig, source_layers: int, target: DecoderConfig, bridge_params: int,
                     batch: int, source_len: int, target_len: int, answer_window: int,
                     num_soft_tokens: int) -> dict[str, int]:
  """Model FLOPs of one bridge train step, by part (sum them for the total).

  The source runs its first `source_layers` layers and no head; the target's layers see the whole row,
  its head only the answer window (logits are computed there only).
  """
  return {
      "source forward": 2 * matmul_params(source, source_layers, head=False) * batch * source_len,
      "target forward + input backward": 4 * matmul_params(target, head=False) * batch * target_len,
      "target head (answer window)": 4 * head_params(target) * batch * answer_window,
      "bridge forward + backward": 6 * bridge_params * batch * num_soft_tokens,
  }


def weight_bytes(config: DecoderConfig, bytes_per_element: int = 2) -> int:
  """Bytes of weights one decode step reads: every matmul weight and the RMSNorm scales (2 per layer + final)."""
  norms = (2 * config.num_layers + 1) * config.hidden_size
  return (matmul_params(config) + norms) * bytes_per_element


def decode_step_bytes(config: DecoderConfig, *, batch: int, context_len: int, bytes_per_element: int = 2) -> int:
  """HBM bytes one greedy decode step must read: the weights once, and each row's KV cache of `context_len`."""
  return weight_bytes(config, bytes_per_element) + batch * costs.kv_cache_bytes_for(
      config, context_len, bytes_per_element)


def decode_bound_tokens_per_s(step_bytes: int, bandwidth: float, batch: int) -> float:
  """Generated tokens per second no decoder can exceed: `batch` tokens per step of `step_bytes` at `bandwidth`."""
  if not bandwidth > 0:
    raise ValueError(f"bandwidth must be positive bytes/s, got {bandwidth}.")
  return batch * bandwidth / step_bytes
