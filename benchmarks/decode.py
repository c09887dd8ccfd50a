"""Greedy KV-cache decoding throughput of `interlingua_jax.models.generate`.

CPU (default): the small Llama-shaped config of `shapes.SMALL`; generated tokens/s at each `--batches`
size against transformers' `generate(do_sample=False)` on the same weights, measured in this run in
interleaved rounds (medians; ratio = JAX / HF). EOS is kept out of reach on both sides (an
out-of-vocabulary EOS id for JAX, `min_new_tokens` for HF), so both generate exactly --new_tokens tokens
per row; the first call (compilation) is not timed. The two outputs are compared token for token first.

  python benchmarks/decode.py [--prompt 64 --new_tokens 64 --batches 1 8]

GPU: `--gpu_8b` decodes Llama-3.1-8B shapes with random bf16 weights and compares the decode steps'
tokens/s with the memory-bandwidth bound of `flops.decode_step_bytes`: each step reads every weight once
and each row's KV cache, so the bound is batch × (measured copy bandwidth) ÷ (weight + KV bytes per step),
with the KV cache at the mean context of the timed steps (prompt + new_tokens / 2; the bytes are linear
in it). `--smoke` runs the same path on the small config (a CPU check of the GPU path).

  python benchmarks/decode.py --gpu_8b [--prompt 512 --new_tokens 256 --batches 1 8 32]
"""
import argparse
import os
import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import timing
from shapes import LLAMA_31_8B, SMALL, small_models
from interlingua_jax import models
from interlingua_jax.core import cli
from interlingua_jax.models import flops


def random_prompts(config, batch: int, length: int) -> np.ndarray:
  """Random unpadded prompts (ids 0-2 are pad, BOS and EOS), the same for a given batch size."""
  return np.random.default_rng(batch).integers(3, config.vocab_size, size=(batch, length))


def greedy(model, ids: np.ndarray, new_tokens: int):
  """Exactly `new_tokens` per row: the EOS id is beyond the vocabulary, so no argmax reaches it."""
  return models.generate(model, input_ids=ids, attention_mask=np.ones_like(ids), max_new_tokens=new_tokens,
                         eos_token_id=model.config.vocab_size, pad_token_id=0).tokens


def print_table(columns: dict[str, int], batches: list[int], row: Callable[[int], tuple[str, ...]]) -> None:
  """A header of right-aligned columns, then one line per batch size: the batch, then `row(batch)`'s cells."""
  print("".join(f"{name:>{width}}" for name, width in columns.items()))
  for batch in batches:
    print("".join(f"{cell:>{width}}" for cell, width in zip((str(batch), *row(batch)), columns.values())))


def cpu(args) -> None:
  import torch
  torch.set_num_threads(args.torch_threads)
  model, torch_model = small_models()
  print(f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}), float32, d={SMALL.hidden_size}, "
        f"{SMALL.num_layers} layers, vocab {SMALL.vocab_size}; prompt {args.prompt}, {args.new_tokens} new tokens; "
        f"median of {args.repeats} interleaved rounds")

  def row(batch: int) -> tuple[str, ...]:
    ids = random_prompts(SMALL, batch, args.prompt)
    run_jax = lambda: np.asarray(greedy(model, ids, args.new_tokens))

    def run_hf():
      with torch.no_grad():
        out = torch_model.generate(input_ids=torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long),
                                   do_sample=False, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                   pad_token_id=0)
      return out[:, args.prompt:].numpy()

    same = np.array_equal(run_jax(), run_hf())
    t = timing.interleaved({"hf": run_hf, "jax": run_jax}, rounds=args.repeats)
    tokens = batch * args.new_tokens
    return (f"{tokens / t['hf'].median:.0f}", f"{tokens / t['jax'].median:.0f}",
            f"{t['hf'].median / t['jax'].median:.2f}", str(same))

  print_table({"batch": 5, "hf tokens/s": 14, "jax tokens/s": 14, "ratio": 8, "same tokens": 13}, args.batches, row)


def copy_bandwidth(num_bytes: int) -> float:
  """Bytes/s of a jitted elementwise pass (one read + one write of every byte) over a large bf16 array."""
  x = jnp.ones((num_bytes // 2,), jnp.bfloat16)
  copy = jax.jit(lambda a: a * 2)
  return 2 * num_bytes / timing.once(lambda: copy(x), rounds=3).median


def gpu_8b(args) -> None:
  config = SMALL if args.smoke else LLAMA_31_8B
  model = models.CausalLM(config, models.init_params(config, jax.random.key(0), dtype=jnp.bfloat16))
  bandwidth = copy_bandwidth((64 << 20) if args.smoke else (4 << 30))
  print(f"{jax.devices()[0].device_kind}: {'SMALL (smoke)' if args.smoke else 'Llama-3.1-8B'} shapes, random bf16 "
        f"weights ({flops.weight_bytes(config) / 1e9:.3f} GB read per step), prompt {args.prompt}, "
        f"{args.new_tokens} new tokens; copy bandwidth {bandwidth / 1e12:.3f} TB/s; median of {args.repeats}")

  def row(batch: int) -> tuple[str, ...]:
    ids = random_prompts(config, batch, args.prompt)
    # Decode steps only: a 1-token generate (the prefill and its first token) is subtracted.
    t = timing.interleaved({"full": lambda: greedy(model, ids, args.new_tokens),
                            "prefill": lambda: greedy(model, ids, 1)}, rounds=args.repeats)
    per_s = batch * (args.new_tokens - 1) / (t["full"].median - t["prefill"].median)
    step_bytes = flops.decode_step_bytes(config, batch=batch, context_len=args.prompt + args.new_tokens // 2)
    bound = flops.decode_bound_tokens_per_s(step_bytes, bandwidth, batch)
    return f"{per_s:.1f}", f"{bound:.1f}", f"{per_s / bound:.1%}"

  print_table({"batch": 5, "tokens/s": 12, "bound": 12, "of bound": 10}, args.batches, row)


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gpu_8b", action="store_true", help="Llama-3.1-8B shapes on the accelerator")
  parser.add_argument("--smoke", action="store_true", help="with --gpu_8b: the small config, runs on a CPU")
  parser.add_argument("--prompt", type=int, default=None, help="default 64 (512 with --gpu_8b)")
  parser.add_argument("--new_tokens", type=int, default=None, help="default 64 (256 with --gpu_8b)")
  parser.add_argument("--batches", type=int, nargs="+", default=None, help="default 1 8 (1 with --gpu_8b)")
  parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported")
  parser.add_argument("--torch_threads", type=int, default=os.cpu_count(),
                      help="CPU: torch.set_num_threads; default all cores, as XLA uses (try 1 on a loaded machine)")
  args = parser.parse_args(argv[1:])
  gpu = args.gpu_8b and not args.smoke
  args.prompt = args.prompt or (512 if gpu else 64)
  args.new_tokens = args.new_tokens or (256 if gpu else 64)
  args.batches = args.batches or ([1] if args.gpu_8b else [1, 8])
  (gpu_8b if args.gpu_8b else cpu)(args)


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
