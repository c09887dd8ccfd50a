"""Evaluation harness: every registered method (`methods`) on exactly the same questions, per-sample records.

Every method is scored from its generated text alone (prompt stripped), with the strict
extractor of its dataset and the gold of the test record itself (docs/DESIGN.md §3.2, §3.3, §3.11).
What every method needs travels in one immutable `Context`, passed explicitly; a variant
(another translator, batch size or soft-token transform) is a `dataclasses.replace` of it.
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
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax.bridges.translator import bridge
from interlingua_jax.core import costs, outputs
from interlingua_jax.data import layout, scoring
from interlingua_jax.evaluation import methods
from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.models import generate
from interlingua_jax.models.generate import to_host as _to_host


@dataclasses.dataclass(frozen=True)
class Decoding:
  max_new_tokens: int
  stop_strings: tuple[str, ...]
  batch_size: int
  length_buckets: tuple[int, ...]
  repetition_penalty: float = 1.0
  no_repeat_ngram_size: int = 0


@dataclasses.dataclass(frozen=True)
class Context:
  """What every method needs: the frozen models, the translator (soft-token methods), prompts, decoding."""
  frozen: bridge.Frozen
  builder: pipeline.PromptBuilder
  anchor: str
  num_soft_tokens: int
  decoding: Decoding
  mesh: Mesh
  translator: tuple | None = None  # (graphdef, params, rngs) of the translator being evaluated
  soft_source: "SoftSource | None" = None  # another bridge kind's soft tokens, instead of the translator's
  soft_transform: Callable[[np.ndarray], np.ndarray] | None = None  # e.g. a wire round trip (compression)
  control_seed: int = 0  # the controls' derangement of the questions
  warm_up: bool = True  # run each new batch shape once untimed first (off where latency is not read)
  labels: tuple[tuple[str, str], ...] = ()  # extra (key, value) fields of every record, e.g. ("target", name)
  prior: Mapping[str | None, str] = dataclasses.field(default_factory=dict)  # `methods.prior_answers` of training

  @property
  def dataset(self) -> str:
    return self.builder.dataset


class SoftSource(Protocol):
  """Where a latent bridge kind's soft tokens come from (the translator's when `Context.soft_source` is None)."""

  def ids(self, example: Example) -> list[int]:
    """What the bridge reads for one question (soft-token methods' `Prepared.source_ids`)."""

  def soft(self, rows: list[list[int]]) -> jax.Array:
    """(B, M, d_target) soft tokens of a batch of `ids` rows."""


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


def _peak_memory() -> int | None:
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
  source_ids: list[int] | None = None  # soft-token methods: the source prompt the translator reads
  answer: str | None = None  # model-free methods: the prediction itself


def questions(examples: Sequence[Example], seed: int, relayed: dict[str, str] | None = None) -> list[methods.Question]:
  """Each example with its donor (a seeded derangement of `examples`) and the prediction it relays, if any."""
  donors = [examples[i] for i in methods.derangement(len(examples), seed)] if len(examples) > 1 else [None]
  return [methods.Question(e, d, (relayed or {}).get(e.id)) for e, d in zip(examples, donors)]


def prepare(ctx: Context, method: methods.Method | str, q: methods.Question) -> Prepared:
  method = methods.get(method) if isinstance(method, str) else method
  if method.model is None:
    return Prepared(q.example, method, [], answer=method.answer(ctx, q))
  source_ids = None
  if method.soft_from is not None and ctx.soft_source is not None:
    source_ids = ctx.soft_source.ids(method.soft_from(q))
  elif method.soft_from is not None:
    tok = ctx.frozen.source_tokenizer
    source_ids = ctx.builder.ids(tok, ctx.builder.bridge_prompt(method.soft_from(q)))
  return Prepared(q.example, method, method.ids(ctx, q), source_ids)


# --------------------------------------------------------------------------------------------------
# Batched generation: the one place evaluation calls `generate`


def _left_pad(rows: list[list[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  ids = np.full((len(rows), length), pad_id, np.int32)
  mask = np.zeros((len(rows), length), np.int32)
  for i, r in enumerate(rows):
    ids[i, length - len(r):] = r
    mask[i, length - len(r):] = 1
  return ids, mask


def _on_mesh(ctx: Context, *arrays):
  """Batch rows over "data" on one host. With several processes every process decodes the whole
  (replicated) batch, so every process reads the same generated tokens and computes the same score."""
  split = jax.process_count() == 1 and arrays[0].shape[0] % ctx.mesh.shape["data"] == 0
  sharding = NamedSharding(ctx.mesh, P("data") if split else P())
  return [jax.device_put(a, sharding) for a in arrays]


def _model(ctx: Context, name: str):
  f = ctx.frozen
  return (f.source, f.source_tokenizer) if name == "source" else (f.target, f.target_tokenizer)


def shape_key(ctx: Context, batch: list[Prepared]) -> tuple:
  """What decides the compiled program of a batch: the model and the bucketed lengths."""
  d = ctx.decoding
  src = bucket(max(len(r.source_ids) for r in batch), d.length_buckets) if batch[0].source_ids else 0
  return batch[0].method.model, src, bucket(max(len(r.ids) for r in batch), d.length_buckets), d.batch_size


def generate_batch(ctx: Context, batch: list[Prepared]) -> tuple[list[tuple[np.ndarray, int]], float]:
  """Generates for one (padded) batch; returns per-row (tokens, length) and the wall time in seconds."""
  n = len(batch)
  rows = _pad_rows(batch, ctx.decoding.batch_size)
  lm, tok = _model(ctx, rows[0].method.model)
  d = ctx.decoding
  kwargs = dict(max_new_tokens=d.max_new_tokens, eos_token_id=ctx.frozen.stop_ids(rows[0].method.model),
                pad_token_id=tok.pad_token_id, repetition_penalty=d.repetition_penalty,
                no_repeat_ngram_size=d.no_repeat_ngram_size, stop=stop_predicate(tok, d.stop_strings))
  start = time.perf_counter()
  if rows[0].source_ids is None:
    ids, mask = _left_pad([r.ids for r in rows], bucket(max(len(r.ids) for r in rows), d.length_buckets),
                          tok.pad_token_id)
    ids, mask = _on_mesh(ctx, ids, mask)
    out = generate(lm, input_ids=ids, attention_mask=mask, **kwargs)
  else:
    inputs, mask = soft_inputs(ctx, rows)
    out = generate(lm, inputs_embeds=inputs, attention_mask=mask, **kwargs)
  tokens, lengths = _to_host(out.tokens), _to_host(out.lengths)
  seconds = time.perf_counter() - start
  return [(tokens[i], int(lengths[i])) for i in range(n)], seconds


def soft_inputs(ctx: Context, rows: list[Prepared]):
  """Soft tokens from the source prompts → the target's left-padded input embeddings and mask."""
  tgt_tok = ctx.frozen.target_tokenizer
  soft = ctx.soft_source.soft([r.source_ids for r in rows]) if ctx.soft_source else translator_soft(ctx, rows)
  if ctx.soft_transform is not None:
    soft = jnp.asarray(np.stack([ctx.soft_transform(s) for s in _to_host(soft)]))
  row = layout.bridged_batch([r.ids for r in rows], None, num_soft_tokens=ctx.num_soft_tokens, seq_len=None,
                             bos_id=tgt_tok.bos_token_id, pad_id=tgt_tok.pad_token_id)
  token_ids, soft_index, mask = _on_mesh(ctx, row.token_ids, row.soft_index, row.attention_mask)
  inputs = _place(ctx.frozen.target.params, ctx.frozen.target.config, soft, token_ids, soft_index)
  return inputs, mask


def translator_soft(ctx: Context, rows: list[Prepared]) -> jax.Array:
  src_tok = ctx.frozen.source_tokenizer
  src_len = bucket(max(len(r.source_ids) for r in rows), ctx.decoding.length_buckets)
  src_ids, src_mask = _left_pad([r.source_ids for r in rows], src_len, src_tok.pad_token_id)
  graphdef, params, rngs = ctx.translator
  src_ids, src_mask = _on_mesh(ctx, src_ids, src_mask)
  return bridge.soft_tokens_jit(graphdef, params, rngs, ctx.frozen.source.params, ctx.frozen.source.config, src_ids,
                                src_mask, ctx.frozen.source_layer, ctx.frozen.source.attention_impl)


_place = jax.jit(bridge.target_inputs, static_argnames=("config",))


# --------------------------------------------------------------------------------------------------
# Records


def sample_record(ctx: Context, p: Prepared, prediction: str, generated: int, latency_s: float,
                  warmup_s: float = 0.0) -> dict:
  scored = p.method.score(p.example, prediction) if p.method.score else scoring.score(ctx.dataset, prediction,
                                                                                        p.example.golds)
  soft = ctx.num_soft_tokens if p.source_ids is not None else 0
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
      "extracted": scored["extracted"], "gold": scored.get("gold", p.example.gold), "cluster": p.example.cluster,
      "correct": bool(scored["correct"]),
      **({"em": scored["em"], "f1": scored["f1"]} if "em" in scored else {}),
      "latency_s": latency_s, "warmup_s": warmup_s, "kv_model": model, "kv_cache_bytes": kv_bytes,
      "peak_memory_bytes": _peak_memory() if model else None, **dict(ctx.labels),
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
                        seconds / len(batch), warmup_s if i == 0 else 0.0)
          for i, (p, (t, n)) in enumerate(zip(batch, outputs_))]


def _with_dependencies(names: Sequence[str]) -> list[methods.Method]:
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
  chosen = _with_dependencies(names)
  soft = [m.name for m in chosen if m.soft_from is not None]
  if soft and ctx.translator is None and ctx.soft_source is None:
    raise ValueError(f"method(s) {', '.join(soft)} need a trained translator: no checkpoint was given.")
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


def bridged_accuracy(ctx: Context, examples: Sequence[Example]) -> float:
  """The training loop's metric: latent accuracy on `examples` (identical on every process)."""
  records = run_methods(dataclasses.replace(ctx, warm_up=False), ["latent"], examples, samples_path=None,
                        progress=False)
  return float(np.mean([r["correct"] for r in records]))


def measure_throughput(ctx: Context, names: Sequence[str], examples: Sequence[Example],
                       batch_sizes: Sequence[int], num_batches: int = 2,
                       relayed: dict[str, str] | None = None) -> dict:
  """Latency per batch and samples/s at each batch size (after one untimed warm-up batch).

  Model-free methods (chance) have no throughput and are left out.
  """
  out = {}
  qs = questions(examples, ctx.control_seed, relayed)
  for name in names:
    method = methods.get(name)
    if method.model is None:
      continue
    out[name] = {}
    for bs in batch_sizes:
      sized = dataclasses.replace(ctx, decoding=dataclasses.replace(ctx.decoding, batch_size=bs))
      prepared = [prepare(sized, method, q) for q in qs[:bs]]
      if not prepared:
        continue
      generate_batch(sized, prepared)  # compile + warm up
      times = [generate_batch(sized, prepared)[1] for _ in range(num_batches)]
      latency = float(np.median(times))
      out[name][str(bs)] = {"latency_s": latency, "samples_per_s": len(prepared) / latency,
                            "peak_memory_bytes": _peak_memory()}
  return out


def measure_latency(ctx: Context, names: Sequence[str], examples: Sequence[Example], num_samples: int,
                    relayed: dict[str, str] | None = None) -> dict:
  """Batch-1 latency of each question alone, as a user waits for it: time to first token (for soft-token methods
  the source's forward and the translator included) and the decoding after it, per sample, after an untimed run
  of each program. A method that reads another's text (text_relay) also gets `end_to_end_s`: the time of the
  method it reads, on the same question, plus its own.

  Per method: medians over the first `num_samples` questions and the per-sample seconds; model-free methods are
  left out. Batch time ÷ batch size (the records' `latency_s`) is throughput, not this.
  """
  one = dataclasses.replace(ctx, decoding=dataclasses.replace(ctx.decoding, batch_size=1))
  first = dataclasses.replace(one, decoding=dataclasses.replace(one.decoding, max_new_tokens=1))
  qs = questions(examples, ctx.control_seed, relayed)[:num_samples]
  totals: dict[str, list[float]] = {}
  out = {}
  for method in _with_dependencies(names):
    if method.model is None:
      continue
    ttft, total, tokens, warm = [], [], [], set()
    for q in qs:
      row = [prepare(one, method, q)]
      if shape_key(one, row) not in warm:  # compile and warm both programs of this shape up, untimed
        generate_batch(first, row), generate_batch(one, row)
        warm.add(shape_key(one, row))
      ttft.append(generate_batch(first, row)[1])
      generated, seconds = generate_batch(one, row)
      total.append(seconds)
      tokens.append(generated[0][1])
    totals[method.name] = total
    decode = [max(t - f, 0.0) for t, f in zip(total, ttft)]
    entry = {"samples": len(qs), "ttft_s": float(np.median(ttft)), "decode_s": float(np.median(decode)),
             "total_s": float(np.median(total)), "generated_tokens": float(np.median(tokens)),
             "per_sample": {"ttft_s": ttft, "total_s": total, "generated_tokens": tokens}}
    if method.reads:
      entry["end_to_end_s"] = float(np.median([a + b for a, b in zip(totals[method.reads], total)]))
    out[method.name] = entry
  return {name: out[name] for name in out if name in names}
