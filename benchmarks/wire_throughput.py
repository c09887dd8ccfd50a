"""Encode + decode throughput of a 64 x 4096 soft-token packet at each wire format, and decode cost at
the largest packet the wire allows (`wire.MAX_VALUES` values).

Two references, measured in the same run:
  - npy round trip: cast to fp16, np.save into a BytesIO, np.load it back and cast to float32
    (the plainest way to ship the same array); "vs npy" = its encode + decode time / the format's.
  - frombuffer fp16: np.frombuffer(fp16 bytes).astype(float32), the least work any decoder of the
    same values can do; "dec / ref" = the format's decode time / this. The wire promises <= 3 at
    every size, and a per-value decode cost that does not grow with the packet (linear time).

  python benchmarks/wire_throughput.py [--repeats 7] [--number 20]
"""
import io
import sys

import numpy as np

import timing
from interlingua_jax.core import cli
from interlingua_jax.evaluation import wire


def npy_fp16_round_trip(x: np.ndarray) -> np.ndarray:
  buffer = io.BytesIO()
  np.save(buffer, x.astype(np.float16))
  return np.load(io.BytesIO(buffer.getvalue())).astype(np.float32)


def frombuffer_fp16(data: bytes) -> np.ndarray:
  return np.frombuffer(data, np.float16).astype(np.float32)


def throughput_table(args) -> None:
  x = np.random.default_rng(0).standard_normal((64, 4096)).astype(np.float32)
  megabytes = x.nbytes / 1e6
  buffer = io.BytesIO()
  np.save(buffer, x.astype(np.float16))
  raw = x.astype(np.float16).tobytes()
  print(f"64 x 4096 float32 ({megabytes:.3f} MB), group size {args.group_size}, fp16 scales; median of "
        f"{args.repeats} rounds of {args.number} calls, each format interleaved with both references")
  print(f"{'format':<16}{'bytes':>9}{'encode ms':>11}{'decode ms':>11}{'enc+dec MB/s':>14}{'vs npy':>8}"
        f"{'dec / ref':>11}")
  for fmt in wire.FORMATS:
    packet = wire.encode(x, fmt, args.group_size)
    np.testing.assert_array_equal(wire.decode(packet).shape, x.shape)
    t = timing.interleaved({"npy": lambda: npy_fp16_round_trip(x), "ref": lambda: frombuffer_fp16(raw),
                            "enc": lambda: wire.encode(x, fmt, args.group_size), "dec": lambda: wire.decode(packet)},
                           rounds=args.repeats, number=args.number)
    enc_s, dec_s = t["enc"].median, t["dec"].median
    total = enc_s + dec_s
    print(f"{fmt:<16}{len(packet):>9}{enc_s * 1e3:>11.2f}{dec_s * 1e3:>11.3f}"
          f"{megabytes / total:>14.0f}{t['npy'].median / total:>8.2f}{dec_s / t['ref'].median:>11.2f}")
  print(f"(references: np.save/np.load fp16 round trip {len(buffer.getvalue())} bytes; "
        f"np.frombuffer fp16 decode {len(raw)} bytes)")


def scaling_table(args) -> None:
  """Decode time per value at growing sizes up to the limit: flat columns mean linear time."""
  shapes = [(64, 4096), (1024, 4096), (wire.MAX_VALUES // 4096, 4096)]
  print(f"\ndecode ns per value (median of {args.repeats} rounds, interleaved with np.frombuffer fp16); "
        f"dec / ref at the largest size; wire.MAX_PACKET_BYTES = {wire.MAX_PACKET_BYTES:,}")
  print(f"{'format':<16}" + "".join(f"{f'{r}x{c}':>14}" for r, c in shapes) + f"{'dec / ref':>11}")
  rng = np.random.default_rng(0)
  arrays = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
  raws = [x.astype(np.float16).tobytes() for x in arrays]
  for fmt in wire.FORMATS:
    per_value, ratio = [], 0.0
    for x, raw in zip(arrays, raws):
      packet = wire.encode(x, fmt, args.group_size)
      t = timing.interleaved({"ref": lambda: frombuffer_fp16(raw), "dec": lambda: wire.decode(packet)},
                             rounds=args.repeats)
      per_value.append(t["dec"].median / x.size * 1e9)
      ratio = t["dec"].median / t["ref"].median
    print(f"{fmt:<16}" + "".join(f"{v:>14.2f}" for v in per_value) + f"{ratio:>11.2f}")


def main(argv: list[str]) -> None:
  args = cli.parse_options(argv, __doc__, repeats=7, number=20, group_size=32)
  throughput_table(args)
  scaling_table(args)


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
