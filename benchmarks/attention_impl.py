"""model.attention_impl on a GPU: cuDNN fused attention against XLA's dense attention, at the 8B shapes.

Random bf16 weights of Llama-3.1-8B (target) and Mistral-7B-v0.3 (source). Checks, on left-padded rows:
the logits of a forward pass (max |difference| over real positions, relative to the logits' scale), the
greedy tokens of `generate`, and times the forward pass, the decode loop, and the stable_64 train step
(source forward, translator, target forward + input-gradient backward, AdamW) for both implementations.

  python benchmarks/attention_impl.py [--batch 8 --prompt_len 1024 --new_tokens 64 --source_len 1024]
  python benchmarks/attention_impl.py --smoke   # tiny shapes, to exercise the path
"""
import argparse
import copy
import dataclasses
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

from forward import LLAMA_31_8B  # noqa: E402
from train_step import (MISTRAL_7B_V03, SMOKE_MODEL, SMOKE_TRANSLATOR, steps_runner, synthetic_batch,  # noqa: E402
                        translator_step)

from interlingua_jax.bridges.translator.rows import Lengths  # noqa: E402
from interlingua_jax.models import CausalLM, generate, init_params  # noqa: E402
from interlingua_jax.models.frozen import resolve_layer  # noqa: E402
from interlingua_jax.models.sharding import make_mesh  # noqa: E402
from interlingua_jax.training.state import global_batch  # noqa: E402



def seconds(fn, repeats: int = 3) -> float:
  jax.block_until_ready(fn())  # compile + warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)


def left_padded(rng, batch: int, length: int, vocab: int):
  pads = rng.integers(0, length // 2, size=batch)
  pads[0] = 0
  mask = (np.arange(length)[None, :] >= pads[:, None]).astype(np.int32)
  return rng.integers(3, vocab, size=(batch, length)).astype(np.int32) * mask, mask


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--prompt_len", type=int, default=1024)
  parser.add_argument("--new_tokens", type=int, default=64)
  parser.add_argument("--source_len", type=int, default=1024)
  parser.add_argument("--answer_len", type=int, default=256)
  parser.add_argument("--smoke", action="store_true")
  parser.add_argument("--skip_train", action="store_true")
  parser.add_argument("--impls", default="xla,cudnn", help="compared against the first (--impls=xla,xla on a CPU)")
  args = parser.parse_args()
  impls = args.impls.split(",")
  from configs import stable_64
  cfg = stable_64.get_config()
  source_config, target_config = MISTRAL_7B_V03, LLAMA_31_8B
  if args.smoke:
    source_config, target_config = (dataclasses.replace(c, **SMOKE_MODEL) for c in (source_config, target_config))
    cfg.translator.update(**SMOKE_TRANSLATOR)
  mesh = make_mesh(-1, 1)
  print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}: random bf16 weights, target "
        f"{target_config.num_layers}x{target_config.hidden_size}; batch {args.batch}, left-padded prompts of "
        f"{args.prompt_len}", flush=True)
  target_params = init_params(target_config, jax.random.key(0), jnp.bfloat16, mesh)
  models = {impl: CausalLM(target_config, target_params, mesh, attention_impl=impl) for impl in impls}
  ids, mask = left_padded(np.random.default_rng(0), args.batch, args.prompt_len, target_config.vocab_size)
  logits = {impl: np.asarray(m(input_ids=ids, attention_mask=mask, output_hidden_states=False).logits, np.float32)
            for impl, m in models.items()}
  real = mask.astype(bool)
  ref, new = (logits[impl] for impl in (impls[0], impls[-1]))
  diff = np.abs(new - ref)[real].max() / np.abs(ref[real]).max()
  agree = (new.argmax(-1) == ref.argmax(-1))[real].mean()
  print(f"forward logits: max |{impls[-1]} - {impls[0]}| / max |{impls[0]}| = {diff:.2e} over real positions; "
        f"argmax agrees at {agree:.2%} of them")
  out = {impl: generate(m, input_ids=ids, attention_mask=mask, max_new_tokens=args.new_tokens, pad_token_id=0)
         for impl, m in models.items()}
  ref, new = (np.asarray(out[impl].tokens) for impl in (impls[0], impls[-1]))
  same_rows = [int((new[i] == ref[i]).all()) for i in range(args.batch)]
  first_diff = [int(np.argmax(new[i] != ref[i])) if not same_rows[i] else None for i in range(args.batch)]
  print(f"greedy tokens ({args.new_tokens} new): {sum(same_rows)}/{args.batch} rows identical; first differing "
        f"step per row: {first_diff}")
  for impl, m in models.items():
    fwd = seconds(lambda: m(input_ids=ids, attention_mask=mask, compute_logits=False, output_hidden_states=False))
    dec = seconds(lambda: generate(m, input_ids=ids, attention_mask=mask, max_new_tokens=args.new_tokens,
                                   eos_token_id=-1, pad_token_id=0).tokens)
    print(f"  {impl:<6} forward {fwd * 1e3:8.1f} ms   generate {args.new_tokens} tokens {dec * 1e3:8.1f} ms",
          flush=True)
  if args.skip_train:
    return
  del models
  source = CausalLM(source_config, init_params(source_config, jax.random.key(1), jnp.bfloat16, mesh), mesh)
  target = CausalLM(target_config, target_params, mesh)
  layer = resolve_layer(cfg.source.layer, source_config.num_layers)
  t = cfg.translator
  lengths = Lengths(source=args.source_len, target=1 + t.num_soft_tokens + 2 + args.answer_len + 1,
                    question=64, answer=args.answer_len)
  batch = global_batch(synthetic_batch(np.random.default_rng(0), lengths, batch=args.batch,
                                       num_soft_tokens=t.num_soft_tokens, source_vocab=source_config.vocab_size,
                                       target_vocab=target_config.vocab_size), mesh)
  print(f"train step (stable_64: M={t.num_soft_tokens}, remat={cfg.train.remat}), batch {args.batch}, source "
        f"{lengths.source}, target {lengths.target} tokens:")
  for impl in dict.fromkeys(impls):
    c = copy.deepcopy(cfg)  # the translator of seed 0, InfoNCE from step 0, both frozen models under `impl`
    c.seed, c.loss.infonce_start_step, c.model.attention_impl = 0, 0, impl
    state, step, _ = translator_step(c, source, target, layer, lengths, mesh)
    run = steps_runner(step, state, (source.params, target.params), batch)
    run(1)
    start = time.perf_counter()
    _, metrics = jax.block_until_ready(run(3))
    print(f"  {impl:<6} {(time.perf_counter() - start) / 3 * 1e3:8.1f} ms/step, loss {float(metrics['loss']):.4f}",
          flush=True)


if __name__ == "__main__":
  main()
