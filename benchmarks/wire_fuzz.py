"""Fuzzes wire.decode with mutated packets: only WireFormatError, bounded memory.

A packet reaches another host over a network, so decode must refuse anything malformed one
way only, and a header's claims (2^40 elements, a 2^32 - 1 group) must not turn into
allocations. This runs >= 100,000 mutations of valid packets of every format, counts each
outcome, and fails on any other exception, a non-finite or misshapen accepted result, or a
peak-RSS growth beyond --max_rss_growth_mib.

  python benchmarks/wire_fuzz.py [--num 100000] [--seed 0]
"""
import collections
import math
import re
import resource
import struct
import sys
import time
import zlib

import numpy as np

from interlingua_jax.core import cli
from interlingua_jax.evaluation import wire

# (offset, struct code) of each header field after the magic; docs/wire_format.md.
FIELDS = {"version": (4, "<H"), "format": (6, "<B"), "scale_dtype": (7, "<B"),
          "group_size": (8, "<I"), "rows": (12, "<I"), "cols": (16, "<I"), "crc": (20, "<I")}
HOSTILE = (0, 1, 2, 3, 5, 255, 2**16 - 1, 2**20, 2**31, 2**32 - 1)


def reseal(data: bytearray) -> bytearray:
  """Recomputes the CRC so a mutation reaches the checks behind it."""
  if len(data) >= wire.HEADER_SIZE:
    struct.pack_into("<I", data, 20, zlib.crc32(bytes(data[24:]), zlib.crc32(bytes(data[:20]))))
  return data


def base_packets(rng: np.random.Generator) -> list[bytes]:
  packets = []
  for fmt in wire.FORMATS:
    for shape, g in [((1, 1), 32), ((3, 11), 5), ((8, 64), 32), ((2, 7), 1), ((5, 40), 64)]:
      for scale_dtype in wire.SCALE_DTYPES:
        x = rng.standard_normal(shape) * rng.choice([1e-6, 1.0, 100.0])
        packets.append(wire.encode(x, fmt, g, scale_dtype))
  packets.append(wire.encode(rng.standard_normal((64, 4096)), "int4"))  # one full-size packet
  return packets


def mutate(packet: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
  kind = rng.choice(["bit_flips", "truncate", "extend", "field_rewrite", "field_rewrite+crc",
                     "body_flips+crc", "random_bytes", "random_after_magic"])
  data = bytearray(packet)
  if kind == "bit_flips":
    for pos in rng.integers(0, len(data) * 8, rng.integers(1, 9)):
      data[pos // 8] ^= 1 << (pos % 8)
  elif kind == "truncate":
    data = data[:rng.integers(0, len(data))]
  elif kind == "extend":
    data += rng.bytes(int(rng.integers(1, 65)))
  elif kind.startswith("field_rewrite"):
    # Resealing after a CRC rewrite would undo it, so "+crc" rewrites the other fields.
    names = [name for name in FIELDS if not (kind.endswith("+crc") and name == "crc")]
    offset, code = FIELDS[rng.choice(names)]
    limit = 2 ** (8 * struct.calcsize(code)) - 1
    old = struct.unpack_from(code, data, offset)[0]
    value = int(rng.choice([*HOSTILE, old + 1, old - 1, int(rng.integers(0, limit + 1))]))
    struct.pack_into(code, data, offset, value % (limit + 1))
    if kind.endswith("+crc"):
      reseal(data)
  elif kind == "body_flips+crc":
    for _ in range(rng.integers(1, 5)):
      pos = rng.integers(wire.HEADER_SIZE * 8, len(data) * 8)
      data[pos // 8] ^= 1 << (pos % 8)
    reseal(data)
  elif kind == "random_bytes":
    data = bytearray(rng.bytes(int(rng.integers(0, 257))))
  else:
    data = reseal(bytearray(packet[:6]) + rng.bytes(int(rng.integers(0, 257))))
  return str(kind), bytes(data)


def reason(message: str) -> str:
  """The message with the bad magic and the numbers blanked: one bucket per kind of refusal."""
  message = re.sub(r"wrong magic .*, expected", "wrong magic #, expected", message)
  return re.sub(r"\b\d+(x\d+)?\b", "#", message)  # 12, 3x11; not fp16, int8


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str]) -> None:
  args = cli.parse_options(argv, __doc__, num=100_000, seed=0, max_rss_growth_mib=64.0)

  rng = np.random.default_rng(args.seed)
  packets = base_packets(rng)
  for packet in packets:  # warm up: every base decodes
    wire.decode(packet)
  rss_start = peak_rss_mib()
  by_kind = collections.defaultdict(collections.Counter)
  reasons = collections.Counter()
  failures = []
  huge_claims, largest_claim = 0, 0
  start = time.perf_counter()
  for i in range(args.num):
    # The full-size packet is slow to mutate and check; use it for 1% of the mutations.
    packet = packets[-1] if i % 100 == 0 else packets[rng.integers(0, len(packets) - 1)]
    kind, data = mutate(packet, rng)
    if len(data) >= wire.HEADER_SIZE:
      rows, cols = struct.unpack_from("<II", data, 12)
      huge_claims += rows * cols >= 2**30
      largest_claim = max(largest_claim, rows * cols)
    try:
      y = wire.decode(data)
    except wire.WireFormatError as e:
      by_kind[kind]["rejected"] += 1
      reasons[reason(str(e))] += 1
      if "\n" in str(e):
        failures.append((kind, "multi-line WireFormatError message", data[:32]))
    except BaseException as e:  # noqa: BLE001  what the fuzzer exists to find
      failures.append((kind, f"{type(e).__name__}: {e}", data[:32]))
    else:
      by_kind[kind]["decoded" if data != packet else "unchanged"] += 1
      header = wire.read_header(data)
      if y.dtype != np.float32 or y.shape != header.shape or not np.isfinite(y).all():
        failures.append((kind, f"accepted but bad result {y.dtype} {y.shape}", data[:32]))
  elapsed = time.perf_counter() - start
  rss_growth = peak_rss_mib() - rss_start

  print(f"wire fuzz: {args.num} mutated packets from {len(packets)} bases in {elapsed:.1f} s "
        f"({args.num / elapsed:,.0f}/s), seed {args.seed}")
  # decoded: a changed packet that is still valid (e.g. a body bit flip with the CRC redone);
  # unchanged: the mutation rewrote a field to its own value.
  total = collections.Counter()
  for counts in by_kind.values():
    total.update(counts)
  print(f"\n{'mutation':<22}{'rejected':>10}{'decoded':>10}{'unchanged':>11}")
  for kind, counts in [*sorted(by_kind.items()), ("total", total)]:
    print(f"{kind:<22}{counts['rejected']:>10}{counts['decoded']:>10}{counts['unchanged']:>11}")
  print("\nWireFormatError reasons (numbers blanked as #):")
  for message, count in reasons.most_common():
    print(f"{count:>8}  {message}")
  print(f"\nheaders claiming >= 2^30 elements: {huge_claims} (largest 2^{math.log2(largest_claim):.1f})")
  print(f"other exceptions or bad results: {len(failures)}")
  print(f"peak RSS: {rss_start:.1f} MiB before the loop, growth {rss_growth:.1f} MiB "
        f"(limit {args.max_rss_growth_mib:.0f})")
  for kind, what, head in failures[:10]:
    print(f"  FAIL [{kind}] {what}  first bytes {head.hex()}")
  assert sum(total.values()) == args.num
  assert not failures, f"{len(failures)} mutated packets escaped as something other than WireFormatError"
  assert rss_growth <= args.max_rss_growth_mib, f"peak RSS grew {rss_growth:.1f} MiB"


if __name__ == "__main__":
  sys.exit(cli.run(main, sys.argv))
