"""Greedy KV-cache decoding for left-padded batches, prompts given as token ids or as embeddings.

Shapes are static: a batch of the same (batch, prompt length, max_new_tokens) bucket reuses the compiled
program. The cache holds prompt + max_new_tokens slots; since prompts are left-padded, every row's last
prompt token sits in the same slot, so one scalar write index serves the whole batch while per-row
positions (cumsum of the mask) keep RoPE independent of the padding.
"""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from interlingua_jax import sharding
from interlingua_jax.models.config import DecoderConfig
from interlingua_jax.models.decoder import (CausalLM, Params, default_positions, input_embeddings, lm_head,
                                            make_attention_mask, rms_norm, run_layers)


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class KVCache:
  k: jax.Array  # (L, B, S, K, head_dim)
  v: jax.Array  # (L, B, S, K, head_dim)
  valid: jax.Array  # (B, S) bool: the slot holds a real token
  next_position: jax.Array  # (B,) int32: position id of the next token of each row
  index: jax.Array  # () int32: the next slot to write


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class GenerateOutput:
  tokens: jax.Array  # (B, max_new_tokens) int32; pad after a row's EOS
  lengths: jax.Array  # (B,) int32: generated tokens per row, EOS included


def init_cache(config: DecoderConfig, batch: int, length: int, dtype) -> KVCache:
  shape = (config.num_layers, batch, length, config.num_kv_heads, config.head_dim)
  return KVCache(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype), valid=jnp.zeros((batch, length), bool),
                 next_position=jnp.zeros((batch,), jnp.int32), index=jnp.zeros((), jnp.int32))


def _last_logits(params: Params, config: DecoderConfig, h: jax.Array) -> jax.Array:
  return lm_head(params, config, rms_norm(h[:, -1], params["final_norm"], config.rms_norm_eps))


def _extend(params, config, cache: KVCache, h, valid, positions, attention_impl):
  """Writes len(h) new slots at cache.index and returns the logits of the last one."""
  steps = h.shape[1]
  valid = jax.lax.dynamic_update_slice_in_dim(cache.valid, valid.astype(bool), cache.index, axis=1)
  mask = make_attention_mask(cache.index + jnp.arange(steps), valid, config.sliding_window)
  h, _, (k, v) = run_layers(params, config, h, positions, mask, num_layers=config.num_layers,
                            attention_impl=attention_impl, collect=False, cache=(cache.k, cache.v),
                            write_index=cache.index)
  cache = KVCache(k=k, v=v, valid=valid, next_position=positions[:, -1] + 1, index=cache.index + steps)
  return _last_logits(params, config, h), cache


@functools.partial(jax.jit, static_argnames=("config", "attention_impl"), donate_argnames=("cache",))
def prefill(params: Params, config: DecoderConfig, cache: KVCache, inputs_embeds: jax.Array,
            attention_mask: jax.Array, attention_impl: str | None = None) -> tuple[jax.Array, KVCache]:
  """Runs a left-padded prompt (as embeddings) into an empty cache; returns its last logits (B, V)."""
  return _extend(params, config, cache, inputs_embeds, attention_mask, default_positions(attention_mask),
                 attention_impl)


@functools.partial(jax.jit, static_argnames=("config", "attention_impl"), donate_argnames=("cache",))
def decode_step(params: Params, config: DecoderConfig, cache: KVCache, token: jax.Array,
                attention_impl: str | None = None) -> tuple[jax.Array, KVCache]:
  """Feeds one token per row (B,); returns the next logits (B, V) and the cache updated in place."""
  h = jnp.take(params["embed"], token[:, None], axis=0)
  return _extend(params, config, cache, h, jnp.ones_like(token[:, None], bool), cache.next_position[:, None],
                 attention_impl)


def _ngram_bans(seq: jax.Array, length: jax.Array, n: int, vocab: int) -> jax.Array:
  """(B, V) tokens that would repeat an n-gram of seq[:, :length] (transformers' NoRepeatNGram rule)."""
  starts = jnp.arange(seq.shape[1] - n + 1)
  match = starts + n - 1 <= length - 1
  for o in range(n - 1):
    current = jax.lax.dynamic_index_in_dim(seq, length - n + 1 + o, axis=1, keepdims=True)
    match &= seq[:, starts + o] == current
  rows = jnp.arange(seq.shape[0])[:, None]
  return jnp.zeros((seq.shape[0], vocab), jnp.int32).at[rows, seq[:, starts + n - 1]].add(match) > 0


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens", "eos_token_id", "pad_token_id",
                                             "repetition_penalty", "no_repeat_ngram_size", "attention_impl"))
def _generate(params, config, input_ids, inputs_embeds, attention_mask, *, max_new_tokens, eos_token_id,
              pad_token_id, repetition_penalty, no_repeat_ngram_size, attention_impl):
  embeds = input_embeddings(params, config, input_ids, inputs_embeds)
  batch, prompt_len = embeds.shape[:2]
  cache = init_cache(config, batch, prompt_len + max_new_tokens, embeds.dtype)
  logits, cache = prefill(params, config, cache, embeds, attention_mask, attention_impl)
  # As in transformers, the token history seen by the logits processors is the prompt ids plus the generated
  # tokens (an embedding prompt contributes no ids); the repetition penalty skips the left padding, the
  # n-gram ban does not.
  history = jnp.zeros((batch, 0), jnp.int32) if input_ids is None else input_ids.astype(jnp.int32)
  first_real = jnp.argmax(attention_mask != 0, axis=1) if input_ids is not None else jnp.zeros((batch,), jnp.int32)
  seq = jnp.concatenate([history, jnp.full((batch, max_new_tokens), pad_token_id, jnp.int32)], axis=1)
  eos = jnp.asarray(eos_token_id, jnp.int32)

  def pick(logits, seq, length, done):
    if repetition_penalty != 1.0:
      slots = jnp.arange(seq.shape[1])[None, :]
      in_history = ((slots >= first_real[:, None]) & (slots < length)).astype(jnp.int32)
      seen = jnp.zeros(logits.shape, jnp.int32).at[jnp.arange(batch)[:, None], seq].add(in_history) > 0
      logits = jnp.where(seen, jnp.where(logits > 0, logits / repetition_penalty, logits * repetition_penalty), logits)
    if no_repeat_ngram_size > 0:
      logits = jnp.where(_ngram_bans(seq, length, no_repeat_ngram_size, logits.shape[-1]), -jnp.inf, logits)
    token = jnp.where(done, pad_token_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
    seq = jax.lax.dynamic_update_index_in_dim(seq, token, length, axis=1)
    return token, seq, done | jnp.isin(token, eos)

  token, seq, done = pick(logits, seq, history.shape[1], jnp.zeros((batch,), bool))

  def cond(state):
    i, _, _, _, done = state
    return (i < max_new_tokens) & ~done.all()

  def body(state):
    i, cache, token, seq, done = state
    logits, cache = decode_step(params, config, cache, token, attention_impl)
    token, seq, done = pick(logits, seq, history.shape[1] + i, done)
    return i + 1, cache, token, seq, done

  _, _, _, seq, _ = jax.lax.while_loop(cond, body, (jnp.int32(1), cache, token, seq, done))
  tokens = seq[:, history.shape[1]:]
  is_eos = jnp.isin(tokens, eos)
  lengths = jnp.where(is_eos.any(axis=1), jnp.argmax(is_eos, axis=1) + 1, max_new_tokens)
  return GenerateOutput(tokens=tokens, lengths=lengths.astype(jnp.int32))


def generate(model: CausalLM, *, input_ids=None, inputs_embeds=None, attention_mask=None, max_new_tokens: int,
             eos_token_id=None, pad_token_id: int | None = None, repetition_penalty: float = 1.0,
             no_repeat_ngram_size: int = 0) -> GenerateOutput:
  """Greedy decoding until every row emitted an EOS or max_new_tokens were generated.

  Prompts are left-padded (attention_mask (B, T), 1 = real) and given as ids (B, T) or embeddings
  (B, T, d), e.g. soft tokens followed by embedded text. eos_token_id (int or several) and pad_token_id
  default to the config's. repetition_penalty and no_repeat_ngram_size follow transformers' semantics;
  both are off by default.
  """
  config = model.config
  prompt = input_ids if input_ids is not None else inputs_embeds
  if prompt is None:
    raise ValueError("generate needs input_ids (B, T) or inputs_embeds (B, T, d).")
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}.")
  if attention_mask is None:
    attention_mask = np.ones(prompt.shape[:2], np.int32)
  mask = np.asarray(attention_mask)
  if mask.shape != tuple(prompt.shape[:2]):
    raise ValueError(f"attention_mask must have shape {tuple(prompt.shape[:2])}; got {mask.shape}.")
  if not mask[:, -1].all():
    raise ValueError("prompts must be left-padded: the last column of attention_mask must be 1 in every row "
                     "(pad on the left, e.g. tokenizer.padding_side = 'left').")
  if repetition_penalty <= 0:
    raise ValueError(f"repetition_penalty must be > 0 (1.0 = off); got {repetition_penalty}.")
  eos = config.eos_token_id if eos_token_id is None else eos_token_id
  eos = tuple(int(e) for e in ((eos,) if isinstance(eos, (int, np.integer)) else eos))
  pad = pad_token_id if pad_token_id is not None else config.pad_token_id
  pad = eos[0] if pad is None else int(pad)
  args = [None if x is None else jnp.asarray(x) for x in (input_ids, inputs_embeds, mask)]
  if model.mesh is not None and prompt.shape[0] % model.mesh.shape["data"] == 0:
    args = [None if x is None else jax.device_put(x, sharding.batch_sharding(model.mesh)) for x in args]
  return _generate(model.params, config, *args, max_new_tokens=int(max_new_tokens), eos_token_id=eos,
                   pad_token_id=pad, repetition_penalty=float(repetition_penalty),
                   no_repeat_ngram_size=int(no_repeat_ngram_size), attention_impl=model.attention_impl)
