"""Per-device memory of a config's real train step and 8B decode, from the compiler, with no weights.

Lowers and compiles the project's own jitted programs — `training.step.make_train_step` with the translator
kind's loss (`bridges.translator.kind.translator_training`: source forward,
translator, target forward + input-gradient backward, AdamW) and the target's generation (`_start`:
prefill + first token, `_advance`: the decode loop) — from abstract arrays only
(`jax.ShapeDtypeStruct`, `jax.eval_shape`, `nnx.eval_shape`) at the real Mistral-7B-v0.3 / Llama-3.1-8B
shapes, on N simulated CPU devices, for each mesh.model in --models (mesh.data = N / model). Prints
XLA's `memory_analysis()` per device: arguments, outputs, temporaries, and the peak they imply
(arguments + outputs - aliased (donated) + temporaries).

  python benchmarks/memory_plan.py --config=configs/stable_64.py [--devices=4 --models=1,2,4]

The CPU backend inflates temporaries relative to a GPU: it computes bf16 dots in float32 (upcasting
the operands) and its while-loop-invariant code motion hoists float32 copies of whole weight stacks out
of the layer scan. This script disables that pass by default
(`--xla_disable_hlo_passes=while-loop-invariant-code-motion`, `--licm` keeps it, to see the
difference); the remaining inflation is the per-layer float32 upcasts of bf16 operands, so the
temporaries are an upper bound for a GPU, while arguments (weights, state, batch) are exact.
Checkpoint paths with a config.json are read; hub ids (the default) use the shapes of the real
checkpoints. Batch shapes are the worst case the config allows: source prompts of data.max_source_len
tokens, target rows of 1 + M + anchor + data.max_answer_len + 1 tokens, prompts of eval's largest
length bucket for decoding.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default=os.path.join(ROOT, "configs", "stable_64.py"))
  parser.add_argument("--devices", type=int, default=4, help="simulated devices (the GPUs of the run)")
  parser.add_argument("--models", default="1,2,4", help="mesh.model values; mesh.data = devices / model")
  parser.add_argument("--licm", action="store_true", help="keep XLA's while-loop-invariant code motion")
  parser.add_argument("--skip_decode", action="store_true")
  return parser.parse_args()


ARGS = parse_args()
flags = [f"--xla_force_host_platform_device_count={ARGS.devices}"]
if not ARGS.licm:
  flags.append("--xla_disable_hlo_passes=while-loop-invariant-code-motion")
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
os.environ["JAX_PLATFORMS"] = "cpu"

import importlib.util  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from forward import LLAMA_31_8B  # noqa: E402
from train_step import MISTRAL_7B_V03  # noqa: E402

from interlingua_jax.bridges.translator.kind import translator_training  # noqa: E402
from interlingua_jax.bridges.translator.module import Translator  # noqa: E402
from interlingua_jax.bridges.translator.rows import Lengths  # noqa: E402
from interlingua_jax.models import CausalLM, init_params  # noqa: E402
from interlingua_jax.models.frozen import resolve_layer  # noqa: E402
from interlingua_jax.models.generate import _advance, _start  # noqa: E402
from interlingua_jax.models.loading import read_config  # noqa: E402
from interlingua_jax.models.sharding import batch_sharding, make_mesh, param_shardings  # noqa: E402
from interlingua_jax.training import optim  # noqa: E402
from interlingua_jax.training.state import TrainState, split_module  # noqa: E402
from interlingua_jax.training.step import make_train_step  # noqa: E402

REAL = {"mistralai/Mistral-7B-Instruct-v0.3": MISTRAL_7B_V03, "meta-llama/Llama-3.1-8B-Instruct": LLAMA_31_8B}
ANCHOR_TOKENS = 3  # "Answer:" in the Llama-3 tokenizer, a token more for safety
QUESTION_TOKENS = 256
GB = 1e9


def load_config(path: str):
  spec = importlib.util.spec_from_file_location("plan_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def model_config(path: str):
  if os.path.isfile(os.path.join(path, "config.json")):
    return read_config(path)
  if path not in REAL:
    sys.exit(f"{path!r}: neither a checkpoint directory with config.json nor one of {sorted(REAL)}")
  return REAL[path]


def abstract(tree, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def frozen_params(config, dtype, mesh):
  shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0), dtype))
  return abstract(shapes, param_shardings(config, mesh))


def report(name: str, compiled, seconds: float) -> float:
  m = compiled.memory_analysis()
  peak = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
  print(f"  {name:<34} args {m.argument_size_in_bytes / GB:7.2f}  out {m.output_size_in_bytes / GB:6.2f}  "
        f"aliased {m.alias_size_in_bytes / GB:6.2f}  temp {m.temp_size_in_bytes / GB:7.2f}  "
        f"peak {peak / GB:7.2f} GB   (traced + compiled in {seconds:.0f} s)", flush=True)
  return peak


def compile_timed(lower):
  """(compiled, seconds to trace, lower and compile) of `lower()`."""
  start = time.perf_counter()
  compiled = lower().compile()
  return compiled, time.perf_counter() - start


def train_plan(cfg, mesh, source_config, target_config):
  t, d = cfg.translator, cfg.data
  source = CausalLM(source_config, frozen_params(source_config, cfg.source.dtype, mesh), mesh)
  target = CausalLM(target_config, frozen_params(target_config, cfg.target.dtype, mesh), mesh)
  layer = resolve_layer(cfg.source.layer, source_config.num_layers)
  make = lambda: Translator(source_dim=source_config.hidden_size, target_dim=target_config.hidden_size,
                            num_soft_tokens=t.num_soft_tokens, bottleneck=t.bottleneck, depth=t.depth,
                            num_heads=t.num_heads, dropout=t.dropout, target_embed_rms=1.0,
                            rngs=nnx.Rngs(params=0, dropout=1))
  tx, schedule = optim.from_config(cfg.optim, cfg.train.steps)

  def initial_state():
    _, params, rest = split_module(make())
    return TrainState(jnp.zeros((), jnp.int32), params, rest, tx.init(params))

  graphdef = nnx.split(nnx.eval_shape(make), nnx.Param, ...)[0]
  state = jax.eval_shape(initial_state)
  lengths = Lengths(source=d.max_source_len, target=1 + t.num_soft_tokens + ANCHOR_TOKENS + d.max_answer_len + 1,
                    question=QUESTION_TOKENS, answer=d.max_answer_len)
  b = cfg.train.batch_size
  row = lambda n: jax.ShapeDtypeStruct((b, n), jnp.int32)
  batch = {f"target_{k}": row(lengths.target) for k in ("token_ids", "soft_index", "attention_mask", "positions",
                                                          "labels", "loss_mask")}
  batch.update(source_ids=row(lengths.source), source_mask=row(lengths.source), question_ids=row(lengths.question),
               question_mask=row(lengths.question))
  loss, frozen_shardings = translator_training(cfg, source, target, layer, lengths, mesh)
  step = make_train_step(mesh=mesh, loss=loss, frozen_shardings=frozen_shardings, graphdef=graphdef, tx=tx,
                         schedule=schedule)
  lower = lambda: step.lower(state, (source.params, target.params), batch)
  return (f"train step B={b} src={lengths.source} tgt={lengths.target}", *compile_timed(lower))


def decode_plan(cfg, mesh, target_config):
  e = cfg.eval
  params = frozen_params(target_config, cfg.target.dtype, mesh)
  b, prompt = e.batch_size, max(e.length_buckets)
  ids = jax.ShapeDtypeStruct((b, prompt), jnp.int32, sharding=batch_sharding(mesh))
  static = dict(max_new_tokens=e.max_new_tokens, eos_token_id=target_config.eos_token_id, pad_token_id=0,
                repetition_penalty=1.0, no_repeat_ngram_size=0, attention_impl=cfg.model.attention_impl)
  start_compiled = compile_timed(lambda: _start.lower(params, target_config, ids, None, ids, **static))
  state = jax.eval_shape(lambda p, i: _start(p, target_config, i, None, i, **static), params, ids)
  state = abstract(state, start_compiled[0].output_shardings)  # the decode loop gets prefill's layout
  stopped = jax.ShapeDtypeStruct((b,), bool)
  advance = lambda: _advance.lower(params, target_config, state, jax.ShapeDtypeStruct((), jnp.int32), stopped,
                                   **static)
  name = f"B={b} prompt={prompt} new={e.max_new_tokens}"
  return [(f"8B prefill {name}", *start_compiled), (f"8B decode loop {name}", *compile_timed(advance))]


def main() -> None:
  cfg = load_config(ARGS.config)
  source_config, target_config = model_config(cfg.source.path), model_config(cfg.target.path)
  print(f"{ARGS.config}: {ARGS.devices} simulated CPU devices, XLA_FLAGS={os.environ['XLA_FLAGS']!r}; "
        f"source {source_config.num_layers}x{source_config.hidden_size}, target {target_config.num_layers}x"
        f"{target_config.hidden_size}, {cfg.source.dtype}/{cfg.target.dtype}, remat={cfg.train.remat}, "
        f"attention={cfg.model.attention_impl}. GB = 1e9 bytes, per device.", flush=True)
  begin = time.perf_counter()
  for model in (int(m) for m in ARGS.models.split(",")):
    mesh = make_mesh(data=ARGS.devices // model, model=model)
    print(f"mesh data={ARGS.devices // model} model={model}:", flush=True)
    report(*train_plan(cfg, mesh, source_config, target_config))
    if not ARGS.skip_decode:
      for plan in decode_plan(cfg, mesh, target_config):
        report(*plan)
  print(f"total {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
  main()
