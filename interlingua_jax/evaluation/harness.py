"""Evaluation harness: every registered method (`methods`) on exactly the same questions, per-sample records.

Every method is scored from its generated text alone (prompt stripped), with the strict
extractor of its dataset and the gold of the test record itself (docs/DESIGN.md §3.2, §3.3, §3.11).
What every method needs travels in one immutable `Context` (context.py), passed explicitly.
Records are appended to `eval/samples.jsonl` as they are produced; a rerun skips the
(id, method) pairs already there, so a crash loses nothing that was written.

Latency: the first batch of each shape is run once untimed (compilation, reported as the
record's `warmup_s`) and then timed, so a method's latency does not depend on whether its
program happened to be compiled earlier in the process.
"""
import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax.core import costs, outputs
from interlingua_jax.data import layout, pipeline, scoring
from interlingua_jax.data.records import Example
from interlingua_jax.evaluation import methods
from interlingua_jax.evaluation.context import Context
from interlingua_jax.models import generate
from interlingua_jax.models.generate import to_host as _to_host


bucket = pipeline.bucket  # beyond the largest bucket, doubling it: text_relay's long prompts compile a few times


def stop_at(text: str, stop_strings: Sequence[str]) -> str:
  """The prediction up to the first stop string (e.g. the model starting a new "\\nQ:")."""
  cut = min((i for i in (text.find(s) for s in stop_strings if s) if i >= 0), default=len(text))
  return text[:cut]


def decode_text(tokenizer, tokens: np.ndarray, length: int) -> str:
  return tokenizer.decode(list(tokens[:length]), skip_special_tokens=True)


def stop_predicate(tokenizer, stop_strings: Sequence[str]) -> Callable[[np.ndarray], np.ndarray] | None:
  """For `generate(stop=...)`: which rows' text so far holds a stop string. It judges the very text
  `sample_record` cuts, so stopping during decoding leaves every prediction as it was."""
  if not any(stop_strings):
    return None
  return lambda tokens: np.array([stop_at(text := decode_text(tokenizer, t, len(t)), stop_strings) != text
                                  for t in tokens], bool)


def _batches(items: Sequence, size: int):
  for i in range(0, len(items), size):
    yield items[i:i + size]


def _pad_rows(rows: list, size: int) -> list:
  """A full batch (static shape): the last row repeated; the copies' outputs are discarded."""
  return rows + [rows[-1]] * (size - len(rows))


def peak_memory() -> int | None:
  stats_ = jax.local_devices()[0].memory_stats()
  return None if not stats_ else int(stats_.get("peak_bytes_in_use", 0)) or None


# --------------------------------------------------------------------------------------------------
# Inputs of each method


@dataclasses.dataclass(frozen=True)
class Prepared:
  """One method's input for one question."""
  example: Example
  method: methods.Method
  ids: list[int]  # the answering model's text input (for soft-token methods: the target's row after the soft)
  source_ids: list[int] | None = None  # bridge methods: what the bridge reads (`SoftSource.ids`, `CacheSource.ids`)
  answer: str | None = None  # model-free methods: the prediction itself
  read: Example | None = None  # bridge methods: the question the bridge reads


def questions(examples: Sequence[Example], seed: int, relayed: dict[str, str] | None = None) -> list[methods.Question]:
  """Each example with its donor (a seeded derangement of `examples`) and the prediction it relays, if any."""
  donors = [examples[i] for i in methods.derangement(len(examples), seed)] if len(examples) > 1 else [None]
  return [methods.Question(e, d, (relayed or {}).get(e.id)) for e, d in zip(examples, donors)]


def prepare(ctx: Context, method: methods.Method | str, q: methods.Question) -> Prepared:
  method = methods.get(method) if isinstance(method, str) else method
  if method.model is None:
    return Prepared(q.example, method, [], answer=method.answer(ctx, q))
  if method.soft_from is None:
    return Prepared(q.example, method, method.ids(ctx, q))
  if ctx.bridge is None:
    raise ValueError(f"method {method.name} reads the bridge, but no trained bridge was given.")
  if method.variant and ctx.cache_source is None:
    raise ValueError(f"method {method.name} is a variant ({method.variant!r}) of a cache bridge; this run's bridge "
                     "sends soft tokens: drop it from eval.methods.")
  read = method.soft_from(q)
  ids = ctx.cache_source.target_ids(q.example) if ctx.cache_source is not None else method.ids(ctx, q)
  return Prepared(q.example, method, ids, ctx.bridge.ids(read), read=read)


# --------------------------------------------------------------------------------------------------
# Batched generation: the one place evaluation calls `generate`


def left_pad(rows: list[list[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  ids = np.full((len(rows), length), pad_id, np.int32)
  mask = np.zeros((len(rows), length), np.int32)
  for i, r in enumerate(rows):
    ids[i, length - len(r):] = r
    mask[i, length - len(r):] = 1
  return ids, mask


def on_mesh(mesh: Mesh, *arrays):
  """Batch rows over "data" on one host. With several processes every process decodes the whole
  (replicated) batch, so every process reads the same generated tokens and computes the same score."""
  split = jax.process_count() == 1 and arrays[0].shape[0] % mesh.shape["data"] == 0
  sharding = NamedSharding(mesh, P("data") if split else P())
  return [jax.device_put(a, sharding) for a in arrays]


def _model(ctx: Context, name: str):
  f = ctx.frozen
  return (f.source, f.source_tokenizer) if name == "source" else (f.target, f.target_tokenizer)


def shape_key(ctx: Context, batch: list[Prepared]) -> tuple:
  """What decides the compiled program of a batch: the model and the bucketed lengths."""
  d = ctx.decoding
  src = bucket(max(len(r.source_ids) for r in batch), d.length_buckets) if batch[0].source_ids else 0
  return batch[0].method.model, src, bucket(max(len(r.ids) for r in batch), d.length_buckets), d.batch_size


def generate_batch(ctx: Context, batch: list[Prepared]) -> tuple[list[tuple[np.ndarray, int, float]], float]:
  """Generates for one (padded) batch; returns per-row (tokens, length, summed log-probability) and the wall
  time in seconds."""
  n = len(batch)
  rows = _pad_rows(batch, ctx.decoding.batch_size)
  lm, tok = _model(ctx, rows[0].method.model)
  d = ctx.decoding
  kwargs = dict(max_new_tokens=d.max_new_tokens, eos_token_id=ctx.frozen.stop_ids(rows[0].method.model),
                pad_token_id=tok.pad_token_id, repetition_penalty=d.repetition_penalty,
                no_repeat_ngram_size=d.no_repeat_ngram_size, stop=stop_predicate(tok, d.stop_strings))
  start = time.perf_counter()
  if rows[0].source_ids is None or ctx.cache_source is not None:
    ids, mask = left_pad([r.ids for r in rows], bucket(max(len(r.ids) for r in rows), d.length_buckets),
                          tok.pad_token_id)
    if rows[0].source_ids is not None:  # a cache bridge: the target's own prompt, its cache rewritten
      kwargs["cache_transform"] = ctx.cache_source.transform([r.read for r in rows], ids, mask, rows[0].method.variant,
                                                             ctx.soft_transform)
    ids, mask = on_mesh(ctx.mesh, ids, mask)
    out = generate(lm, input_ids=ids, attention_mask=mask, **kwargs)
  else:
    inputs, mask = soft_inputs(ctx, rows)
    out = generate(lm, inputs_embeds=inputs, attention_mask=mask, **kwargs)
  tokens, lengths, logprob = _to_host(out.tokens), _to_host(out.lengths), _to_host(out.logprob)
  seconds = time.perf_counter() - start
  return [(tokens[i], int(lengths[i]), float(logprob[i])) for i in range(n)], seconds


def soft_inputs(ctx: Context, rows: list[Prepared]):
  """The bridge's soft tokens of the rows' inputs → the target's left-padded input embeddings and mask."""
  tgt_tok = ctx.frozen.target_tokenizer
  soft = ctx.soft_source.soft([r.source_ids for r in rows])
  if ctx.soft_transform is not None:
    soft = jnp.asarray(np.stack([ctx.soft_transform(s) for s in _to_host(soft)]))
  row = layout.bridged_batch([r.ids for r in rows], None, num_soft_tokens=ctx.num_soft_tokens, seq_len=None,
                             bos_id=tgt_tok.bos_token_id, pad_id=tgt_tok.pad_token_id)
  token_ids, soft_index, mask = on_mesh(ctx.mesh, row.token_ids, row.soft_index, row.attention_mask)
  inputs = _place(ctx.frozen.target.params, ctx.frozen.target.config, soft, token_ids, soft_index)
  return inputs, mask


_place = jax.jit(layout.target_inputs, static_argnames=("config",))


# --------------------------------------------------------------------------------------------------
# Records


def sample_record(ctx: Context, p: Prepared, prediction: str, generated: int, latency_s: float,
                  warmup_s: float = 0.0, logprob: float | None = None) -> dict:
  """One question's record. mean_logprob: the answering model's mean log-probability per generated token
  (None for a method without a model), the confidence a router reads."""
  scored = p.method.score(p.example, prediction) if p.method.score else scoring.score(ctx.dataset, prediction,
                                                                                        p.example.golds)
  soft = ctx.num_soft_tokens if p.source_ids is not None and ctx.cache_source is None else 0
  model = p.method.model
  kv_bytes = 0
  if model is not None:
    lm, tok = _model(ctx, model)
    held = soft + len(p.ids) + (1 if soft and tok.bos_token_id is not None else 0) + generated
    kv_bytes = costs.kv_cache_bytes_for(lm.config, held, jnp.dtype(lm.params["embed"].dtype).itemsize)
  return {
      "id": p.example.id, "method": p.method.name,
      "source_prompt_tokens": len(p.source_ids) if p.source_ids else (len(p.ids) if model == "source" else 0),
      "target_prompt_tokens": len(p.ids) if model == "target" else 0,
      "soft_tokens": soft, "generated_tokens": generated, "prediction": prediction,
      "mean_logprob": logprob / generated if logprob is not None and generated else None,
      "extracted": scored["extracted"], "gold": scored.get("gold", p.example.gold), "cluster": p.example.cluster,
      "correct": bool(scored["correct"]),
      **({"em": scored["em"], "f1": scored["f1"]} if "em" in scored else {}),
      "latency_s": latency_s, "warmup_s": warmup_s, "kv_model": model, "kv_cache_bytes": kv_bytes,
      "peak_memory_bytes": peak_memory() if model else None, **dict(ctx.labels),
  }


def _answer(ctx: Context, batch: list[Prepared], warm: set) -> list[dict]:
  """The records of one batch; a batch of a shape not seen yet is first run once, untimed."""
  if batch[0].method.model is None:
    return [sample_record(ctx, p, p.answer, 0, 0.0) for p in batch]
  warmup_s = 0.0
  key = shape_key(ctx, batch)
  if ctx.warm_up and key not in warm:
    warmup_s = generate_batch(ctx, batch)[1]
    warm.add(key)
  outputs_, seconds = generate_batch(ctx, batch)
  tok = _model(ctx, batch[0].method.model)[1]
  return [sample_record(ctx, p, stop_at(decode_text(tok, t, n), ctx.decoding.stop_strings), n,
                        seconds / len(batch), warmup_s if i == 0 else 0.0, logprob)
          for i, (p, (t, n, logprob)) in enumerate(zip(batch, outputs_))]


def with_dependencies(names: Sequence[str]) -> list[methods.Method]:
  """The methods asked for, each after the method it reads (text_relay after source_alone)."""
  ordered: list[methods.Method] = []
  def add(name: str) -> None:
    method = methods.get(name)
    if method.reads:
      add(method.reads)
    if method not in ordered:
      ordered.append(method)
  for name in names:
    add(name)
  return ordered


def run_methods(ctx: Context, names: Sequence[str], examples: Sequence[Example], samples_path: str | None,
                progress: bool = True) -> list[dict]:
  """Runs each method over `examples`, appending records as batches finish; returns all records."""
  from tqdm import tqdm
  chosen = with_dependencies(names)
  soft = [m.name for m in chosen if m.soft_from is not None]
  if soft and ctx.bridge is None:
    raise ValueError(f"method(s) {', '.join(soft)} need a trained bridge: no checkpoint was given.")
  done = outputs.read_jsonl(samples_path) if samples_path else []
  if samples_path:
    os.makedirs(os.path.dirname(samples_path), exist_ok=True)
    with open(samples_path, "w") as f:  # rewrite without any torn line, then append
      f.writelines(json.dumps(r) + "\n" for r in done)
  seen = {(r["id"], r["method"]) for r in done}
  records = list(done)
  warm: set = set()
  for method in chosen:
    relayed = {r["id"]: r["prediction"] for r in records if r["method"] == method.reads}
    todo = [q for q in questions(examples, ctx.control_seed, relayed) if (q.example.id, method.name) not in seen]
    prepared = [prepare(ctx, method, q) for q in todo]
    bar = tqdm(total=len(prepared), desc=method.name, disable=not progress or jax.process_index() != 0,
               dynamic_ncols=True)
    for batch in _batches(prepared, ctx.decoding.batch_size):
      new = _answer(ctx, batch, warm)
      if samples_path and jax.process_index() == 0:
        with open(samples_path, "a") as f:
          f.writelines(json.dumps(r) + "\n" for r in new)
      records += new
      bar.update(len(batch))
    bar.close()
  return records
