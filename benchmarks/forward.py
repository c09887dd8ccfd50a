"""Forward-pass throughput of the jitted JAX decoder.

CPU (default): a small Llama-shaped config; tokens/s of the jitted forward against transformers' PyTorch
forward of the same weights (saved by `save_pretrained`, read by `LlamaForCausalLM.from_pretrained`),
both measured in this run; the ratio is JAX / PyTorch. The logits of both are compared first, so the two
sides do the same work.

  python benchmarks/forward.py [--batch 4 --seq 256 --repeats 5]

GPU: `--gpu_8b` runs Llama-3.1-8B shapes with random bf16 weights and prints tokens/s and the fraction of
peak bf16 FLOP/s (`--peak_flops`, default 989e12 = H100 SXM dense; an H200 has the same compute peak).
Model FLOPs = 2 x matmul params x tokens + 4 x layers x batch x seq^2 x heads x head_dim (QK^T and PV over
the full S x S matrix, which the XLA attention computes).

  python benchmarks/forward.py --gpu_8b [--batch 4 --seq 2048 --attention_impl cudnn]
"""
import argparse
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from interlingua_jax import cli, models
from interlingua_jax.models import DecoderConfig

SMALL = DecoderConfig(model_type="llama", vocab_size=8192, hidden_size=256, intermediate_size=768, num_layers=4,
                      num_heads=8, num_kv_heads=4, head_dim=32, rope_theta=500000.0, bos_token_id=1,
                      eos_token_id=(2,), pad_token_id=0, max_position_embeddings=4096)
LLAMA_31_8B = DecoderConfig(
    model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
    num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192},
    bos_token_id=128000, eos_token_id=(128001, 128008, 128009), max_position_embeddings=131072)


def best_seconds(fn, repeats: int) -> float:
  """Best of `repeats` timed calls after one warm-up call (compilation): the least disturbed by other load."""
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def matmul_params(config: DecoderConfig) -> int:
  """Weights that take part in matmuls per token (the embedding lookup does not; a tied head does)."""
  c = config
  attn = c.hidden_size * c.head_dim * (2 * c.num_heads + 2 * c.num_kv_heads)
  mlp = 3 * c.hidden_size * c.intermediate_size
  return c.num_layers * (attn + mlp) + c.hidden_size * c.vocab_size


def forward_flops(config: DecoderConfig, batch: int, seq: int) -> float:
  attention = 4 * config.num_layers * batch * seq * seq * config.num_heads * config.head_dim
  return 2 * matmul_params(config) * batch * seq + attention


def cpu(args) -> None:
  import torch
  from transformers import AutoModelForCausalLM
  torch.set_num_threads(os.cpu_count())
  params = models.init_params(SMALL, jax.random.key(0))
  with tempfile.TemporaryDirectory() as path:
    models.save_pretrained(path, SMALL, params)
    torch_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
  model = models.CausalLM(SMALL, params)
  ids = np.random.default_rng(0).integers(3, SMALL.vocab_size, size=(args.batch, args.seq))
  ids_jax, ids_torch = jnp.asarray(ids), torch.tensor(ids)

  def run_jax():
    return model(input_ids=ids_jax, compute_logits=True).logits.block_until_ready()

  def run_torch():
    with torch.no_grad():
      return torch_model(input_ids=ids_torch).logits

  ref = run_torch().numpy()
  err = np.abs(np.asarray(run_jax()) - ref).max() / np.abs(ref).max()
  tokens = args.batch * args.seq
  jax_s, torch_s = best_seconds(run_jax, args.repeats), best_seconds(run_torch, args.repeats)
  print(f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}), float32, d={SMALL.hidden_size}, "
        f"{SMALL.num_layers} layers, vocab {SMALL.vocab_size}, batch {args.batch} x seq {args.seq}; "
        f"max|dlogits|/max|ref| = {err:.1e}; best of {args.repeats}")
  print(f"{'':<22}{'ms':>9}{'tokens/s':>12}{'GFLOP/s':>10}")
  flops = forward_flops(SMALL, args.batch, args.seq)
  for name, secs in (("pytorch (reference)", torch_s), ("jax jit", jax_s)):
    print(f"{name:<22}{secs * 1e3:>9.1f}{tokens / secs:>12.0f}{flops / secs / 1e9:>10.1f}")
  print(f"ratio jax / pytorch tokens/s: {torch_s / jax_s:.2f}")


def gpu_8b(args) -> None:
  config = LLAMA_31_8B
  params = models.init_params(config, jax.random.key(0), dtype=jnp.bfloat16)
  model = models.CausalLM(config, params, attention_impl=args.attention_impl)
  ids = jnp.asarray(np.random.default_rng(0).integers(0, config.vocab_size, size=(args.batch, args.seq)))
  secs = best_seconds(lambda: model(input_ids=ids).logits.block_until_ready(), args.repeats)
  flops = forward_flops(config, args.batch, args.seq)
  tokens = args.batch * args.seq
  print(f"{jax.devices()[0].device_kind}: Llama-3.1-8B shapes, random bf16 weights, batch {args.batch} x seq "
        f"{args.seq}, attention {args.attention_impl or 'default'}; best of {args.repeats}")
  print(f"{secs * 1e3:.1f} ms, {tokens / secs:.0f} tokens/s, {flops / secs / 1e12:.1f} TFLOP/s = "
        f"{flops / secs / args.peak_flops:.1%} of peak {args.peak_flops / 1e12:.0f} TFLOP/s")


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gpu_8b", action="store_true", help="Llama-3.1-8B shapes on the accelerator")
  parser.add_argument("--batch", type=int, default=None)
  parser.add_argument("--seq", type=int, default=None)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--peak_flops", type=float, default=989e12, help="peak dense bf16 FLOP/s of the device")
  parser.add_argument("--attention_impl", choices=["xla", "cudnn"], default=None)
  args = parser.parse_args(argv[1:])
  if args.gpu_8b:
    args.batch, args.seq = args.batch or 4, args.seq or 2048
    gpu_8b(args)
  else:
    args.batch, args.seq = args.batch or 4, args.seq or 256
    cpu(args)


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
