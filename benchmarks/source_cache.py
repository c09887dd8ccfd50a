"""The train step with and without cached frozen-source states (`bridges/translator/source_cache.py`), same batches.

Both sides run the project's one jitted step (`train_step.translator_step`, the wiring of
`run.stages.training_step`: the translator kind's loss -> `training.step.make_train_step`) on the same
batch: "forward" gives it `source_ids`/`source_mask` and the step runs the frozen source's forward; "cached"
gives it the same batch plus `source_states` gathered from a cache that `source_cache.load_or_build` computed
beforehand (its one-off build time is printed too) and left-padded by `pipeline.add_source_states`, the
pipeline's own gather, which is timed with the step (as is each side's host-to-device copy of its batch).
The step-0 losses are compared first. Medians of interleaved rounds (`timing.interleaved`).

Batches: random ids in the pipeline's row layout (`train_step.synthetic_batch`), each row's prompt of a length
drawn from [--min_source_len, --source_len] and left-padded to --source_len, an answer of --answer_len tokens.
A small translator (M=16, b=256, depth 2, 4 heads, no dropout), float32 frozen models, the source's last layer
(toy) or layer 16 of 24 (real); configs/base.py otherwise (remat on).

  python benchmarks/source_cache.py                   # toy: small random Mistral -> Llama (d=256, 4 layers)
  python benchmarks/source_cache.py --pair real       # zoo:qwen2.5-coder-0.5b-instruct -> zoo:smollm2-135m-instruct
"""
import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]  # `configs` and the tiny checkpoints, as train_step.py does

import timing  # noqa: E402
from conftest import build_tiny_tokenizer, save_tiny_hf_model  # noqa: E402  (it asks for 4 CPU devices; main sets 1)
from train_step import synthetic_batch, translator_step  # noqa: E402

from interlingua_jax.bridges.translator import source_cache  # noqa: E402
from interlingua_jax.bridges.translator.rows import Lengths  # noqa: E402
from interlingua_jax.core import cli  # noqa: E402
from interlingua_jax.data import pipeline  # noqa: E402
from interlingua_jax.models.frozen import resolve_layer  # noqa: E402
from interlingua_jax.models.loading import load_model  # noqa: E402
from interlingua_jax.models.sharding import make_mesh  # noqa: E402
from interlingua_jax.training.state import global_batch  # noqa: E402

TOY_SHAPE = dict(vocab_size=8192, hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=4, head_dim=32, max_position_embeddings=4096, initializer_range=0.02)
# A small translator and float32 frozen models (bfloat16 matmuls are slower than float32 on a CPU).
TRANSLATOR = {"translator.num_soft_tokens": 16, "translator.bottleneck": 256, "translator.depth": 2,
              "translator.num_heads": 4, "translator.dropout": 0.0, "source.dtype": "float32",
              "target.dtype": "float32"}
GATE_VALUE = 0.5  # open gates: with the initial 0 the soft tokens would ignore the source


def toy_models(work: str) -> tuple[str, str]:
  paths = os.path.join(work, "mistral"), os.path.join(work, "llama")
  for seed, (model_type, path) in enumerate(zip(("mistral", "llama"), paths)):
    save_tiny_hf_model(path, model_type, build_tiny_tokenizer(), seed=seed, **TOY_SHAPE)
  return paths


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pair", choices=("toy", "real"), default="toy")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--source_len", type=int, default=None, help="padded width; default 512 (real), 256 (toy)")
  parser.add_argument("--min_source_len", type=int, default=None, help="default 400 (real), 192 (toy)")
  parser.add_argument("--answer_len", type=int, default=32)
  parser.add_argument("--question_len", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds of one step per side")
  args = parser.parse_args(argv[1:])
  longest = args.source_len or (512 if args.pair == "real" else 256)
  shortest = args.min_source_len or (400 if args.pair == "real" else 192)
  jax.config.update("jax_num_cpu_devices", 1)

  from configs import base
  cfg = base.get_config()
  cfg.update_from_flattened_dict(TRANSLATOR)
  with tempfile.TemporaryDirectory() as work:
    if args.pair == "real":
      cfg.source.path, cfg.target.path = "zoo:qwen2.5-coder-0.5b-instruct", "zoo:smollm2-135m-instruct"
      cfg.source.layer = 16  # of 24
    else:
      cfg.source.path, cfg.target.path = toy_models(work)
    mesh = make_mesh(-1, 1)
    source, target = (load_model(side.path, dtype=side.dtype, mesh=mesh) for side in (cfg.source, cfg.target))
    layer = resolve_layer(cfg.source.layer, source.config.num_layers)
    m = cfg.translator.num_soft_tokens
    lengths = Lengths(source=longest, target=1 + m + 2 + args.answer_len + 1, question=args.question_len,
                      answer=args.answer_len)
    rng = np.random.default_rng(0)
    batch = synthetic_batch(rng, lengths, batch=args.batch, num_soft_tokens=m,
                            source_vocab=source.config.vocab_size, target_vocab=target.config.vocab_size)
    prompt = rng.integers(shortest, longest + 1, size=args.batch)
    batch["source_mask"] = (np.arange(longest)[None, :] >= longest - prompt[:, None]).astype(np.int32)
    rows = [{k: v[r] for k, v in batch.items()} for r in range(args.batch)]

    start = time.perf_counter()
    cache = source_cache.load_or_build(
        os.path.join(work, "cache"), rows, model_path=cfg.source.path, params=source.params, config=source.config,
        layer=layer, dtype=cfg.source.dtype, attention_impl=cfg.model.attention_impl, mesh=mesh,
        length_buckets=(longest,), batch_size=args.batch)
    build_s = time.perf_counter() - start
    indexed = dict(batch, **{pipeline.SOURCE_INDEX: np.arange(args.batch, dtype=np.int32)})

    frozen_params = (source.params, target.params)
    steps = {}
    for name in ("forward", "cached"):
      state, step, _ = translator_step(cfg, source, target, layer, lengths, mesh, gates=GATE_VALUE)
      steps[name] = [state, step]

    def run(name: str):
      """One step of `name` on the batch, the cached side's gather and both sides' device copy included."""
      host = batch if name == "forward" else pipeline.add_source_states(indexed, cache)
      state, step = steps[name]
      steps[name][0], metrics = step(state, frozen_params, global_batch(host, mesh))
      return metrics

    first = {name: float(run(name)["loss"]) for name in steps}  # step 0 (and the compilation)
    times = timing.interleaved({name: (lambda name=name: run(name)) for name in steps}, rounds=args.repeats)

  src, tgt = source.config, target.config
  print(f"{os.cpu_count()} CPU cores, {cfg.source.dtype}. Source {cfg.source.path if args.pair == 'real' else 'toy'} "
        f"{src.model_type} d={src.hidden_size} x {src.num_layers} layers (layer {layer}); target {tgt.model_type} "
        f"d={tgt.hidden_size} x {tgt.num_layers} layers; translator M={m}, b={cfg.translator.bottleneck}, depth "
        f"{cfg.translator.depth}. Batch {args.batch}, source prompts of {sorted(prompt.tolist())} tokens padded to "
        f"{longest}, target row {lengths.target}.")
  print(f"cache build (once): {build_s:.2f} s for {args.batch} examples, {cache.states.nbytes / 1e6:.1f} MB")
  print(f"step-0 loss: forward {first['forward']:.6f}, cached {first['cached']:.6f} "
        f"(relative difference {abs(first['cached'] / first['forward'] - 1):.1e})")
  print(f"median of {args.repeats} interleaved rounds, one step each, after one warm-up step each:")
  for name, t in times.items():
    lo, hi = t.spread
    print(f"  {name:<8} {t.median * 1e3:10.1f} ms/step   [{lo * 1e3:.1f}, {hi * 1e3:.1f}]")
  print(f"speed-up forward / cached: {times['forward'].median / times['cached'].median:.2f}x")


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
