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


def packet_shape(ctx: Context, example) -> tuple[int, int]:
  """What the bridge sends for one question: M soft tokens of the target's width, or what a cache bridge says."""
  if ctx.cache_source is not None:
    return tuple(ctx.cache_source.packet_shape(example))
  return ctx.num_soft_tokens, ctx.frozen.target.config.hidden_size


def analyse(ctx: Context, examples: Sequence, *, formats: Sequence[str], group_size: int,
            out_dir: str) -> dict:
  """Runs the latent method once per precision (plus float32, no wire) and writes compression.json."""
  texts = [ctx.bridge.text(e) for e in examples]  # the text the bridge stands in for
  text_bytes = np.array([len(t.encode("utf-8")) for t in texts], np.float64)
  text_tokens = np.array([len(ctx.bridge.ids(e)) for e in examples], np.float64)  # what the bridge reads
  shapes = [packet_shape(ctx, e) for e in examples]
  levels = {}
  for fmt in ("float32", *formats):
    sizes: list[int] = []
    if fmt == "float32":
      transform, expected = None, [4 * rows * cols for rows, cols in shapes]
    else:
      transform = functools.partial(_round_trip, fmt=fmt, group_size=group_size, sizes=sizes)
      expected = [wire.packet_size(shape, fmt, group_size) for shape in shapes]
    level_ctx = dataclasses.replace(ctx, soft_transform=transform, warm_up=False)
    records = run_methods(level_ctx, ["latent"], examples, samples_path=None, progress=False)
    correct = np.array([r["correct"] for r in records], np.float64)
    if not set(sizes) <= set(expected):  # a padded batch's repeated last row is measured again
      raise AssertionError(f"{fmt}: measured packet sizes {sorted(set(sizes))} differ from the formula's "
                           f"{sorted(set(expected))}")
    packet = float(np.mean(expected))
    levels[fmt] = {"packet_bytes": int(round(packet)), "bytes_ratio_vs_text": float(text_bytes.mean() / packet),
                   "accuracy": float(correct.mean()),
                   "ci95": list(stats.clopper_pearson(int(correct.sum()), len(correct)))}
  result = {"num_samples": len(examples), "num_soft_tokens": ctx.num_soft_tokens,
            "soft_shape": list(shapes[0]) if len(set(shapes)) == 1 else None,
            "packet_rows_mean": float(np.mean([r for r, _ in shapes])), "packet_cols": int(shapes[0][1]),
            "group_size": group_size, "text_bytes_mean": float(text_bytes.mean()),
            "text_tokens_mean": float(text_tokens.mean()), "levels": levels}
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    outputs.write_json(os.path.join(out_dir, "compression.json"), result)
  return result
