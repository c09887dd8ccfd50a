"""Throughput of the bridge's jitted train step: frozen source forward → translator → frozen target
forward and input-gradient backward → AdamW on the translator.

CPU (default): small random Mistral (source) and Llama (target) models, float32, written by transformers'
`save_pretrained` and read back by the project's `from_pretrained` (`run.setup.setup`), so both sides use the
same weights. The JAX side is the project's own step (`run.stages.training_step` ->
`training.step.make_train_step` with the translator kind's loss) on a batch from the
project's pipeline; the PyTorch side is the reference step of `tests/torch_bridge.py` (transformers models,
the translator re-written in torch, `torch.optim.AdamW` with the same groups, schedule and clipping) on the
same numpy arrays, the one `tests/test_torch_bridge.py` checks loss and gradients of. The JAX translator's
parameters (gates opened, so every branch counts) are copied into the torch one and the step-0 losses
compared before timing; dropout is set to 0 so that they can agree (the two frameworks would draw
different masks). `--torch_threads` (default: all cores, as XLA uses) matters on a loaded machine:
torch's OpenMP threads slow down sharply when the cores are oversubscribed.

  python benchmarks/train_step.py [--batch 8 --steps 5 --repeats 3 --d_model 256 --layers 4 ...]

GPU: `--gpu_stable64` runs the stable_64 shapes (Mistral-7B source, Llama-3.1-8B target, translator
M=64, b=1024, depth 8, 16 heads, remat as configured) with random bf16 frozen weights (no torch), and
prints the step time and model FLOP utilisation (`flops.train_step_flops`) against `--peak_flops`
(default 989e12 = H100 SXM dense bf16; an H200 has the same compute peak). `--smoke` shrinks every shape
so the path runs on a CPU.

  python benchmarks/train_step.py --gpu_stable64 [--batch 8 --source_len 512 --answer_len 256]
  python benchmarks/train_step.py --gpu_stable64 --smoke
"""
import argparse
import dataclasses
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# configs/ and tests/ are not installed with the package: the repository root (for `configs`) and tests/
# (first on the path, as pytest puts it, for the PyTorch reference and the tiny system the tests use).
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import timing  # noqa: E402
from shapes import LLAMA_31_8B, MISTRAL_7B_V03  # noqa: E402
from tiny_system import fixed_batch, frozen, jax_step, open_gates, system, tiny_config, write_data  # noqa: E402

from interlingua_jax.bridges.translator.kind import new_translator, translator_training  # noqa: E402
from interlingua_jax.bridges.translator.rows import Lengths  # noqa: E402
from interlingua_jax.core import cli  # noqa: E402
from interlingua_jax.data import layout  # noqa: E402
from interlingua_jax.models import CausalLM, flops, init_params  # noqa: E402
from interlingua_jax.models.sharding import make_mesh  # noqa: E402
from interlingua_jax.training import optim  # noqa: E402
from interlingua_jax.training.state import count_params, global_batch, init_state  # noqa: E402
from interlingua_jax.training.step import make_train_step  # noqa: E402

SMOKE_MODEL = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                   head_dim=16)
SMOKE_TRANSLATOR = dict(num_soft_tokens=8, bottleneck=64, depth=2, num_heads=4)
LOSS_RTOL = 1e-4  # a quick check that both sides do the same work; tests/test_torch_bridge.py is the real one
GATE_VALUE = 0.5  # tanh(0.5) ≈ 0.46: at the initial 0 every branch but the queries would be multiplied away


def steps_runner(step, state, frozen_params, batch):
  """run(n) runs n steps (the state is donated and threaded through) and returns the last step's metrics;
  run.arguments() gives the step's current arguments."""

  def run(num_steps: int):
    nonlocal state
    for _ in range(num_steps):
      state, metrics = step(state, frozen_params, batch)
    return state, metrics

  run.arguments = lambda: (state, frozen_params, batch)
  return run


def translator_step(cfg, source: CausalLM, target: CausalLM, layer: int, lengths: Lengths, mesh, *,
                    gates: float | None = None):
  """The project's jitted train step between two LMs built here (no setup, no data files): what
  `run.stages.training_step` wires for a run (the kind's loss at `lengths`, the config's optimizer, a fresh
  translator of the config, its replicated state), `gates` opening the translator's gates first.
  (state, step, schedule)."""
  translator = new_translator(cfg, source, target)
  if gates is not None:
    open_gates(translator, gates)
  loss, frozen_shardings = translator_training(cfg, source, target, layer, lengths, mesh)
  tx, schedule = optim.from_config(cfg.optim, cfg.train.steps)
  graphdef, state = init_state(translator, tx, mesh)
  step = make_train_step(mesh=mesh, loss=loss, frozen_shardings=frozen_shardings, graphdef=graphdef, tx=tx,
                         schedule=schedule)
  return state, step, schedule


def compiled_flops(step, *arguments) -> float:
  """The FLOPs XLA counts in the compiled step (matmuls and elementwise work, attention included)."""
  cost = step.lower(*arguments).compile().cost_analysis()
  return float((cost[0] if isinstance(cost, list) else cost)["flops"])


# --------------------------------------------------------------------------------------------------
# CPU: JAX against PyTorch


def cpu(args) -> None:
  import torch
  import torch_bridge
  from conftest import build_tiny_tokenizer, save_tiny_hf_model
  from transformers.utils import logging as hf_logging

  jax.config.update("jax_num_cpu_devices", 1)  # conftest simulates 4 devices for the sharding tests
  torch.set_num_threads(args.torch_threads)
  hf_logging.disable_progress_bar()
  shape = dict(vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=args.mlp,
               num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
               head_dim=args.d_model // args.heads, max_position_embeddings=4096, initializer_range=0.02)
  total_steps = 2 + (args.repeats + 1) * args.steps  # step 0, warm-up, timed rounds, the last loss
  schedule_steps = total_steps + args.steps  # and the traced steps
  with tempfile.TemporaryDirectory() as work:
    tokenizer = build_tiny_tokenizer()
    dirs = {name: os.path.join(work, name) for name in ("mistral", "llama")}
    for seed, (model_type, path) in enumerate(dirs.items()):
      save_tiny_hf_model(path, model_type, tokenizer, seed=seed, **shape)
    cfg = tiny_config(dirs["mistral"], dirs["llama"], write_data(work))
    cfg.translator.update(num_soft_tokens=args.soft_tokens, bottleneck=args.bottleneck, depth=args.depth,
                          num_heads=args.translator_heads, dropout=0.0)
    cfg.data.num_shots, cfg.data.max_source_len = args.num_shots, 4096  # no exemplar dropped to fit
    cfg.train.steps = schedule_steps + 1  # the schedule decays to 0 at train.steps: keep lr > 0 throughout
    cfg.train.cache_source_states = False  # the batch carries no cached states: the step runs the source
    run, kind, s = system(cfg, work)
    batch, lengths = fixed_batch(run, s, args.batch)
    state, step, schedule = jax_step(run, kind, s, gates=GATE_VALUE)
    f, t = frozen(run, kind, s), cfg.translator
    module = torch_bridge.translator_copy(state.params, f, t)  # every parameter matched by name
    num_params = count_params(state.params)
    source, target = torch_bridge.frozen_models(dirs["mistral"], dirs["llama"])
  torch_step = torch_bridge.make_step(cfg, source, target, module, batch, source_layer=f.source_layer,
                                      answer_window=lengths.answer + 2,
                                      schedule_values=np.asarray(jax.vmap(schedule)(jnp.arange(schedule_steps + 1))))
  run_jax = steps_runner(step, state, (f.source.params, f.target.params), global_batch(batch, s.mesh))

  def run_torch(num_steps: int) -> dict[str, float]:
    for _ in range(num_steps):
      metrics = torch_step()
    return metrics

  first = {"jax": jax.device_get(run_jax(1)[1]), "torch": run_torch(1)}  # step 0 (and the compilation)
  for k in ("ce", "infonce", "loss"):
    np.testing.assert_allclose(first["torch"][k], float(first["jax"][k]), rtol=LOSS_RTOL,
                               err_msg=f"step-0 {k}: the PyTorch step does not compute what the JAX step does")
  times = timing.interleaved({"pytorch (eager)": lambda: run_torch(args.steps),
                              "jax jit": lambda: run_jax(args.steps)}, rounds=args.repeats)
  last = {"jax": float(run_jax(1)[1]["loss"]), "torch": run_torch(1)["loss"]}

  src_c, tgt_c = f.source.config, f.target.config
  print(f"CPU: {os.cpu_count()} cores (torch.set_num_threads({torch.get_num_threads()}), XLA uses all), float32. "
        f"Source Mistral / target Llama: d={args.d_model}, {args.layers} layers, {args.heads}/{args.kv_heads} "
        f"heads, MLP {args.mlp}, vocab {args.vocab}. Translator M={t.num_soft_tokens}, b={t.bottleneck}, depth "
        f"{t.depth}, {t.num_heads} heads: {num_params:,} params on both sides. Batch {args.batch}, source "
        f"{lengths.source} tokens ({args.num_shots}-shot), target {lengths.target} (answer window "
        f"{lengths.answer + 2}), source layer {f.source_layer}/{src_c.num_layers}, target "
        f"{tgt_c.num_layers} layers.")
  print(f"step-0 losses with the JAX translator copied into torch (gates at {GATE_VALUE}, dropout 0) agree within "
        f"rtol {LOSS_RTOL:g}: " + ", ".join(f"{k} jax {float(first['jax'][k]):.6f} torch {first['torch'][k]:.6f}"
                                           for k in ("ce", "infonce", "loss")))
  print(f"{args.steps} steps per round, median of {args.repeats} interleaved rounds (min-max in brackets), "
        f"after 1 + {args.steps} warm-up steps each")
  print(f"{'':<18}{'ms/step':>10}{'samples/s':>12}   range ms/step")
  for name, tm in times.items():
    lo, hi = (x / args.steps * 1e3 for x in tm.spread)
    print(f"{name:<18}{tm.median / args.steps * 1e3:>10.1f}{args.batch * args.steps / tm.median:>12.1f}   "
          f"[{lo:.1f}, {hi:.1f}]")
  print(f"ratio jax / pytorch samples/s: {times['pytorch (eager)'].median / times['jax jit'].median:.2f}")
  flop, seconds = compiled_flops(step, *run_jax.arguments()), times["jax jit"].median / args.steps
  print(f"the JAX step is {flop / 1e9:.2f} GFLOP (XLA's cost analysis): {flop / seconds / 1e9:.0f} GFLOP/s")
  print(f"loss after {total_steps} steps on the same batch: jax {last['jax']:.6f}, torch {last['torch']:.6f}")
  if args.trace_dir:
    with jax.profiler.trace(args.trace_dir):
      jax.block_until_ready(run_jax(args.steps))
    print(f"jax.profiler trace of {args.steps} JAX steps written under {args.trace_dir}")


# --------------------------------------------------------------------------------------------------
# GPU: stable_64 shapes, model FLOP utilisation


def synthetic_batch(rng: np.random.Generator, lengths: Lengths, *, batch: int, num_soft_tokens: int,
                    source_vocab: int, target_vocab: int) -> dict[str, np.ndarray]:
  """Random ids in the translator's row layout (`bridges.translator.rows.encode_example`): unpadded source and
  question, a 2-token anchor ("Answer: ") and an answer of `lengths.answer` tokens. Ids 0, 1, 2 are pad, BOS, EOS."""
  ids = lambda vocab, n: rng.integers(3, vocab, size=(batch, n))
  row = layout.bridged_batch(ids(target_vocab, 2).tolist(), ids(target_vocab, lengths.answer).tolist(),
                             num_soft_tokens=num_soft_tokens, seq_len=lengths.target, bos_id=1, pad_id=0, eos_id=2)
  out = {f"target_{k}": v for k, v in row._asdict().items()}
  out["source_ids"] = ids(source_vocab, lengths.source).astype(np.int32)
  out["source_mask"] = np.ones((batch, lengths.source), np.int32)
  out["question_ids"] = ids(target_vocab, lengths.question).astype(np.int32)
  out["question_mask"] = np.ones((batch, lengths.question), np.int32)
  return out


def gpu_stable64(args) -> None:
  from configs import stable_64
  cfg = stable_64.get_config()
  source_config, target_config = MISTRAL_7B_V03, LLAMA_31_8B
  if args.smoke:
    source_config, target_config = (dataclasses.replace(c, **SMOKE_MODEL) for c in (source_config, target_config))
    cfg.translator.update(**SMOKE_TRANSLATOR)
  if args.dropout is not None:
    cfg.translator.dropout = args.dropout
  t = cfg.translator
  mesh = make_mesh(-1, 1)
  source, target = (CausalLM(c, init_params(c, jax.random.key(i), jnp.bfloat16, mesh), mesh)
                    for i, c in enumerate((source_config, target_config)))
  layer = cfg.source.layer % (source_config.num_layers + 1)
  lengths = Lengths(source=args.source_len, target=1 + t.num_soft_tokens + 2 + args.answer_len + 1,
                    question=args.question_len, answer=args.answer_len)
  batch = synthetic_batch(np.random.default_rng(0), lengths, batch=args.batch, num_soft_tokens=t.num_soft_tokens,
                          source_vocab=source_config.vocab_size, target_vocab=target_config.vocab_size)
  state, step, _ = translator_step(cfg, source, target, layer, lengths, mesh)
  n_tr = count_params(state.params)
  run = steps_runner(step, state, (source.params, target.params), global_batch(batch, mesh))
  secs = timing.once(lambda: run(args.steps), rounds=args.repeats).median / args.steps

  b, window = args.batch, lengths.answer + 2
  parts = flops.train_step_flops(source=source_config, source_layers=layer, target=target_config,
                                 bridge_params=n_tr, batch=b, source_len=lengths.source,
                                 target_len=lengths.target, answer_window=window, num_soft_tokens=t.num_soft_tokens)
  tokens = {"source forward": f"2·N_src per source token, {b}×{lengths.source}",
            "target forward + input backward": f"4·N_tgt per target token, {b}×{lengths.target}",
            "target head (answer window)": f"4·d·V per answer-window token, {b}×{window}",
            "bridge forward + backward": f"6·N_tr per soft token, {b}×{t.num_soft_tokens}"}
  total = sum(parts.values())
  print(f"{jax.devices()[0].device_kind}: stable_64 shapes{' (SMOKE: shrunk)' if args.smoke else ''}, random bf16 "
        f"frozen weights, float32 translator, remat {cfg.train.remat}. Source {source_config.model_type} "
        f"d={source_config.hidden_size} x {source_config.num_layers} layers (layer {layer}), target "
        f"{target_config.model_type} d={target_config.hidden_size} x {target_config.num_layers} layers, translator "
        f"M={t.num_soft_tokens}, b={t.bottleneck}, depth {t.depth}, {t.num_heads} heads (N_tr={n_tr:,}), dropout "
        f"{t.dropout}. Batch {b}; median of {args.repeats} rounds of {args.steps} steps after one warm-up round.")
  for name, f in parts.items():
    print(f"  {name:<34}{tokens[name]:<44}{f / 1e12:>10.4g} TFLOP")
  print(f"  (not counted: attention scores QK^T/PV in all three models; the translator's cross-attention K/V "
        f"projections, which run over the {lengths.source} source positions, are counted at M tokens)")
  print(f"step {secs * 1e3:.1f} ms, {b / secs:.1f} samples/s, {total / 1e12:.4g} TFLOP/step, "
        f"{total / secs / 1e12:.4g} TFLOP/s = MFU {total / secs / args.peak_flops:.1%} of "
        f"{args.peak_flops / 1e12:.0f} TFLOP/s")


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gpu_stable64", action="store_true", help="stable_64 shapes on the accelerator")
  parser.add_argument("--smoke", action="store_true", help="with --gpu_stable64: tiny shapes, runs on a CPU")
  parser.add_argument("--batch", type=int, default=None, help="default 8 (2 with --smoke)")
  parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
  parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported")
  cpu_flags = parser.add_argument_group("CPU (both frozen models get this shape)")
  cpu_flags.add_argument("--trace_dir", default="", help="also write a jax.profiler trace of --steps JAX steps "
                         "there (open it in Perfetto or TensorBoard)")
  cpu_flags.add_argument("--torch_threads", type=int, default=os.cpu_count(),
                         help="torch.set_num_threads; default all cores, as XLA uses")
  for name, default in (("d_model", 256), ("layers", 4), ("heads", 8), ("kv_heads", 4), ("mlp", 768),
                        ("vocab", 8192), ("soft_tokens", 16), ("bottleneck", 256), ("depth", 2),
                        ("translator_heads", 4), ("num_shots", 1)):
    cpu_flags.add_argument(f"--{name}", type=int, default=default)
  gpu_flags = parser.add_argument_group("--gpu_stable64")
  gpu_flags.add_argument("--source_len", type=int, default=None, help="default 512 (32 with --smoke)")
  gpu_flags.add_argument("--answer_len", type=int, default=None, help="default 256 (16 with --smoke)")
  gpu_flags.add_argument("--question_len", type=int, default=None, help="InfoNCE positive; default 64 (8 with --smoke)")
  gpu_flags.add_argument("--dropout", type=float, default=None, help="translator dropout; default stable_64's")
  gpu_flags.add_argument("--peak_flops", type=float, default=989e12, help="peak dense bf16 FLOP/s of the device")
  args = parser.parse_args(argv[1:])
  if args.gpu_stable64:
    defaults = (2, 32, 16, 8) if args.smoke else (8, 512, 256, 64)
    for name, default in zip(("batch", "source_len", "answer_len", "question_len"), defaults):
      setattr(args, name, getattr(args, name) or default)
    gpu_stable64(args)
  else:
    args.batch = args.batch or 8
    cpu(args)


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
