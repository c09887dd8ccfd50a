"""The one timing helper of the benchmarks: warm-up excluded, interleaved rounds, medians.

Warm-up calls absorb compilation and first-touch costs and are never timed. The sides being
compared run in turn within each round, so a change in the load of a shared machine hits them
alike and their ratio stays meaningful; the median over rounds ignores a disturbed round.
Each call's result is waited for (`jax.block_until_ready`): JAX dispatches asynchronously.
"""
import dataclasses
import statistics
import time
from collections.abc import Callable

import jax


@dataclasses.dataclass(frozen=True)
class Timing:
  """Seconds per call of one side, one entry per timed round."""
  seconds: tuple[float, ...]

  @property
  def median(self) -> float:
    return statistics.median(self.seconds)

  @property
  def spread(self) -> tuple[float, float]:
    return min(self.seconds), max(self.seconds)


def interleaved(fns: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 1,
                number: int = 1) -> dict[str, Timing]:
  """Times each fn: `warmup` untimed calls each, then `rounds` rounds that call every fn `number` times in turn.

  A round's figure is its mean seconds per call (`number` > 1 for calls too short to time one by one).
  """
  if rounds < 1 or warmup < 0 or number < 1:
    raise ValueError(f"need rounds >= 1, warmup >= 0, number >= 1; got {rounds}, {warmup}, {number}.")
  for fn in fns.values():
    for _ in range(warmup):
      jax.block_until_ready(fn())
  seconds = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      start = time.perf_counter()
      for _ in range(number):
        jax.block_until_ready(fn())
      seconds[name].append((time.perf_counter() - start) / number)
  return {name: Timing(tuple(s)) for name, s in seconds.items()}


def once(fn: Callable[[], object], *, rounds: int = 1, warmup: int = 1) -> Timing:
  """`interleaved` for a single side (an absolute figure, e.g. against a hardware bound)."""
  return interleaved({"": fn}, rounds=rounds, warmup=warmup)[""]
