"""Evaluation harness: every method on exactly the same questions, per-sample records, an aggregate.

Methods (each answers the same test questions; `M` = translator.num_soft_tokens):
  source_alone   the source LM answers the full prompt.
  target_alone   the target LM answers the full prompt.
  latent         [BOS][M soft tokens from the translator reading the source][anchor] → target.
  token_budget   the bridge's layout with the soft tokens replaced by the first M target tokens of
                 the zero-shot question prompt: the same token budget, spent on plain text.
  text_relay     the source answers in text; the target reads the full prompt, the source's answer,
                 and the question again: `{prompt} {source answer}\n\n{zero-shot prompt}`.

Every method is scored from its generated text alone (prompt stripped), with the strict
extractor of its dataset and the gold of the test record itself (DESIGN §3.2, §3.3, §3.11).
Records are appended to `eval/samples.jsonl` as they are produced; a rerun skips the
(id, method) pairs already there, so a crash loses nothing that was written.
"""
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from interlingua_jax import bridge, costs, layout, scoring, stats
from interlingua_jax.data import pipeline, prompts
from interlingua_jax.data.records import Example
from interlingua_jax.models import generate
from interlingua_jax.models.generate import to_host as _to_host

METHODS = ("source_alone", "target_alone", "latent", "token_budget", "text_relay")


@dataclasses.dataclass
class Decoding:
  max_new_tokens: int
  stop_strings: tuple[str, ...]
  batch_size: int
  length_buckets: tuple[int, ...]
  repetition_penalty: float = 1.0
  no_repeat_ngram_size: int = 0


@dataclasses.dataclass
class Harness:
  """What every method needs: the frozen models, the translator (for latent), prompts and decoding."""
  frozen: bridge.Frozen
  builder: pipeline.PromptBuilder
  anchor: str
  num_soft_tokens: int
  decoding: Decoding
  mesh: Mesh
  translator: tuple | None = None  # (graphdef, params, rngs) of the translator being evaluated
  soft_transform: Callable[[np.ndarray], np.ndarray] | None = None  # e.g. a wire round trip (compression)

  @property
  def dataset(self) -> str:
    return self.builder.dataset


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


@dataclasses.dataclass
class Prepared:
  """One method's input for one question."""
  example: Example
  model: str  # "source" or "target": which LM answers
  ids: list[int]  # the answering model's text input, BOS included (for latent: the target's row after soft)
  source_ids: list[int] | None = None  # latent only: the source prompt the translator reads


def _ids(tokenizer, text: str) -> list[int]:
  return pipeline.token_ids(tokenizer, text)


def prepare(h: Harness, method: str, example: Example, source_prediction: str | None = None) -> Prepared:
  src_tok, tgt_tok = h.frozen.source_tokenizer, h.frozen.target_tokenizer
  prompt = h.builder.source_prompt(example)
  if method == "source_alone":
    return Prepared(example, "source", h.builder.ids(src_tok, prompt))
  if method == "target_alone":
    return Prepared(example, "target", h.builder.ids(tgt_tok, prompt))
  if method == "latent":
    return Prepared(example, "target", pipeline.anchor_ids(tgt_tok, h.anchor),
                    source_ids=h.builder.ids(src_tok, prompt))
  if method == "token_budget":
    question = _ids(tgt_tok, prompts.build_prompt(h.dataset, example))[:h.num_soft_tokens]
    return Prepared(example, "target", pipeline.with_bos(tgt_tok, question + pipeline.anchor_ids(tgt_tok, h.anchor)))
  if method == "text_relay":
    if source_prediction is None:
      raise ValueError("text_relay needs the source's prediction for each question.")
    relay = f"{prompt} {source_prediction.strip()}\n\n{prompts.build_prompt(h.dataset, example)}"
    return Prepared(example, "target", h.builder.ids(tgt_tok, relay))
  raise ValueError(f"unknown evaluation method {method!r}; choose from {', '.join(METHODS)}.")


# --------------------------------------------------------------------------------------------------
# Batched generation


def _left_pad(rows: list[list[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  ids = np.full((len(rows), length), pad_id, np.int32)
  mask = np.zeros((len(rows), length), np.int32)
  for i, r in enumerate(rows):
    ids[i, length - len(r):] = r
    mask[i, length - len(r):] = 1
  return ids, mask


def _on_mesh(h: Harness, *arrays):
  """Batch rows over "data" on one host. With several processes every process decodes the whole
  (replicated) batch, so every process reads the same generated tokens and computes the same score."""
  split = jax.process_count() == 1 and arrays[0].shape[0] % h.mesh.shape["data"] == 0
  sharding = NamedSharding(h.mesh, P("data") if split else P())
  return [jax.device_put(a, sharding) for a in arrays]


def generate_batch(h: Harness, batch: list[Prepared]) -> tuple[list[tuple[np.ndarray, int]], float]:
  """Generates for one (padded) batch; returns per-row (tokens, length) and the wall time in seconds."""
  n = len(batch)
  rows = _pad_rows(batch, h.decoding.batch_size)
  lm = h.frozen.source if rows[0].model == "source" else h.frozen.target
  tok = h.frozen.source_tokenizer if rows[0].model == "source" else h.frozen.target_tokenizer
  d = h.decoding
  kwargs = dict(max_new_tokens=d.max_new_tokens, eos_token_id=h.frozen.stop_ids(rows[0].model),
                pad_token_id=tok.pad_token_id, repetition_penalty=d.repetition_penalty,
                no_repeat_ngram_size=d.no_repeat_ngram_size, stop=stop_predicate(tok, d.stop_strings))
  start = time.perf_counter()
  if rows[0].source_ids is None:
    ids, mask = _left_pad([r.ids for r in rows], bucket(max(len(r.ids) for r in rows), d.length_buckets),
                          tok.pad_token_id)
    ids, mask = _on_mesh(h, ids, mask)
    out = generate(lm, input_ids=ids, attention_mask=mask, **kwargs)
  else:
    inputs, mask = latent_inputs(h, rows)
    out = generate(lm, inputs_embeds=inputs, attention_mask=mask, **kwargs)
  tokens, lengths = _to_host(out.tokens), _to_host(out.lengths)
  seconds = time.perf_counter() - start
  return [(tokens[i], int(lengths[i])) for i in range(n)], seconds


def latent_inputs(h: Harness, rows: list[Prepared]):
  """Soft tokens from the source prompt → the target's left-padded input embeddings and mask."""
  src_tok, tgt_tok = h.frozen.source_tokenizer, h.frozen.target_tokenizer
  src_len = bucket(max(len(r.source_ids) for r in rows), h.decoding.length_buckets)
  src_ids, src_mask = _left_pad([r.source_ids for r in rows], src_len, src_tok.pad_token_id)
  graphdef, params, rngs = h.translator
  src_ids, src_mask = _on_mesh(h, src_ids, src_mask)
  soft = bridge.soft_tokens_jit(graphdef, params, rngs, h.frozen.source.params,
                                h.frozen.source.config, src_ids, src_mask, h.frozen.source_layer,
                                h.frozen.source.attention_impl)
  if h.soft_transform is not None:
    soft = jax.numpy.asarray(np.stack([h.soft_transform(s) for s in _to_host(soft)]))
  row = layout.bridged_batch([r.ids for r in rows], None, num_soft_tokens=h.num_soft_tokens, seq_len=None,
                             bos_id=tgt_tok.bos_token_id, pad_id=tgt_tok.pad_token_id)
  token_ids, soft_index, mask = _on_mesh(h, row.token_ids, row.soft_index, row.attention_mask)
  inputs = _place(h.frozen.target.params, h.frozen.target.config, soft, token_ids, soft_index)
  return inputs, mask


_place = jax.jit(bridge.target_inputs, static_argnames=("config",))


# --------------------------------------------------------------------------------------------------
# Records


def sample_record(h: Harness, method: str, p: Prepared, tokens: np.ndarray, length: int, latency_s: float) -> dict:
  tok = h.frozen.source_tokenizer if p.model == "source" else h.frozen.target_tokenizer
  lm = h.frozen.source if p.model == "source" else h.frozen.target
  prediction = stop_at(decode_text(tok, tokens, length), h.decoding.stop_strings)
  scored = scoring.score(h.dataset, prediction, p.example.gold)
  soft = h.num_soft_tokens if method == "latent" else 0
  held = soft + len(p.ids) + (1 if method == "latent" and tok.bos_token_id is not None else 0) + length
  bytes_per_element = jnp.dtype(lm.params["embed"].dtype).itemsize
  return {
      "id": p.example.id, "method": method,
      "source_prompt_tokens": len(p.source_ids) if p.source_ids else (len(p.ids) if p.model == "source" else 0),
      "target_prompt_tokens": len(p.ids) if p.model == "target" else 0,
      "soft_tokens": soft, "generated_tokens": length, "prediction": prediction,
      "extracted": scored["extracted"], "gold": p.example.gold, "correct": bool(scored["correct"]),
      **({"em": scored["em"], "f1": scored["f1"]} if "em" in scored else {}),
      "latency_s": latency_s, "kv_model": p.model,
      "kv_cache_bytes": costs.kv_cache_bytes_for(lm.config, held, bytes_per_element),
      "peak_memory_bytes": _peak_memory(),
  }


def read_samples(path: str) -> list[dict]:
  """The records already written; a torn last line (a crash mid-write) is dropped."""
  if not os.path.exists(path):
    return []
  out = []
  with open(path) as f:
    for line in f:
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:
        logging.warning("%s: dropping an incomplete line (interrupted write)", path)
  return out


def run_methods(h: Harness, methods: Sequence[str], examples: Sequence[Example], samples_path: str | None,
                progress: bool = True) -> list[dict]:
  """Runs each method over `examples`, appending records as batches finish; returns all records."""
  from tqdm import tqdm
  for m in methods:
    if m not in METHODS:
      raise ValueError(f"unknown evaluation method {m!r}; choose from {', '.join(METHODS)}.")
  if "latent" in methods and h.translator is None:
    raise ValueError("method 'latent' needs a trained translator: no checkpoint was given.")
  done = read_samples(samples_path) if samples_path else []
  if samples_path:
    os.makedirs(os.path.dirname(samples_path), exist_ok=True)
    with open(samples_path, "w") as f:  # rewrite without any torn line, then append
      f.writelines(json.dumps(r) + "\n" for r in done)
  seen = {(r["id"], r["method"]) for r in done}
  records = list(done)
  # text_relay reads the source's answers: run source_alone first when both are asked for.
  order = sorted(methods, key=lambda m: (m != "source_alone", m == "text_relay"))
  source_predictions = {r["id"]: r["prediction"] for r in records if r["method"] == "source_alone"}
  for method in order:
    todo = [e for e in examples if (e.id, method) not in seen]
    if method == "text_relay":
      missing = [e for e in todo if e.id not in source_predictions]
      if missing:
        records += run_methods(h, ["source_alone"], missing, samples_path, progress)[len(records):]
        source_predictions.update({r["id"]: r["prediction"] for r in records if r["method"] == "source_alone"})
    prepared = [prepare(h, method, e, source_predictions.get(e.id)) for e in todo]
    bar = tqdm(total=len(prepared), desc=method, disable=not progress or jax.process_index() != 0,
               dynamic_ncols=True)
    for batch in _batches(prepared, h.decoding.batch_size):
      outputs, seconds = generate_batch(h, batch)
      new = [sample_record(h, method, p, t, n, seconds / len(batch)) for p, (t, n) in zip(batch, outputs)]
      if samples_path and jax.process_index() == 0:
        with open(samples_path, "a") as f:
          f.writelines(json.dumps(r) + "\n" for r in new)
      records += new
      if method == "source_alone":
        source_predictions.update({r["id"]: r["prediction"] for r in new})
      bar.update(len(batch))
    bar.close()
  return records


def bridged_accuracy(h: Harness, examples: Sequence[Example]) -> float:
  """The training loop's metric: latent accuracy on `examples` (identical on every process)."""
  records = run_methods(h, ["latent"], examples, samples_path=None, progress=False)
  return float(np.mean([r["correct"] for r in records]))


# --------------------------------------------------------------------------------------------------
# Throughput and aggregate


def measure_throughput(h: Harness, methods: Sequence[str], examples: Sequence[Example],
                       batch_sizes: Sequence[int], num_batches: int = 2,
                       source_predictions: dict | None = None) -> dict:
  """Latency per batch and samples/s at each batch size (after one untimed warm-up batch)."""
  out = {}
  saved = h.decoding.batch_size
  try:
    for method in methods:
      out[method] = {}
      for bs in batch_sizes:
        h.decoding.batch_size = bs
        prepared = [prepare(h, method, e, (source_predictions or {}).get(e.id, "")) for e in examples[:bs]]
        if not prepared:
          continue
        generate_batch(h, prepared)  # compile + warm up
        times = [generate_batch(h, prepared)[1] for _ in range(num_batches)]
        latency = float(np.median(times))
        out[method][str(bs)] = {"latency_s": latency, "samples_per_s": len(prepared) / latency,
                                "peak_memory_bytes": _peak_memory()}
  finally:
    h.decoding.batch_size = saved
  return out


def scenario(accuracy: dict[str, float]) -> str:
  """Which of the study's outcomes holds for the bridge (needs source_alone, target_alone, latent)."""
  if not {"latent", "source_alone", "target_alone"} <= accuracy.keys():
    return "incomplete: needs latent, source_alone and target_alone"
  lat, src, tgt = accuracy["latent"], accuracy["source_alone"], accuracy["target_alone"]
  if lat > src and lat > tgt:
    return "latent above both single models"
  if lat > tgt:
    return "latent above the target only"
  if lat < src:
    return "latent below the source"
  if lat == max(src, tgt):
    return "latent on par with the better single model"
  return "latent between the models: at or above the source, below the target"


def aggregate(records: Sequence[dict], *, dataset: str, num_soft_tokens: int, bootstrap_samples: int,
              seed: int, throughput: dict | None = None) -> dict:
  """Per-method accuracy with bootstrap intervals; latent vs each method, paired; KV saving; scenario."""
  by_method: dict[str, dict[str, dict]] = {}
  for r in records:
    by_method.setdefault(r["method"], {})[r["id"]] = r
  ids = sorted(set.intersection(*(set(v) for v in by_method.values()))) if by_method else []
  methods = {}
  for m, rows in by_method.items():
    correct = np.array([rows[i]["correct"] for i in ids], np.float64)
    lo, hi = stats.bootstrap_ci(correct, n=bootstrap_samples, seed=seed) if len(ids) else (float("nan"),) * 2
    entry = {"accuracy": float(correct.mean()) if len(ids) else float("nan"), "ci95": [lo, hi], "n": len(ids),
             "mean_latency_s": float(np.mean([rows[i]["latency_s"] for i in ids])) if ids else None,
             "mean_kv_bytes": float(np.mean([rows[i]["kv_cache_bytes"] for i in ids])) if ids else None,
             "mean_prompt_tokens": float(np.mean([rows[i]["target_prompt_tokens"] + rows[i]["soft_tokens"]
                                                  or rows[i]["source_prompt_tokens"] for i in ids])) if ids else None,
             "mean_generated_tokens": float(np.mean([rows[i]["generated_tokens"] for i in ids])) if ids else None}
    if dataset == "hotpotqa":
      entry["em"] = float(np.mean([rows[i]["em"] for i in ids]))
      entry["f1"] = float(np.mean([rows[i]["f1"] for i in ids]))
    methods[m] = entry
  comparisons = {}
  if "latent" in by_method:
    lat = np.array([by_method["latent"][i]["correct"] for i in ids], np.float64)
    for m in by_method:
      if m == "latent":
        continue
      other = np.array([by_method[m][i]["correct"] for i in ids], np.float64)
      diff, lo, hi = stats.paired_bootstrap(lat, other, n=bootstrap_samples, seed=seed)
      comparisons[f"latent_vs_{m}"] = {"diff": diff, "ci95": [lo, hi], "mcnemar_p": stats.mcnemar_p(lat, other)}
  kv_saving = None
  if {"latent", "target_alone"} <= by_method.keys():
    lat_kv, tgt_kv = methods["latent"]["mean_kv_bytes"], methods["target_alone"]["mean_kv_bytes"]
    kv_saving = {"latent_mean_kv_bytes": lat_kv, "target_alone_mean_kv_bytes": tgt_kv,
                 "saving_fraction": 1.0 - lat_kv / tgt_kv if tgt_kv else None}
  return {"dataset": dataset, "num_questions": len(ids), "num_soft_tokens": num_soft_tokens, "methods": methods,
          "comparisons": comparisons, "kv_saving": kv_saving, "throughput": throughput or {},
          "scenario": scenario({m: v["accuracy"] for m, v in methods.items()})}
