"""The bridge's train step in eager PyTorch: the reference the JAX step is checked against.

`tests/test_torch_bridge.py` compares the loss and every translator gradient of one step with
the JAX step's; `benchmarks/train_step.py` times the whole step (with AdamW) against it. The
frozen models are transformers' own (`AutoModelForCausalLM`); the translator is
`interlingua_jax.bridges.translator.module.Translator` written again in torch with the same parameter names
(`param_name`), so parameters and gradients can be matched one to one. Only packages are
imported here (no test helpers), so the benchmark can import this file as `tests.torch_bridge`.
"""
import numpy as np
import torch
from flax import nnx
from torch import nn
from torch.nn import functional as F

from interlingua_jax.training import optim
from interlingua_jax.nn.blocks import embedding_rms


def translator(*, source_dim: int, target_dim: int, num_soft_tokens: int, bottleneck: int, depth: int,
               num_heads: int, dropout: float, target_embed_rms: float | None) -> nn.Module:
  """`interlingua_jax.bridges.translator.module.Translator` in torch (Linear weights are the transposed kernels)."""

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


def param_name(path: tuple) -> str:
  """The torch name of a JAX translator parameter path: ("blocks", 0, "q", "kernel") → "blocks.0.q.weight"."""
  last = {"kernel": "weight", "scale": "weight"}.get(path[-1], path[-1])
  return ".".join(str(p) for p in (*path[:-1], last))


def to_torch_layout(path: tuple, value: np.ndarray) -> np.ndarray:
  """A JAX parameter (or gradient) in torch's layout: kernels (in, out) become weights (out, in)."""
  return value.T if path[-1] == "kernel" else value


def copy_params(params: nnx.State, module: nn.Module) -> None:
  """JAX translator parameters into the torch module; every parameter on both sides must be matched."""
  theirs = dict(module.named_parameters())
  copied = set()
  for path, var in nnx.to_flat_state(params):
    name = param_name(path)
    with torch.no_grad():
      theirs[name].copy_(torch.from_numpy(np.array(to_torch_layout(path, np.asarray(var.get_value())))))
    copied.add(name)
  if copied != set(theirs):
    raise AssertionError(f"translator parameters differ: jax only {copied - set(theirs)}, "
                         f"torch only {set(theirs) - copied}")


def translator_copy(params: nnx.State, frozen, t) -> nn.Module:
  """The torch translator holding `params`, for a `bridge.Frozen` pair and a config's `translator` section."""
  module = translator(source_dim=frozen.source.config.hidden_size, target_dim=frozen.target.config.hidden_size,
                      num_soft_tokens=t.num_soft_tokens, bottleneck=t.bottleneck, depth=t.depth,
                      num_heads=t.num_heads, dropout=t.dropout,
                      target_embed_rms=embedding_rms(frozen.target.params["embed"]) if t.calibrate_rms else None)
  copy_params(params, module)
  return module


def frozen_models(source_path: str, target_path: str) -> tuple[nn.Module, nn.Module]:
  """The two frozen LLMs as transformers loads them: float32, eval mode, no gradients to their weights."""
  from transformers import AutoModelForCausalLM
  load = lambda path: AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().requires_grad_(False)
  return load(source_path), load(target_path)


def loss(source: nn.Module, target: nn.Module, module: nn.Module, batch: dict[str, np.ndarray], *, source_layer: int,
         answer_window: int, infonce_weight: float, infonce_on: bool,
         temperature: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
  """`interlingua_jax.training.train.loss_fn` in torch, on a batch of the pipeline's rows (`pipeline.encode_example`)."""
  t = {k: torch.from_numpy(np.asarray(v)).long() for k, v in batch.items()}
  positions = (t["source_mask"].cumsum(-1) - 1).clamp(min=0)
  with torch.no_grad():
    hidden = source(input_ids=t["source_ids"], attention_mask=t["source_mask"], position_ids=positions,
                    output_hidden_states=True, logits_to_keep=1).hidden_states[source_layer]
  soft = module(hidden, t["source_mask"])
  embeds = target.get_input_embeddings()
  index = t["target_soft_index"]
  gathered = torch.take_along_dim(soft, index.clamp(min=0)[..., None], dim=1)
  inputs = torch.where(index[..., None] >= 0, gathered, embeds(t["target_token_ids"]))
  logits = target(inputs_embeds=inputs, attention_mask=t["target_attention_mask"], position_ids=t["target_positions"],
                  logits_to_keep=answer_window).logits.float()
  labels, mask = t["target_labels"][:, -answer_window:], t["target_loss_mask"][:, -answer_window:].float()
  nll = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view_as(mask)
  ce = (nll * mask).sum() / mask.sum().clamp(min=1.0)
  question_mask = t["question_mask"].float()[..., None]
  positives = (embeds(t["question_ids"]) * question_mask).sum(1) / question_mask.sum(1).clamp(min=1.0)
  normalize = lambda v: v * torch.rsqrt(v.square().sum(-1, keepdim=True).clamp(min=1e-12))
  similarity = normalize(soft.mean(1)) @ normalize(positives).T / temperature
  nce = -torch.diagonal(F.log_softmax(similarity, dim=-1)).mean()
  return ce + infonce_weight * float(infonce_on) * nce, {"ce": ce, "infonce": nce}


def optimizer(module: nn.Module, *, learning_rate: float, b1: float, b2: float, eps: float, weight_decay: float,
              gate_lr_multiplier: float, schedule_values: np.ndarray):
  """AdamW with the groups of `interlingua_jax.training.optim` (the same labelling function) and the same schedule."""
  groups = {"decay": [], "no_decay": [], "gates": []}
  for name, p in module.named_parameters():
    groups[optim.param_label(name.replace(".", "/"))].append(p)
  opt = torch.optim.AdamW([
      {"params": groups["decay"], "lr": learning_rate, "weight_decay": weight_decay},
      {"params": groups["no_decay"], "lr": learning_rate, "weight_decay": 0.0},
      {"params": groups["gates"], "lr": learning_rate * gate_lr_multiplier, "weight_decay": 0.0},
  ], betas=(b1, b2), eps=eps)
  return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda i: schedule_values[i] / learning_rate)


def make_step(cfg, source: nn.Module, target: nn.Module, module: nn.Module, batch: dict[str, np.ndarray], *,
              source_layer: int, answer_window: int, schedule_values: np.ndarray):
  """step() runs one train step on `batch` (loss, backward, global-norm clipping, AdamW, schedule) as
  `interlingua_jax.training.train.train_step` does, and returns the step's float losses."""
  o, l = cfg.optim, cfg.loss
  opt, schedule = optimizer(module, learning_rate=o.learning_rate, b1=o.b1, b2=o.b2, eps=o.eps,
                            weight_decay=o.weight_decay, gate_lr_multiplier=o.gate_lr_multiplier,
                            schedule_values=schedule_values)
  index = 0

  def step() -> dict[str, float]:
    nonlocal index
    total, parts = loss(source, target, module, batch, source_layer=source_layer, answer_window=answer_window,
                        infonce_weight=l.infonce_weight, infonce_on=index >= l.infonce_start_step,
                        temperature=l.temperature)
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), o.clip_norm)
    opt.step()
    schedule.step()
    index += 1
    return {"loss": total.item(), **{k: v.item() for k, v in parts.items()}}

  return step
