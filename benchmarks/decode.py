"""Greedy KV-cache decoding throughput of `interlingua_jax.models.generate`.

CPU (default): a small Llama-shaped config; generated tokens/s at batch 1 and 8 against transformers'
`generate(do_sample=False)` on the same weights, measured in this run (ratio = JAX / HF). EOS is kept out
of reach on both sides (an out-of-vocabulary EOS id for JAX, `min_new_tokens` for HF), so both generate
exactly --new_tokens tokens per row; the first call (compilation) is not timed. The two outputs are
compared token for token first.

  python benchmarks/decode.py [--prompt 64 --new_tokens 64]

GPU: `--gpu_8b` decodes Llama-3.1-8B shapes with random bf16 weights at batch 1 and compares tokens/s
with the memory-bandwidth bound: each token reads every weight once, so the bound is
(measured device copy bandwidth) / (weight bytes).

  python benchmarks/decode.py --gpu_8b [--prompt 128 --new_tokens 256]
"""
import argparse
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from interlingua_jax import cli, models
from forward import LLAMA_31_8B, SMALL, best_seconds


def timed(fn) -> float:
  """Seconds of one call after a warm-up call (compilation); a decode run is long enough to time once."""
  return best_seconds(fn, repeats=1)


def cpu(args) -> None:
  import torch
  from transformers import AutoModelForCausalLM
  torch.set_num_threads(os.cpu_count())
  params = models.init_params(SMALL, jax.random.key(0))
  with tempfile.TemporaryDirectory() as path:
    models.save_pretrained(path, SMALL, params)
    torch_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
  model = models.CausalLM(SMALL, params)
  never = SMALL.vocab_size  # an EOS id no argmax can produce
  print(f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}), float32, d={SMALL.hidden_size}, "
        f"{SMALL.num_layers} layers, vocab {SMALL.vocab_size}; prompt {args.prompt}, {args.new_tokens} new tokens")
  print(f"{'batch':>5}{'hf tokens/s':>14}{'jax tokens/s':>14}{'ratio':>8}{'same tokens':>13}")
  for batch in (1, 8):
    ids = np.random.default_rng(batch).integers(3, SMALL.vocab_size, size=(batch, args.prompt))
    mask = np.ones_like(ids)

    def run_jax():
      return np.asarray(models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=args.new_tokens,
                                        eos_token_id=never, pad_token_id=0).tokens)

    def run_hf():
      with torch.no_grad():
        out = torch_model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                                   max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=0)
      return out[:, args.prompt:].numpy()

    same = np.array_equal(run_jax(), run_hf())
    tokens = batch * args.new_tokens
    jax_s, hf_s = timed(run_jax), timed(run_hf)
    print(f"{batch:>5}{tokens / hf_s:>14.0f}{tokens / jax_s:>14.0f}{hf_s / jax_s:>8.2f}{str(same):>13}")


def copy_bandwidth(num_bytes: int = 4 << 30) -> float:
  """Bytes/s of a jitted elementwise pass (one read + one write of every byte) over a large bf16 array."""
  x = jnp.ones((num_bytes // 2,), jnp.bfloat16)
  copy = jax.jit(lambda a: a * 2)
  secs = min(timed(lambda: copy(x).block_until_ready()) for _ in range(3))
  return 2 * num_bytes / secs


def gpu_8b(args) -> None:
  config = LLAMA_31_8B
  params = models.init_params(config, jax.random.key(0), dtype=jnp.bfloat16)
  weight_bytes = sum(x.nbytes for x in jax.tree.leaves(params)) - params["embed"].nbytes  # lookup reads one row
  model = models.CausalLM(config, params)
  ids = np.random.default_rng(0).integers(0, config.vocab_size, size=(1, args.prompt))
  mask = np.ones_like(ids)

  def run(new_tokens):
    return models.generate(model, input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, eos_token_id=-1,
                           pad_token_id=0).tokens.block_until_ready()

  # Subtract the prefill (a 1-token generate) so the figure is decode steps only.
  secs = timed(lambda: run(args.new_tokens)) - timed(lambda: run(1))
  per_s = (args.new_tokens - 1) / secs
  bandwidth = copy_bandwidth()
  bound = bandwidth / weight_bytes
  print(f"{jax.devices()[0].device_kind}: Llama-3.1-8B shapes, random bf16 weights ({weight_bytes / 1e9:.2f} GB read "
        f"per token), batch 1, prompt {args.prompt}, {args.new_tokens} new tokens")
  print(f"decode {per_s:.1f} tokens/s; copy bandwidth {bandwidth / 1e12:.2f} TB/s -> bound {bound:.1f} tokens/s; "
        f"{per_s / bound:.1%} of the bound")


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gpu_8b", action="store_true", help="Llama-3.1-8B shapes on the accelerator")
  parser.add_argument("--prompt", type=int, default=None)
  parser.add_argument("--new_tokens", type=int, default=None)
  args = parser.parse_args(argv[1:])
  if args.gpu_8b:
    args.prompt, args.new_tokens = args.prompt or 128, args.new_tokens or 256
    gpu_8b(args)
  else:
    args.prompt, args.new_tokens = args.prompt or 64, args.new_tokens or 64
    cpu(args)


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
