"""What a user waits for: latency and throughput of each method, timed after an untimed run of each program."""
import dataclasses
from collections.abc import Sequence

import numpy as np

from interlingua_jax.data.records import Example
from interlingua_jax.evaluation import methods
from interlingua_jax.evaluation.context import Context
from interlingua_jax.evaluation.harness import generate_batch, peak_memory, prepare, questions, shape_key, with_dependencies


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
                            "peak_memory_bytes": peak_memory()}
  return out


def measure_latency(ctx: Context, names: Sequence[str], examples: Sequence[Example], num_samples: int,
                    relayed: dict[str, str] | None = None) -> dict:
  """Batch-1 latency of each question alone, as a user waits for it: time to first token (for soft-token methods
  the bridge's source forward and module included) and the decoding after it, per sample, after an untimed run
  of each program. A method that reads another's text (text_relay) also gets `end_to_end_s`: the time of the
  method it reads, on the same question, plus its own.

  Per method: medians over the first `num_samples` questions and the per-sample seconds; model-free methods are
  left out. Batch time ÷ batch size (the records' `latency_s`) is throughput, not this.
  """
  one = dataclasses.replace(ctx, decoding=dataclasses.replace(ctx.decoding, batch_size=1))
  first = dataclasses.replace(one, decoding=dataclasses.replace(one.decoding, max_new_tokens=1))
  qs = questions(examples, ctx.control_seed, relayed)[:num_samples]
  if not qs:  # eval.latency_samples = 0: none timed (a median of no sample would be NaN)
    return {}
  totals: dict[str, list[float]] = {}
  out = {}
  for method in with_dependencies(names):
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
