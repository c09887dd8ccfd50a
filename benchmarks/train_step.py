"""Throughput of the bridge's jitted train step: frozen source forward → translator → frozen target
forward and input-gradient backward → AdamW on the translator.

CPU (default): small random Mistral (source) and Llama (target) models, float32, written by transformers'
`save_pretrained` and read back by the project's `from_pretrained` (`runner.setup`), so both sides use the
same weights. The JAX side is the project's own step (`train.make_train_step`) on a batch from the
project's pipeline; the PyTorch side is the same step in eager PyTorch (transformers models plus the
translator re-written in torch, `torch.optim.AdamW` with the same groups, schedule and clipping) on the same
numpy arrays. The JAX translator's parameters (gates opened, so every branch counts) are copied into the
torch one and the step-0 losses compared before timing; dropout is set to 0 so that they can agree
(the two frameworks would draw different masks). `--torch_threads` (default: all cores, as XLA uses) matters
on a loaded machine: torch's OpenMP threads slow down sharply when the cores are oversubscribed.

  python benchmarks/train_step.py [--batch 8 --steps 5 --repeats 3 --d_model 256 --layers 4 ...]

GPU: `--gpu_stable64` runs the stable_64 shapes (Mistral-7B source, Llama-3.1-8B target, translator
M=64, b=1024, depth 8, 16 heads) with random bf16 frozen weights (no torch), and prints the step time and
model FLOP utilisation against `--peak_flops` (default 989e12 = H100 SXM dense bf16; an H200 has the same
compute peak). `--smoke` shrinks every shape so the path runs on a CPU.

  python benchmarks/train_step.py --gpu_stable64 [--batch 8 --source_len 512 --answer_len 256]
  python benchmarks/train_step.py --gpu_stable64 --smoke
"""
import argparse
import dataclasses
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT, os.path.join(ROOT, "tests")]  # forward.py's shapes, configs/, the tests' helpers

from forward import LLAMA_31_8B, matmul_params  # noqa: E402

from interlingua_jax import bridge, cli, layout, runner, train  # noqa: E402
from interlingua_jax.data import pipeline  # noqa: E402
from interlingua_jax.models import CausalLM, DecoderConfig, init_params  # noqa: E402
from interlingua_jax.sharding import make_mesh  # noqa: E402

MISTRAL_7B_V03 = DecoderConfig(
    model_type="mistral", vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
    num_kv_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=1e6, bos_token_id=1, eos_token_id=(2,),
    max_position_embeddings=32768)
SMOKE_MODEL = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                   head_dim=16)
SMOKE_TRANSLATOR = dict(num_soft_tokens=8, bottleneck=64, depth=2, num_heads=4)
LOSS_RTOL = 1e-4  # float32 on both sides; only the order of reductions differs
GATES = ("attn_gate", "cross_gate", "mlp_gate")
GATE_VALUE = 0.5  # tanh(0.5) ≈ 0.46: at the initial 0 every branch but the queries would be multiplied away


def jax_step(cfg, lengths: pipeline.Lengths, mesh, frozen: bridge.Frozen):
  """The project's jitted step and its initial state, gates opened to GATE_VALUE."""
  translator = bridge.make_translator(frozen=frozen, seed=cfg.seed, **{
      k: cfg.translator[k] for k in ("num_soft_tokens", "bottleneck", "depth", "num_heads", "dropout",
                                     "calibrate_rms")})
  for block in translator.blocks:
    for gate in GATES:
      getattr(block, gate)[...] = jnp.float32(GATE_VALUE)
  tx, schedule = train.make_optimizer(cfg, cfg.train.steps)
  graphdef, state = train.init_state(translator, tx, mesh)
  spec = train.LossSpec(cfg.loss.infonce_weight, cfg.loss.infonce_start_step, cfg.loss.temperature,
                        lengths.answer + 2)
  step = train.make_train_step(mesh=mesh, frozen=frozen, graphdef=graphdef, tx=tx, schedule=schedule, spec=spec)
  return state, step, schedule


def steps_runner(step, state, frozen_params, batch):
  """run(n) runs n steps (the state is donated and threaded through) to completion; run.metrics: the last step's."""

  def run(num_steps: int) -> None:
    nonlocal state
    for _ in range(num_steps):
      state, run.metrics = step(state, frozen_params, batch)
    jax.block_until_ready((state, run.metrics))

  return run


# --------------------------------------------------------------------------------------------------
# CPU: JAX against PyTorch


def torch_translator(*, source_dim: int, target_dim: int, num_soft_tokens: int, bottleneck: int, depth: int,
                     num_heads: int, dropout: float, target_embed_rms: float | None):
  """`interlingua_jax.translator.Translator` in torch, with the same parameter names (Linear weights transposed)."""
  import torch
  from torch import nn
  from torch.nn import functional as F

  class Attention(nn.Module):
    def __init__(self, dim: int, kv_dim: int):
      super().__init__()
      self.q, self.k, self.v, self.o = nn.Linear(dim, dim), nn.Linear(kv_dim, dim), nn.Linear(kv_dim, dim), \
          nn.Linear(dim, dim)

    def forward(self, x, kv, kv_mask=None):
      split = lambda t: t.unflatten(-1, (num_heads, -1)).transpose(1, 2)  # (B, H, T, Dh)
      mask = None if kv_mask is None else kv_mask[:, None, None, :].bool()
      out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(kv)), split(self.v(kv)), attn_mask=mask)
      return self.o(out.transpose(1, 2).flatten(2))

  class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
      super().__init__()
      self.w_act, self.w_lin, self.w_out = nn.Linear(dim, hidden), nn.Linear(dim, hidden), nn.Linear(hidden, dim)
      self.dropout = nn.Dropout(dropout)

    def forward(self, x):
      return self.w_out(self.dropout(F.silu(self.w_act(x)) * self.w_lin(x)))

  class Block(nn.Module):
    def __init__(self, dim: int):
      super().__init__()
      self.attn_norm, self.cross_norm, self.mlp_norm = (nn.RMSNorm(dim, eps=1e-6) for _ in range(3))
      self.attn, self.cross = Attention(dim, dim), Attention(dim, source_dim)
      self.mlp = SwiGLU(dim, int(4 * dim * 2 / 3))
      self.attn_gate, self.cross_gate, self.mlp_gate = (nn.Parameter(torch.zeros(())) for _ in range(3))

    def forward(self, x, source, source_mask):
      h = self.attn_norm(x)
      x = x + torch.tanh(self.attn_gate) * self.attn(h, h)
      x = x + torch.tanh(self.cross_gate) * self.cross(self.cross_norm(x), source, source_mask)
      return x + torch.tanh(self.mlp_gate) * self.mlp(self.mlp_norm(x))

  class Translator(nn.Module):
    def __init__(self):
      super().__init__()
      self.queries = nn.Parameter(nn.init.orthogonal_(torch.empty(num_soft_tokens, bottleneck)))
      self.source_norm = nn.RMSNorm(source_dim, eps=1e-6)
      self.blocks = nn.ModuleList(Block(bottleneck) for _ in range(depth))
      self.out_norm = nn.RMSNorm(bottleneck, eps=1e-6)
      self.out = nn.Linear(bottleneck, target_dim)

    def forward(self, source_hidden, source_mask):
      source = self.source_norm(source_hidden.float())
      x = self.queries.expand(source.shape[0], -1, -1)
      for block in self.blocks:
        x = block(x, source, source_mask)
      y = self.out(self.out_norm(x))
      if target_embed_rms is None:
        return y
      return y * (target_embed_rms / torch.sqrt(y.square().mean(-1, keepdim=True) + 1e-6))

  return Translator()


def copy_translator_params(params: nnx.State, module) -> None:
  """JAX translator parameters into the torch module; every parameter on both sides must be matched."""
  import torch
  theirs = dict(module.named_parameters())
  copied = set()
  for path, var in nnx.to_flat_state(params):
    value = np.array(var.get_value())  # a writable copy for torch.from_numpy
    name = ".".join(str(p) for p in path[:-1] + ({"kernel": "weight", "scale": "weight"}.get(path[-1], path[-1]),))
    if path[-1] == "kernel":
      value = value.T  # (in, out) -> torch's (out, in)
    with torch.no_grad():
      theirs[name].copy_(torch.from_numpy(value))
    copied.add(name)
  if copied != set(theirs):
    raise AssertionError(f"translator parameters differ: jax only {copied - set(theirs)}, "
                         f"torch only {set(theirs) - copied}")


def torch_step_fn(cfg, s, lengths, batch: dict[str, np.ndarray], translator, schedule_values: np.ndarray):
  """The bridged train step in eager PyTorch: same losses, optimizer groups, schedule and clipping as train.py."""
  import torch
  from torch.nn import functional as F
  from transformers import LlamaForCausalLM, MistralForCausalLM

  from interlingua_jax import optim

  source = MistralForCausalLM.from_pretrained(cfg.source.path, dtype=torch.float32).eval().requires_grad_(False)
  target = LlamaForCausalLM.from_pretrained(cfg.target.path, dtype=torch.float32).eval().requires_grad_(False)
  embeds = target.get_input_embeddings()
  t = {k: torch.from_numpy(v).long() for k, v in batch.items()}
  source_positions = (t["source_ids"].new_tensor(batch["source_mask"]).cumsum(-1) - 1).clamp(min=0)
  window = lengths.answer + 2
  labels, loss_mask = t["target_labels"][:, -window:], t["target_loss_mask"][:, -window:].float()
  question_mask = t["question_mask"].float()[..., None]

  o = cfg.optim
  groups = {"decay": [], "no_decay": [], "gates": []}
  for name, p in translator.named_parameters():
    groups[optim.param_label(name.replace(".", "/"))].append(p)
  opt = torch.optim.AdamW([
      {"params": groups["decay"], "lr": o.learning_rate, "weight_decay": o.weight_decay},
      {"params": groups["no_decay"], "lr": o.learning_rate, "weight_decay": 0.0},
      {"params": groups["gates"], "lr": o.learning_rate * o.gate_lr_multiplier, "weight_decay": 0.0},
  ], betas=(o.b1, o.b2), eps=o.eps)
  sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: schedule_values[i] / o.learning_rate)
  step_index = 0

  def info_nce(anchors, positives, temperature):
    normalize = lambda v: v * torch.rsqrt(v.square().sum(-1, keepdim=True).clamp(min=1e-12))
    logits = normalize(anchors) @ normalize(positives).T / temperature
    return -torch.diagonal(F.log_softmax(logits, dim=-1)).mean()

  def step() -> dict[str, float]:
    nonlocal step_index
    with torch.no_grad():
      hidden = source(input_ids=t["source_ids"], attention_mask=t["source_mask"], position_ids=source_positions,
                      output_hidden_states=True, logits_to_keep=1).hidden_states[s.frozen.source_layer]
    soft = translator(hidden, t["source_mask"])
    index = t["target_soft_index"]
    gathered = torch.take_along_dim(soft, index.clamp(min=0)[..., None], dim=1)
    inputs = torch.where(index[..., None] >= 0, gathered, embeds(t["target_token_ids"]))
    logits = target(inputs_embeds=inputs, attention_mask=t["target_attention_mask"],
                    position_ids=t["target_positions"], logits_to_keep=window).logits.float()
    nll = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view_as(loss_mask)
    ce = (nll * loss_mask).sum() / loss_mask.sum().clamp(min=1.0)
    positives = (embeds(t["question_ids"]) * question_mask).sum(1) / question_mask.sum(1).clamp(min=1.0)
    nce = info_nce(soft.mean(1), positives, cfg.loss.temperature)
    on = float(step_index >= cfg.loss.infonce_start_step)
    loss = ce + cfg.loss.infonce_weight * on * nce
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(translator.parameters(), o.clip_norm)
    opt.step()
    sched.step()
    step_index += 1
    return {"ce": ce.item(), "infonce": nce.item(), "loss": loss.item()}

  return step


def cpu(args) -> None:
  import torch
  from conftest import build_tiny_tokenizer, save_tiny_hf_model
  from tiny_system import tiny_config, write_data
  from transformers.utils import logging as hf_logging

  jax.config.update("jax_num_cpu_devices", 1)  # conftest simulates 4 devices for the sharding tests
  torch.set_num_threads(args.torch_threads)
  hf_logging.disable_progress_bar()
  shape = dict(vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=args.mlp,
               num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
               head_dim=args.d_model // args.heads, max_position_embeddings=4096, initializer_range=0.02)
  total_steps = 1 + (args.repeats + 1) * args.steps
  with tempfile.TemporaryDirectory() as work:
    tokenizer = build_tiny_tokenizer()
    dirs = {name: os.path.join(work, name) for name in ("mistral", "llama")}
    for seed, (model_type, path) in enumerate(dirs.items()):
      save_tiny_hf_model(path, model_type, tokenizer, seed=seed, **shape)
    cfg = tiny_config(dirs["mistral"], dirs["llama"], write_data(work))
    cfg.translator.update(num_soft_tokens=args.soft_tokens, bottleneck=args.bottleneck, depth=args.depth,
                          num_heads=args.translator_heads, dropout=0.0)
    cfg.data.num_shots, cfg.data.max_source_len = args.num_shots, 4096  # no exemplar dropped to fit
    cfg.train.steps = total_steps + 1  # the schedule decays to 0 at train.steps: keep lr > 0 throughout
    s = runner.setup(cfg, work)
    tok, t = s.frozen.target_tokenizer, cfg.translator
    lengths = pipeline.measure_lengths(s.pool, builder=s.builder, target_tokenizer=tok, anchor=cfg.data.answer_anchor,
                                       num_soft_tokens=t.num_soft_tokens, max_answer_len=cfg.data.max_answer_len)
    if len(s.pool) < args.batch:
      raise ValueError(f"--batch {args.batch} exceeds the {len(s.pool)} training examples of the tiny data.")
    rows = train.encode_pool(s.pool[:args.batch], builder=s.builder, target_tokenizer=tok,
                             anchor=cfg.data.answer_anchor, num_soft_tokens=t.num_soft_tokens, lengths=lengths)
    batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    state, step, schedule = jax_step(cfg, lengths, s.mesh, s.frozen)
    translator = torch_translator(
        source_dim=s.frozen.source.config.hidden_size, target_dim=s.frozen.target.config.hidden_size,
        num_soft_tokens=t.num_soft_tokens, bottleneck=t.bottleneck, depth=t.depth, num_heads=t.num_heads,
        dropout=t.dropout, target_embed_rms=bridge.embedding_rms(s.frozen.target.params["embed"]))
    num_params = bridge.count_params(state.params)
    assert num_params == sum(p.numel() for p in translator.parameters()), "translator parameter counts differ"
    copy_translator_params(state.params, translator)
    torch_step = torch_step_fn(cfg, s, lengths, batch, translator,
                               np.asarray(jax.vmap(schedule)(jnp.arange(total_steps + 1))))

  run_jax = steps_runner(step, state, (s.frozen.source.params, s.frozen.target.params),
                         train.global_batch(batch, s.mesh))

  def run_torch(num_steps: int) -> None:
    for _ in range(num_steps):
      run_torch.metrics = torch_step()

  run_jax(1)  # step 0 (and the compilation)
  run_torch(1)
  for k in ("ce", "infonce", "loss"):
    np.testing.assert_allclose(run_torch.metrics[k], float(run_jax.metrics[k]), rtol=LOSS_RTOL,
                               err_msg=f"step-0 {k}: the PyTorch step does not compute what the JAX step does")
  first = {k: (float(run_jax.metrics[k]), run_torch.metrics[k]) for k in ("ce", "infonce", "loss")}
  names = ("pytorch (eager)", "jax jit")
  times = interleaved_seconds((lambda: run_torch(args.steps), lambda: run_jax(args.steps)), args.repeats)

  src_c, tgt_c = s.frozen.source.config, s.frozen.target.config
  print(f"CPU: {os.cpu_count()} cores (torch.set_num_threads({torch.get_num_threads()}), XLA uses all), float32. "
        f"Source Mistral / target Llama: d={args.d_model}, {args.layers} layers, {args.heads}/{args.kv_heads} "
        f"heads, MLP {args.mlp}, vocab {args.vocab}. Translator M={t.num_soft_tokens}, b={t.bottleneck}, depth "
        f"{t.depth}, {t.num_heads} heads: {num_params:,} params on both sides. Batch {args.batch}, source "
        f"{lengths.source} tokens ({args.num_shots}-shot), target {lengths.target} (answer window "
        f"{lengths.answer + 2}), source layer {s.frozen.source_layer}/{src_c.num_layers}, target "
        f"{tgt_c.num_layers} layers.")
  print(f"step-0 losses with the JAX translator copied into torch (gates at {GATE_VALUE}, dropout 0), "
        f"agree within rtol {LOSS_RTOL:g}: " + ", ".join(f"{k} jax {j:.6f} torch {p:.6f}" for k, (j, p) in
                                                         first.items()))
  print(f"{args.steps} steps per round, best of {args.repeats} rounds (median in brackets), rounds interleaved, "
        f"after 1 + {args.steps} warm-up steps each")
  print(f"{'':<18}{'ms/step':>16}{'samples/s':>20}")
  for name, secs in zip(names, times):
    best, median = min(secs) / args.steps, float(np.median(secs)) / args.steps
    print(f"{name:<18}{best * 1e3:>7.1f} ({median * 1e3:>6.1f}){args.batch / best:>10.1f} "
          f"({args.batch / median:>6.1f})")
  ratio = lambda f: f(times[0]) / f(times[1])
  print(f"ratio jax / pytorch samples/s: {ratio(min):.2f} (median {ratio(np.median):.2f})")
  print(f"loss after {1 + (args.repeats + 1) * args.steps} steps on the same batch: "
        f"jax {float(run_jax.metrics['loss']):.6f}, torch {run_torch.metrics['loss']:.6f}")


def interleaved_seconds(fns, repeats: int) -> list[list[float]]:
  """Seconds of each call of each fn, after one warm-up call each; rounds alternate between the fns so a
  change in the load of a shared machine hits both sides alike."""
  for fn in fns:
    fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, secs in zip(fns, times):
      start = time.perf_counter()
      fn()
      secs.append(time.perf_counter() - start)
  return times


# --------------------------------------------------------------------------------------------------
# GPU: stable_64 shapes, model FLOP utilisation


def synthetic_batch(rng: np.random.Generator, lengths: pipeline.Lengths, *, batch: int, num_soft_tokens: int,
                    source_vocab: int, target_vocab: int) -> dict[str, np.ndarray]:
  """Random ids in the pipeline's row layout (`pipeline.encode_example`): unpadded source and question, a
  2-token anchor ("Answer: ") and an answer of `lengths.answer` tokens. Ids 0, 1, 2 are pad, BOS, EOS."""
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
  frozen = bridge.Frozen(source, None, target, None, source_layer=layer)
  lengths = pipeline.Lengths(source=args.source_len, target=1 + t.num_soft_tokens + 2 + args.answer_len + 1,
                             question=args.question_len, answer=args.answer_len)
  batch = synthetic_batch(np.random.default_rng(0), lengths, batch=args.batch, num_soft_tokens=t.num_soft_tokens,
                          source_vocab=source_config.vocab_size, target_vocab=target_config.vocab_size)
  state, step, _ = jax_step(cfg, lengths, mesh, frozen)
  n_tr = bridge.count_params(state.params)
  run = steps_runner(step, state, (source.params, target.params), train.global_batch(batch, mesh))
  secs = min(interleaved_seconds((lambda: run(args.steps),), args.repeats)[0]) / args.steps

  # N = weights that take part in matmuls (the embedding lookup does not). The source runs its first `layer`
  # layers and no head; the target's head only sees the answer window.
  head = lambda c: c.hidden_size * c.vocab_size
  n_src = (matmul_params(source_config) - head(source_config)) * layer // source_config.num_layers
  n_tgt = matmul_params(target_config) - head(target_config)
  b, window = args.batch, lengths.answer + 2
  flops = {
      f"source fwd 2·N_src·B·S_src ({b}×{lengths.source} source tokens)": 2 * n_src * b * lengths.source,
      f"target fwd + input-grad bwd 4·N_tgt·B·S_tgt ({b}×{lengths.target} target tokens)":
          4 * n_tgt * b * lengths.target,
      f"target head 4·d·V on the answer window ({b}×{window} tokens)": 4 * head(target_config) * b * window,
      f"translator fwd + bwd 6·N_tr·B·M ({b}×{t.num_soft_tokens} soft tokens)": 6 * n_tr * b * t.num_soft_tokens,
  }
  total = sum(flops.values())
  print(f"{jax.devices()[0].device_kind}: stable_64 shapes{' (SMOKE: shrunk)' if args.smoke else ''}, random bf16 "
        f"frozen weights, float32 translator. Source {source_config.model_type} d={source_config.hidden_size} x "
        f"{source_config.num_layers} layers (N_src={n_src:,}, layer {layer}), target "
        f"{target_config.model_type} d={target_config.hidden_size} x {target_config.num_layers} layers "
        f"(N_tgt={n_tgt:,} + head {head(target_config):,}), translator M={t.num_soft_tokens}, "
        f"b={t.bottleneck}, depth {t.depth}, {t.num_heads} heads (N_tr={n_tr:,}), dropout {t.dropout}. Batch {b}; "
        f"best of {args.repeats} rounds of {args.steps} steps after one warm-up round.")
  for name, f in flops.items():
    print(f"  {name:<78}{f / 1e12:>10.4g} TFLOP")
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
  parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best is reported")
  cpu_flags = parser.add_argument_group("CPU (both frozen models get this shape)")
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
