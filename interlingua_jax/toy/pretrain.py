"""Pretraining tiny LMs from scratch, and the toy world's two frozen models.

`pretrain_lm` is a plain next-token trainer over `models.forward` (the decoder every
other stage uses, so the toy models go through exactly the code real checkpoints do).
Each step draws fresh text: on a fixed pool tiny models memorise instead of learning
the task (docs/DESIGN.md §6).

`prepare_toy_models` builds a Mistral-architecture source and a Llama-architecture
target with different tokenizers, pretrains both on toy text and saves them as HF
checkpoint directories, cached (`build_lm`, one LM): a marker holding the settings is written
last, so an interrupted or differently-configured run is never mistaken for a finished one.
"""
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from interlingua_jax import models
from interlingua_jax.toy import task
from interlingua_jax.toy import tokenizer as toy_tokenizer

Text = str | Sequence[tuple[str, bool]]  # a whole text, or (piece, learned) pairs: see `lm_batch`
SampleTexts = Callable[[np.random.Generator, int], list[Text]]
MARKER = "PRETRAINED.json"
_LENGTH_MULTIPLE = 16


def lm_batch(tokenizer, texts: Sequence[Text], config: models.DecoderConfig,
             min_length: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """`<s> text </s>` rows (`text </s>` for a family without BOS, like Qwen), right-padded to at least
  min_length and to a multiple of 16: (input_ids, attention_mask, loss_mask), each (B, S) int32.

  loss_mask marks the tokens the loss predicts. A text given as a string: every real token after the
  first. A text given as (piece, learned) pairs: each piece is tokenised on its own (as a prompt and its
  completion are at generation) and only the tokens of learned pieces, and the EOS, are predicted, so a
  prompt is read, not learned.
  """
  bos = [] if config.bos_token_id is None else [config.bos_token_id]
  rows, masks = [], []
  for text in texts:
    row, targets = list(bos), [0] * len(bos)
    for piece, learned in ([(text, True)] if isinstance(text, str) else text):
      ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
      row += ids
      targets += [int(learned)] * len(ids)
    rows.append(row + [config.eos_token_id[0]])
    masks.append([0] + targets[1:] + [1])  # the first token is never predicted
  length = max(min_length, -(-max(len(r) for r in rows) // _LENGTH_MULTIPLE) * _LENGTH_MULTIPLE)
  ids = np.full((len(rows), length), config.pad_token_id or 0, np.int32)
  mask = np.zeros((len(rows), length), np.int32)
  loss_mask = np.zeros((len(rows), length), np.int32)
  for i, (row, targets) in enumerate(zip(rows, masks)):
    ids[i, :len(row)] = row
    mask[i, :len(row)] = 1
    loss_mask[i, :len(row)] = targets
  return ids, mask, loss_mask


def lm_loss(params, config: models.DecoderConfig, input_ids: jax.Array, attention_mask: jax.Array,
            loss_mask: jax.Array) -> jax.Array:
  """Mean next-token cross-entropy over the tokens of `loss_mask` (EOS included, so models learn to stop),
  float32."""
  logits = models.forward(params, config, input_ids=input_ids, attention_mask=attention_mask,
                          output_hidden_states=False).logits
  ce = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], input_ids[:, 1:])
  weight = loss_mask[:, 1:].astype(jnp.float32)
  return jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def _decay_mask(params):
  # Norm scales are not decayed toward 0 (that would shrink them away from their 1.0 start).
  return jax.tree_util.tree_map_with_path(lambda path, _: "norm" not in jax.tree_util.keystr(path), params)


def pretrain_lm(config: models.DecoderConfig, tokenizer, sample_texts: SampleTexts, *, steps: int,
                batch_size: int, learning_rate: float, seed: int, log_every: int = 100,
                warmup_steps: int | None = None, weight_decay: float = 0.01):
  """Random init, then `steps` AdamW steps (warmup, cosine decay to 10%, clipping at 1.0) on fresh text.

  `sample_texts(rng, n)` returns n texts; BOS (if the config has one) and EOS are added here; a text
  given as pieces limits the loss to its learned pieces (`lm_batch`). Returns float32 params.
  """
  if steps < 1 or batch_size < 1 or learning_rate <= 0:
    raise ValueError(f"need steps >= 1, batch_size >= 1, learning_rate > 0; got {steps}, {batch_size}, "
                     f"{learning_rate}")
  if len(tokenizer) > config.vocab_size:  # JAX clamps out-of-range ids silently: refuse instead
    raise ValueError(f"tokenizer has {len(tokenizer)} tokens but config.vocab_size is {config.vocab_size}")
  if not config.eos_token_id:
    raise ValueError("config needs eos_token_id: texts are trained as <s> text </s> (text </s> without a BOS)")
  warmup = min(100, steps // 10) if warmup_steps is None else warmup_steps
  schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, steps, end_value=0.1 * learning_rate)
  optimizer = optax.chain(
      optax.clip_by_global_norm(1.0),
      optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=weight_decay, mask=_decay_mask))
  params = models.init_params(config, jax.random.PRNGKey(seed), jnp.float32)
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, input_ids, attention_mask, loss_mask):
    loss, grads = jax.value_and_grad(lm_loss)(params, config, input_ids, attention_mask, loss_mask)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  length = 0  # only grows: after the first few batches every batch has one shape, so one compilation
  start = time.perf_counter()
  for step in range(1, steps + 1):
    batch = lm_batch(tokenizer, sample_texts(rng, batch_size), config, length)
    length = batch[0].shape[1]
    params, opt_state, loss = train_step(params, opt_state, *batch)
    if step % log_every == 0 or step == steps:
      elapsed = time.perf_counter() - start
      logging.info("pretrain %s step %d/%d loss %.4f (%.1f s, %.2f steps/s)", config.model_type, step, steps,
                   float(loss), elapsed, step / elapsed)
  return params


@dataclasses.dataclass(frozen=True)
class ToyLMSize:
  """The shape of one toy LM; GQA and an untied head as in the real Mistral/Llama."""
  hidden_size: int = 64
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  intermediate_size: int = 192
  rope_theta: float = 10000.0


def toy_config(model_type: str, vocab_size: int, size: ToyLMSize, *,
               bos_token_id: int | None = toy_tokenizer.BOS_ID, eos_token_id: int = toy_tokenizer.EOS_ID,
               pad_token_id: int = toy_tokenizer.PAD_ID) -> models.DecoderConfig:
  """The toy tokenizers' special ids by default; a Qwen-style tokenizer passes bos_token_id=None and its own."""
  return models.DecoderConfig(
      model_type=model_type, vocab_size=vocab_size, hidden_size=size.hidden_size,
      intermediate_size=size.intermediate_size, num_layers=size.num_layers, num_heads=size.num_heads,
      num_kv_heads=size.num_kv_heads, head_dim=size.hidden_size // size.num_heads, rope_theta=size.rope_theta,
      bos_token_id=bos_token_id, eos_token_id=(eos_token_id,), pad_token_id=pad_token_id, max_position_embeddings=2048)


def _cached(directory: str, settings: dict[str, Any]) -> bool:
  try:
    with open(os.path.join(directory, MARKER)) as f:
      return json.load(f) == settings
  except (OSError, ValueError):
    return False


def build_lm(directory: str, settings: dict[str, Any], *, model_type: str, size: ToyLMSize,
             train_tokenizer: Callable[[list[str], int], Any], vocab_size: int, sample_texts: SampleTexts,
             steps: int, batch_size: int, learning_rate: float, seed: int, tokenizer_seed: int,
             tokenizer_corpus_size: int, log_every: int = 100) -> str:
  """One toy LM pretrained on `sample_texts` and saved with its tokenizer in `directory`, unless the
  directory's marker already records exactly `settings` (anything else is rebuilt from scratch).

  The special ids come from the tokenizer, so a Qwen-style one without BOS gives a BOS-less model.
  """
  if _cached(directory, settings):
    logging.info("toy %s LM: reusing %s", model_type, directory)
    return directory
  shutil.rmtree(directory, ignore_errors=True)
  corpus = sample_texts(np.random.default_rng([tokenizer_seed, 2]), tokenizer_corpus_size)
  tokenizer = train_tokenizer([t if isinstance(t, str) else "".join(p for p, _ in t) for t in corpus], vocab_size)
  config = toy_config(model_type, len(tokenizer), size, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
  start = time.perf_counter()
  params = pretrain_lm(config, tokenizer, sample_texts, steps=steps, batch_size=batch_size,
                       learning_rate=learning_rate, seed=seed, log_every=log_every)
  logging.info("toy %s LM: %d steps in %.1f s", model_type, steps, time.perf_counter() - start)
  models.save_pretrained(directory, config, params, tokenizer)
  with open(os.path.join(directory, MARKER), "w") as f:  # last: a directory without it is unfinished
    json.dump(settings, f, indent=2)
  return directory


def prepare_toy_models(workdir: str, *, seed: int = 0, steps: int = 1500, batch_size: int = 64,
                       learning_rate: float = 3e-3, source_size: ToyLMSize = ToyLMSize(),
                       target_size: ToyLMSize = ToyLMSize(), source_vocab_size: int = 512,
                       target_vocab_size: int = 512, tokenizer_corpus_size: int = 20000,
                       spec: task.TaskSpec = task.TaskSpec(), template: str = task.LM_TEMPLATE,
                       log_every: int = 100, roles: tuple[str, ...] = ("source", "target")) -> tuple[str, str]:
  """`<workdir>/toy_models/{source,target}`: pretrained toy LMs with their tokenizers, built once.

  Each reads `task.pretrain_texts(spec, role)`: the same texts, except in the lookup world.

  A directory is reused only when its marker records exactly these settings; anything else
  (missing, interrupted, different settings) is rebuilt from scratch. `roles` limits which are
  built, so two processes can pretrain the two LMs at once (each reuses the other's when done).
  """
  out = []
  for role, model_type, size, vocab_size, train_tokenizer in (
      ("source", "mistral", source_size, source_vocab_size, toy_tokenizer.train_source_tokenizer),
      ("target", "llama", target_size, target_vocab_size, toy_tokenizer.train_target_tokenizer)):
    directory = os.path.join(workdir, "toy_models", role)
    out.append(directory)
    settings = dict(role=role, model_type=model_type, seed=seed, steps=steps, batch_size=batch_size,
                    learning_rate=learning_rate, size=dataclasses.asdict(size), vocab_size=vocab_size,
                    tokenizer_corpus_size=tokenizer_corpus_size, template=template, task_version=task.VERSION,
                    task=dataclasses.asdict(spec))
    if role in roles:
      build_lm(directory, settings, model_type=model_type, size=size, train_tokenizer=train_tokenizer,
               vocab_size=vocab_size, sample_texts=task.pretrain_texts(spec, role, template), steps=steps,
               batch_size=batch_size, learning_rate=learning_rate, seed=seed + (role == "target"),
               tokenizer_seed=seed, tokenizer_corpus_size=tokenizer_corpus_size, log_every=log_every)
  return out[0], out[1]
