"""The frozen LLMs as a run holds them: what is known of one before its weights are read, the loaded model with
its tokenizer, and the hidden states a bridge reads from a source. Nothing here is ever updated.
"""
import dataclasses

import jax

from interlingua_jax.models.config import DecoderConfig
from interlingua_jax.models.decoder import CausalLM, forward


@dataclasses.dataclass(frozen=True)
class ModelFiles:
  """One frozen LM as far as it is known without its weights (`run.preflight.check_model`)."""
  directory: str
  config: DecoderConfig
  tokenizer: object
  stop_ids: tuple[int, ...]  # every id that ends its generation (`loading.stop_token_ids`)


@dataclasses.dataclass(frozen=True)
class FrozenLM:
  """One loaded frozen LM with its tokenizer and stop ids."""
  lm: CausalLM
  tokenizer: object
  stop_ids: tuple[int, ...]


@dataclasses.dataclass
class Frozen:
  """The LMs one evaluation view reads: the source (None where a bridge reads no source LM) and the target.

  Stop ids are every id that ends a model's generation, the tokenizer's EOS when not given.
  """
  source: CausalLM | None
  source_tokenizer: object
  target: CausalLM
  target_tokenizer: object
  source_layer: int = 0  # HF hidden-state index in [0, num_layers]
  source_stop_ids: tuple[int, ...] = ()
  target_stop_ids: tuple[int, ...] = ()

  def stop_ids(self, model: str) -> tuple[int, ...]:
    """"source" or "target": the ids that end that model's generation."""
    ids, tokenizer = ((self.source_stop_ids, self.source_tokenizer) if model == "source" else
                      (self.target_stop_ids, self.target_tokenizer))
    return ids or (tokenizer.eos_token_id,)


def resolve_layer(layer: int, num_layers: int) -> int:
  """source.layer (HF indexing, negative from the end) as an index in [0, num_layers]."""
  resolved = layer + num_layers + 1 if layer < 0 else layer
  if not 0 <= resolved <= num_layers:
    raise ValueError(f"source.layer={layer} is outside the source's hidden states [-{num_layers + 1}, {num_layers}].")
  return resolved


def source_states(params, config: DecoderConfig, ids: jax.Array, mask: jax.Array, layer: int,
                  attention_impl: str | None = None) -> jax.Array:
  """Hidden states of `layer` (HF index), outside the gradient: the source is frozen and only read."""
  upto = None if layer == config.num_layers else layer
  out = forward(params, config, input_ids=ids, attention_mask=mask, upto_layer=upto, compute_logits=False,
                output_hidden_states=False, attention_impl=attention_impl)
  return jax.lax.stop_gradient(out.hidden_states[-1])
