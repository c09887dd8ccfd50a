"""Encode + decode throughput of a 64 x 4096 soft-token packet at each wire format.

The reference, measured in the same run, is the plainest way to ship the same array:
cast to fp16, np.save into a BytesIO, np.load it back and cast to float32. Throughput is
MB (10^6 bytes) of float32 input per second of encode + decode; ratio = format / reference.

  python benchmarks/wire_throughput.py [--repeats 7] [--number 20]
"""
import argparse
import io
import time

import numpy as np

from interlingua_jax import wire


def best_seconds(fn, repeats: int, number: int) -> float:
  """Best mean over `repeats` batches of `number` calls: the least disturbed by other load."""
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(number):
      fn()
    best = min(best, (time.perf_counter() - start) / number)
  return best


def npy_fp16_round_trip(x: np.ndarray) -> np.ndarray:
  buffer = io.BytesIO()
  np.save(buffer, x.astype(np.float16))
  return np.load(io.BytesIO(buffer.getvalue())).astype(np.float32)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--number", type=int, default=20)
  parser.add_argument("--group_size", type=int, default=32)
  args = parser.parse_args()

  x = np.random.default_rng(0).standard_normal((64, 4096)).astype(np.float32)
  megabytes = x.nbytes / 1e6
  ref_s = best_seconds(lambda: npy_fp16_round_trip(x), args.repeats, args.number)
  buffer = io.BytesIO()
  np.save(buffer, x.astype(np.float16))
  print(f"64 x 4096 float32 ({megabytes:.3f} MB), group size {args.group_size}, fp16 scales; "
        f"best of {args.repeats} x {args.number} calls")
  print(f"{'format':<16}{'bytes':>9}{'encode ms':>11}{'decode ms':>11}{'enc+dec MB/s':>14}{'vs ref':>8}")
  print(f"{'ref npy fp16':<16}{len(buffer.getvalue()):>9}{'':>11}{'':>11}"
        f"{megabytes / ref_s:>14.0f}{1.0:>8.2f}")
  for fmt in wire.FORMATS:
    packet = wire.encode(x, fmt, args.group_size)
    np.testing.assert_array_equal(wire.decode(packet).shape, x.shape)
    enc_s = best_seconds(lambda: wire.encode(x, fmt, args.group_size), args.repeats, args.number)
    dec_s = best_seconds(lambda: wire.decode(packet), args.repeats, args.number)
    total = enc_s + dec_s
    print(f"{fmt:<16}{len(packet):>9}{enc_s * 1e3:>11.2f}{dec_s * 1e3:>11.2f}"
          f"{megabytes / total:>14.0f}{ref_s / total:>8.2f}")


if __name__ == "__main__":
  main()
