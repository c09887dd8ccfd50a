"""The translator's soft tokens at evaluation: the frozen source reads the bridge prompt, the translator maps
its hidden states to M soft tokens, deterministically (no dropout), exactly as training computes them."""
import dataclasses

import jax
from jax.sharding import Mesh

from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.evaluation.harness import left_pad, on_mesh
from interlingua_jax.models import DecoderConfig
from interlingua_jax.models.frozen import Frozen, source_states
from interlingua_jax.training.state import merge_module


def soft_tokens(graphdef, params, rest, source_params, source_config: DecoderConfig, ids, mask, layer: int,
                attention_impl: str | None = None):
  """Deterministic soft tokens (B, M, d_tgt) of left-padded source prompts, from a split translator."""
  translator = merge_module(graphdef, params, rest)
  hidden = source_states(source_params, source_config, ids, mask, layer, attention_impl)
  return translator(hidden, mask, deterministic=True)


soft_tokens_jit = jax.jit(soft_tokens, static_argnames=("graphdef", "source_config", "layer", "attention_impl"))


@dataclasses.dataclass(frozen=True)
class TranslatorSource:
  """`SoftSource` of a trained translator: the source's bridge prompt in, its soft tokens out."""
  module: tuple  # (graphdef, params, rest) as `TrainState` holds them
  frozen: Frozen
  builder: pipeline.PromptBuilder
  mesh: Mesh
  length_buckets: tuple[int, ...]  # the source prompts are padded to these (eval.length_buckets)

  def text(self, example: Example) -> str:
    return self.builder.bridge_prompt(example)

  def ids(self, example: Example) -> list[int]:
    return self.builder.ids(self.frozen.source_tokenizer, self.builder.bridge_prompt(example))

  def soft(self, rows: list[list[int]]) -> jax.Array:
    length = pipeline.bucket(max(map(len, rows)), self.length_buckets)
    ids, mask = on_mesh(self.mesh, *left_pad(rows, length, self.frozen.source_tokenizer.pad_token_id))
    graphdef, params, rest = self.module
    source = self.frozen.source
    return soft_tokens_jit(graphdef, params, rest, source.params, source.config, ids, mask, self.frozen.source_layer,
                           source.attention_impl)
