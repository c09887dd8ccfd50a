"""Forward-pass throughput of the jitted JAX decoder.

CPU (default): the small Llama-shaped config of `shapes.SMALL`; tokens/s of the jitted forward against
transformers' PyTorch forward of the same weights, measured in this run in interleaved rounds (medians);
the ratio is JAX / PyTorch. The logits of both are compared first, so the two sides do the same work.

  python benchmarks/forward.py [--batch 4 --seq 256 --repeats 5]

GPU: `--gpu_8b` runs Llama-3.1-8B shapes with random bf16 weights and prints tokens/s and the fraction of
peak bf16 FLOP/s (`--peak_flops`, default 989e12 = H100 SXM dense; an H200 has the same compute peak).
Model FLOPs: `flops.forward_flops` (2 × matmul params × tokens + QKᵀ and PV over the full S × S matrix,
which the XLA attention computes).

  python benchmarks/forward.py --gpu_8b [--batch 4 --seq 2048 --attention_impl cudnn]
"""
import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import timing
from shapes import LLAMA_31_8B, SMALL, small_models
from interlingua_jax import models
from interlingua_jax.core import cli
from interlingua_jax.models import flops


def cpu(args) -> None:
  import torch
  torch.set_num_threads(args.torch_threads)
  model, torch_model = small_models()
  ids = np.random.default_rng(0).integers(3, SMALL.vocab_size, size=(args.batch, args.seq))
  ids_jax, ids_torch = jnp.asarray(ids), torch.tensor(ids)

  def run_jax():
    return model(input_ids=ids_jax, compute_logits=True).logits

  def run_torch():
    with torch.no_grad():
      return torch_model(input_ids=ids_torch).logits

  ref = run_torch().numpy()
  err = np.abs(np.asarray(run_jax()) - ref).max() / np.abs(ref).max()
  times = timing.interleaved({"pytorch (reference)": run_torch, "jax jit": run_jax}, rounds=args.repeats)
  tokens, work = args.batch * args.seq, flops.forward_flops(SMALL, args.batch, args.seq)
  print(f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}), float32, d={SMALL.hidden_size}, "
        f"{SMALL.num_layers} layers, vocab {SMALL.vocab_size}, batch {args.batch} x seq {args.seq}; "
        f"max|dlogits|/max|ref| = {err:.1e}; median of {args.repeats} interleaved rounds")
  print(f"{'':<22}{'ms':>9}{'tokens/s':>12}{'GFLOP/s':>10}")
  for name, t in times.items():
    print(f"{name:<22}{t.median * 1e3:>9.1f}{tokens / t.median:>12.0f}{work / t.median / 1e9:>10.1f}")
  print(f"ratio jax / pytorch tokens/s: {times['pytorch (reference)'].median / times['jax jit'].median:.2f}")


def gpu_8b(args) -> None:
  config = LLAMA_31_8B
  params = models.init_params(config, jax.random.key(0), dtype=jnp.bfloat16)
  model = models.CausalLM(config, params, attention_impl=args.attention_impl)
  ids = jnp.asarray(np.random.default_rng(0).integers(0, config.vocab_size, size=(args.batch, args.seq)))
  secs = timing.once(lambda: model(input_ids=ids).logits, rounds=args.repeats).median
  work, tokens = flops.forward_flops(config, args.batch, args.seq), args.batch * args.seq
  print(f"{jax.devices()[0].device_kind}: Llama-3.1-8B shapes, random bf16 weights, batch {args.batch} x seq "
        f"{args.seq}, attention {args.attention_impl or 'default'}; median of {args.repeats}")
  print(f"{secs * 1e3:.1f} ms, {tokens / secs:.0f} tokens/s, {work / secs / 1e12:.1f} TFLOP/s = "
        f"{work / secs / args.peak_flops:.1%} of peak {args.peak_flops / 1e12:.0f} TFLOP/s")


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gpu_8b", action="store_true", help="Llama-3.1-8B shapes on the accelerator")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--seq", type=int, default=None, help="default 256 (2048 with --gpu_8b)")
  parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is reported")
  parser.add_argument("--peak_flops", type=float, default=989e12, help="peak dense bf16 FLOP/s of the device")
  parser.add_argument("--attention_impl", choices=["xla", "cudnn"], default=None)
  parser.add_argument("--torch_threads", type=int, default=os.cpu_count(),
                      help="CPU: torch.set_num_threads; default all cores, as XLA uses (try 1 on a loaded machine)")
  args = parser.parse_args(argv[1:])
  args.seq = args.seq or (2048 if args.gpu_8b else 256)
  (gpu_8b if args.gpu_8b else cpu)(args)


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
