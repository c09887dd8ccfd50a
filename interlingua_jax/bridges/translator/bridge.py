"""The bridged system: frozen source LM → trainable translator → frozen target LM.

The two LLMs are frozen parameter pytrees read by the pure functions of `models`; the
translator is the only NNX module and the only thing an optimizer ever sees. This module
holds the pieces training and evaluation share, so the soft tokens a checkpoint is scored
with are computed exactly as they were trained.
"""
import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from interlingua_jax.data import layout
from interlingua_jax.models import CausalLM, DecoderConfig, embed, forward
from interlingua_jax.bridges.translator.module import Translator
from interlingua_jax.nn.blocks import embedding_rms


@dataclasses.dataclass
class Frozen:
  """The two frozen LLMs and their tokenizers. Nothing here is ever updated.

  Tokenizers are checked before any weight is read (`preflight`); stop ids are every id that ends
  a model's generation (`models.loading.stop_token_ids`), the tokenizer's EOS when not given.
  """
  source: CausalLM
  source_tokenizer: object
  target: CausalLM
  target_tokenizer: object
  source_layer: int  # HF hidden-state index in [0, num_layers]
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


def target_inputs(params, config: DecoderConfig, soft: jax.Array, token_ids: jax.Array,
                  soft_index: jax.Array) -> jax.Array:
  """The target's input embeddings: its own token embeddings with the soft tokens placed in their slots."""
  return layout.place_soft_tokens(embed(params, config, token_ids), soft, soft_index)


def make_translator(*, frozen: Frozen, num_soft_tokens: int, bottleneck: int, depth: int, num_heads: int,
                    dropout: float, calibrate_rms: bool, seed: int, reads_source: bool = True) -> Translator:
  """A fresh translator sized for the two frozen models, calibrated to the target's embedding RMS."""
  rms = embedding_rms(frozen.target.params["embed"]) if calibrate_rms else None
  return Translator(source_dim=frozen.source.config.hidden_size, target_dim=frozen.target.config.hidden_size,
                    num_soft_tokens=num_soft_tokens, bottleneck=bottleneck, depth=depth, num_heads=num_heads,
                    dropout=dropout, target_embed_rms=rms, rngs=nnx.Rngs(params=seed, dropout=seed + 1),
                    reads_source=reads_source)


# --- the translator's dropout RNG, in one place ----------------------------------------------------
# NNX keeps the dropout stream inside the module, as two variables: `key`, a typed PRNG key array
# (dtype key<fry>), and `count`, a uint32 counter bumped by every draw. The stream is training state
# (a resumed run must draw the same masks), but typed keys do not serialise with Orbax. So outside the
# module the stream lives as raw key data (uint32[2]) in `TrainState.rngs`:
#   split_translator   module -> (graphdef, params, rngs as key data)       at init
#   merge_translator   (graphdef, params, key data) -> module               inside each jitted step
#   translator_rngs    module -> rngs as key data, with the advanced count  returned by the step
# `merge_translator` must build fresh Variables: NNX refuses to update (count += 1) a Variable that
# was created outside the trace being run, and the step's gradient is such a trace.


def split_translator(translator: Translator):
  """graphdef, float32 params, and the dropout RNG state as raw key data (so Orbax can save it)."""
  graphdef, params, rngs = nnx.split(translator, nnx.Param, ...)
  return graphdef, params, jax.tree.map(_key_data, rngs)


def merge_translator(graphdef, params, rngs) -> Translator:
  """Inverse of `split_translator`: the key data wrapped back into typed keys, in fresh Variables."""
  rngs = jax.tree.map(lambda x: x, rngs)
  flat = dict(nnx.to_flat_state(rngs))
  for path, var in flat.items():
    if path[-1] == "key":
      flat[path] = var.replace(jax.random.wrap_key_data(var.get_value()))
  return nnx.merge(graphdef, params, nnx.from_flat_state(flat))


def translator_rngs(translator: Translator) -> nnx.State:
  """The translator's current RNG state in the raw form `split_translator` returns."""
  return jax.tree.map(_key_data, nnx.state(translator, nnx.RngState))


def _key_data(x):
  return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def soft_tokens(graphdef, params, rngs, source_params, source_config: DecoderConfig, ids, mask, layer: int,
                attention_impl: str | None = None):
  """Deterministic soft tokens (B, M, d_tgt) for evaluation, from a split translator."""
  translator = merge_translator(graphdef, params, rngs)
  hidden = source_states(source_params, source_config, ids, mask, layer, attention_impl)
  return translator(hidden, mask, deterministic=True)


soft_tokens_jit = jax.jit(soft_tokens, static_argnames=("graphdef", "source_config", "layer", "attention_impl"))


def count_params(tree) -> int:
  return sum(int(jnp.size(x)) for x in jax.tree.leaves(tree))
