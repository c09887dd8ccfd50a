"""The wire analysis (`--mode=compression`): real packets, real byte counts, the accuracy cost.

For N test questions: the UTF-8 bytes and source tokens of the text prompt the bridge
replaces; the bytes of the soft-token packet at each precision (`wire.encode`, measured,
and equal to `wire.packet_size`); and bridged accuracy when the target reads the soft
tokens after an encode → decode round trip. The table says plainly where a packet is
larger than the text it replaces: at M × d_tgt numbers it usually is, and the saving is
in the target's KV cache (M soft tokens instead of the prompt's tokens), not in bytes.
"""
import dataclasses
import functools
import os
from collections.abc import Sequence

import jax
import numpy as np

from interlingua_jax.core import outputs, stats
from interlingua_jax.evaluation import harness as evaluate, wire
from interlingua_jax.data import pipeline


def _round_trip(soft: np.ndarray, *, fmt: str, group_size: int, sizes: list[int]) -> np.ndarray:
  """The soft tokens the target reads after encode → decode; the packet's measured size is recorded."""
  packet = wire.encode(soft, fmt=fmt, group_size=group_size)
  sizes.append(len(packet))
  return wire.decode(packet)


def analyse(ctx: evaluate.Context, examples: Sequence, *, formats: Sequence[str], group_size: int,
            out_dir: str) -> dict:
  """Runs the latent method once per precision (plus float32, no wire) and writes compression.json."""
  prompts = [ctx.builder.bridge_prompt(e) for e in examples]  # the text the soft tokens stand in for
  text_bytes = np.array([len(p.encode("utf-8")) for p in prompts], np.float64)
  text_tokens = np.array([len(pipeline.token_ids(ctx.frozen.source_tokenizer, p)) + 1 for p in prompts], np.float64)
  shape = (ctx.num_soft_tokens, ctx.frozen.target.config.hidden_size)
  levels = {}
  for fmt in ("float32", *formats):
    sizes: list[int] = []
    if fmt == "float32":
      transform, bytes_ = None, 4 * shape[0] * shape[1]
    else:
      transform = functools.partial(_round_trip, fmt=fmt, group_size=group_size, sizes=sizes)
      bytes_ = wire.packet_size(shape, fmt, group_size)
    level_ctx = dataclasses.replace(ctx, soft_transform=transform, warm_up=False)
    records = evaluate.run_methods(level_ctx, ["latent"], examples, samples_path=None, progress=False)
    correct = np.array([r["correct"] for r in records], np.float64)
    if any(s != bytes_ for s in sizes):
      raise AssertionError(f"{fmt}: measured packet sizes {set(sizes)} differ from the formula {bytes_}")
    levels[fmt] = {"packet_bytes": int(bytes_), "bytes_ratio_vs_text": float(text_bytes.mean() / bytes_),
                   "accuracy": float(correct.mean()),
                   "ci95": list(stats.clopper_pearson(int(correct.sum()), len(correct)))}
  result = {"num_samples": len(examples), "num_soft_tokens": ctx.num_soft_tokens, "soft_shape": list(shape),
            "group_size": group_size, "text_bytes_mean": float(text_bytes.mean()),
            "text_tokens_mean": float(text_tokens.mean()), "levels": levels}
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    outputs.write_json(os.path.join(out_dir, "compression.json"), result)
  return result


def table(result: dict) -> str:
  """A plain-text table; every level larger than the text it replaces is flagged as such."""
  text = result["text_bytes_mean"]
  lines = [f"Wire: {result['num_samples']} questions; text prompt {text:.0f} B UTF-8, "
           f"{result['text_tokens_mean']:.1f} tokens; latent {result['num_soft_tokens']} soft tokens "
           f"({result['soft_shape'][0]} x {result['soft_shape'][1]} numbers)",
           f"{'level':>8} {'packet B':>10} {'text/packet':>12} {'accuracy':>9}  verdict"]
  for fmt, v in result["levels"].items():
    verdict = (f"packet is {v['packet_bytes'] / text:.1f}x LARGER than the text" if v["packet_bytes"] > text
               else f"packet is {text / v['packet_bytes']:.1f}x smaller than the text")
    lines.append(f"{fmt:>8} {v['packet_bytes']:>10,} {v['bytes_ratio_vs_text']:>12.4f} {v['accuracy']:>9.3f}  {verdict}")
  tokens_saved = result["text_tokens_mean"] - result["num_soft_tokens"]
  lines.append(f"KV-cache view: the target holds {result['num_soft_tokens']} soft tokens instead of "
               f"{result['text_tokens_mean']:.1f} prompt tokens ({tokens_saved:+.1f} tokens saved per question).")
  return "\n".join(lines)
