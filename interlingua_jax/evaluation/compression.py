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
from interlingua_jax.evaluation import wire
from interlingua_jax.evaluation.context import Context
from interlingua_jax.evaluation.harness import run_methods


def _round_trip(soft: np.ndarray, *, fmt: str, group_size: int, sizes: list[int]) -> np.ndarray:
  """The soft tokens the target reads after encode → decode; the packet's measured size is recorded."""
  packet = wire.encode(soft, fmt=fmt, group_size=group_size)
  sizes.append(len(packet))
  return wire.decode(packet)


def analyse(ctx: Context, examples: Sequence, *, formats: Sequence[str], group_size: int,
            out_dir: str) -> dict:
  """Runs the latent method once per precision (plus float32, no wire) and writes compression.json."""
  texts = [ctx.soft_source.text(e) for e in examples]  # the text the soft tokens stand in for
  text_bytes = np.array([len(t.encode("utf-8")) for t in texts], np.float64)
  text_tokens = np.array([len(ctx.soft_source.ids(e)) for e in examples], np.float64)  # what the bridge reads
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
    records = run_methods(level_ctx, ["latent"], examples, samples_path=None, progress=False)
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
