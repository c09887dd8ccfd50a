"""The wire: a versioned binary packet carrying one (M, d) block of soft tokens.

Soft tokens leave one model's host and reach another's, so the packet is both a size
(what "compression" really buys, see docs/wire_format.md) and an attack surface: `decode`
checks every header claim against the bytes actually received before allocating anything,
and raises nothing but `WireFormatError`.

Layout (little-endian; full specification in docs/wire_format.md):
  header (24 B): magic b"ILWP", version u16, format u8, scale dtype u8, group size u32,
                 rows u32, cols u32, CRC32 u32 (of header bytes 0..19, then the body)
  body: scales (one per group, quantized formats only), then the payload.
"""
import dataclasses
import math
import struct
import zlib

import ml_dtypes
import numpy as np

from interlingua_jax.core.errors import UserError

MAGIC = b"ILWP"
VERSION = 1
FORMATS = ("fp16", "bf16", "int8", "int6", "int4")
SCALE_DTYPES = ("fp16", "fp32")
HEADER_SIZE = 24

_HEADER = struct.Struct("<4sHBBIIII")
_FORMAT_CODES = {name: code for code, name in enumerate(FORMATS)}
# Scale dtype codes: 0 means "no scales" (fp16/bf16 payloads).
_SCALE_CODES = {"fp16": 1, "fp32": 2}
_SCALE_NAMES = {code: name for name, code in _SCALE_CODES.items()}
_SCALE_NP = {"fp16": np.dtype("<f2"), "fp32": np.dtype("<f4")}
_FLOAT_NP = {"fp16": np.dtype("<f2"), "bf16": np.dtype(ml_dtypes.bfloat16)}
# Float32 magnitudes from which round-to-nearest-even gives infinity: max + half an ulp.
_FLOAT_OVERFLOW = {"fp16": 65520.0, "bf16": 2.0**128 * (1 - 2.0**-9)}
_BITS = {"fp16": 16, "bf16": 16, "int8": 8, "int6": 6, "int4": 4}
_U32_MAX = 2**32 - 1
# The limits, checked before any allocation: a packet carries at most MAX_VALUES values (M x d: e.g.
# 4096 soft tokens of a 4096-wide model; 64 MiB once decoded to float32). The largest valid packet is
# then MAX_PACKET_BYTES (int8 with one fp32 scale per value: 80 MiB); fp16 packets stop at 32 MiB.
MAX_VALUES = 2**24

assert _HEADER.size == HEADER_SIZE


class WireFormatError(UserError, ValueError):
  """A byte string is not a valid packet; the message is a one-line reason."""


@dataclasses.dataclass(frozen=True)
class Header:
  """What a packet's header claims, once checked against its length."""
  fmt: str
  group_size: int  # 0 for fp16/bf16
  scale_dtype: str | None  # None for fp16/bf16
  shape: tuple[int, int]


def is_quantized(fmt: str) -> bool:
  return fmt.startswith("int")


def qmax(fmt: str) -> int:
  """Largest quantized magnitude: symmetric codes in [-qmax, qmax], 2^(bits-1) - 1."""
  return 2 ** (_BITS[fmt] - 1) - 1


def _num_groups(n: int, group_size: int) -> int:
  """ceil(n / g) in exact integers: a hostile header's 2^64 elements must not round."""
  return -(-n // group_size)


def _check_format(fmt: str, scale_dtype: str) -> None:
  if fmt not in FORMATS:
    raise ValueError(f"unknown wire format {fmt!r}; choose one of {FORMATS}")
  if scale_dtype not in SCALE_DTYPES:
    raise ValueError(f"unknown scale dtype {scale_dtype!r}; choose one of {SCALE_DTYPES}")


def packet_size(shape: tuple[int, int], fmt: str, group_size: int = 32,
                scale_dtype: str = "fp16") -> int:
  """Bytes of a packet: 24 + ceil(n/g)*scale_bytes + ceil(n*bits/8) (no scales for fp16/bf16)."""
  _check_format(fmt, scale_dtype)
  rows, cols = shape
  n = rows * cols
  payload = (n * _BITS[fmt] + 7) // 8
  if not is_quantized(fmt):
    return HEADER_SIZE + payload
  if group_size < 1:
    raise ValueError(f"group_size must be >= 1, got {group_size}")
  return HEADER_SIZE + _num_groups(n, group_size) * _SCALE_NP[scale_dtype].itemsize + payload


MAX_PACKET_BYTES = packet_size((1, MAX_VALUES), "int8", 1, "fp32")


# --- bit packing -------------------------------------------------------------------------
# Element i occupies payload bits [b*i, b*i + b), bit k being bit (k mod 8) of byte k // 8
# (LSB first); codes are two's complement in b bits; unused bits of the last byte are 0.
# Vectorised by chunks: lcm(b, 8) bits hold k = lcm/b codes in lcm/8 bytes (int6: 4 in 3).


def _chunk(bits: int) -> tuple[range, range]:
  """Bit offsets of the codes and of the bytes within one chunk (a few entries each)."""
  chunk_bits = math.lcm(bits, 8)
  return range(0, chunk_bits, bits), range(0, chunk_bits, 8)


def _pack(q: np.ndarray, bits: int) -> bytes:
  if bits == 8:  # byte-aligned: the int8 codes are the payload
    return q.astype(np.int8).tobytes()
  code_shifts, byte_shifts = _chunk(bits)
  codes = q.astype(np.uint32) & ((1 << bits) - 1)
  codes = np.pad(codes, (0, -codes.size % len(code_shifts))).reshape(-1, len(code_shifts))
  words = np.zeros(len(codes), np.uint32)
  for j, shift in enumerate(code_shifts):
    words |= codes[:, j] << shift
  packed = np.empty((len(words), len(byte_shifts)), np.uint8)
  for j, shift in enumerate(byte_shifts):
    packed[:, j] = words >> shift  # the uint8 store keeps the low byte
  return packed.reshape(-1)[:(q.size * bits + 7) // 8].tobytes()


def _unpack(payload: memoryview, bits: int, n: int) -> np.ndarray:
  """int8 codes from a payload whose length was already checked to be ceil(n*bits/8).

  Byte-wise, in uint8: each code is shifted to the top of its byte (from one byte, or two when it
  straddles a byte boundary; uint8 shifts drop the neighbours' bits), then one arithmetic right shift
  of the int8 view sign-extends them all. A few passes over the payload whatever the format.
  """
  if bits == 8:
    return np.frombuffer(payload, np.int8)
  code_shifts, byte_shifts = _chunk(bits)
  raw = np.frombuffer(payload, dtype=np.uint8)
  if raw.size % len(byte_shifts):
    raw = np.concatenate([raw, np.zeros(-raw.size % len(byte_shifts), np.uint8)])
  raw = raw.reshape(-1, len(byte_shifts))
  codes = np.empty((len(raw), len(code_shifts)), np.uint8)
  for j, bit in enumerate(code_shifts):
    byte, shift = divmod(bit, 8)
    top = codes[:, j]
    if shift + bits <= 8:
      np.left_shift(raw[:, byte], np.uint8(8 - bits - shift), out=top)
    else:
      np.right_shift(raw[:, byte], np.uint8(shift), out=top)
      top <<= np.uint8(8 - bits)
      top |= raw[:, byte + 1] << np.uint8(16 - shift - bits)
  codes = codes.reshape(-1).view(np.int8)
  codes >>= np.int8(8 - bits)
  if codes[n:].any():
    raise WireFormatError("nonzero padding bits after the last payload element")
  return codes[:n]


# --- group-wise scaling ------------------------------------------------------------------
# Groups run over the flattened row-major array: n // g full groups, then one short group
# if g does not divide n. Nothing is padded to a multiple of g, so a huge group size costs
# no memory (np.maximum.reduceat takes the per-group absmax the same way).


def _apply_per_group(flat: np.ndarray, scales: np.ndarray, g: int, op) -> np.ndarray:
  """op(values, scales, out) over each group, with the short final group handled; float32 out, no temporaries."""
  full = flat.size // g
  out = np.empty(flat.size, np.float32)
  op(flat[:full * g].reshape(full, g), scales[:full, None], out[:full * g].reshape(full, g))
  if flat.size % g:
    op(flat[full * g:], scales[full], out[full * g:])
  return out


def _dequantize(codes: np.ndarray, scales: np.ndarray, out: np.ndarray) -> None:
  np.copyto(out, codes)  # int8 -> float32, then a same-dtype multiply: both fast paths of numpy
  out *= scales


def _round_up(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
  """Round float64 values up to `dtype`, so a stored scale is never below absmax/qmax."""
  rounded = values.astype(dtype)
  low = rounded.astype(np.float64) < values
  rounded[low] = np.nextafter(rounded[low], dtype.type(np.inf))
  return rounded


def _top(scales: np.ndarray, fmt: str) -> np.ndarray:
  """qmax * scale in float32: the largest magnitude a group can dequantize to."""
  with np.errstate(over="ignore", invalid="ignore"):
    return scales.astype(np.float32) * np.float32(qmax(fmt))


def _quantize(flat: np.ndarray, fmt: str, g: int, scale_dtype: str) -> tuple[np.ndarray, np.ndarray]:
  q_max = qmax(fmt)
  with np.errstate(over="ignore"):
    absmax = np.maximum.reduceat(np.abs(flat), np.arange(0, flat.size, g))
    scales = _round_up(absmax.astype(np.float64) / q_max, _SCALE_NP[scale_dtype])
  if not np.isfinite(scales).all():
    limit = float(np.finfo(_SCALE_NP[scale_dtype]).max) * q_max
    raise ValueError(f"a group's absmax exceeds {limit:.6g}, beyond {scale_dtype} scales for "
                     f"{fmt}; pass scale_dtype='fp32'")
  if not np.isfinite(_top(scales, fmt)).all():
    raise ValueError("a group's absmax is within a rounding step of the float32 maximum: its "
                     "dequantized values would overflow; rescale the array")
  divisor = np.where(scales > 0, scales, 1).astype(np.float32)
  # |x| <= absmax <= qmax * scale, so the rounded codes already lie in [-qmax, qmax].
  q = _apply_per_group(flat, divisor, g, lambda x, s, out: np.rint(np.divide(x, s, out=out), out=out))
  return scales, q.astype(np.int8)


# --- encode / decode ---------------------------------------------------------------------


def encode(array, fmt: str = "int8", group_size: int = 32, scale_dtype: str = "fp16") -> bytes:
  """Packs a 2-D (M, d) float array (numpy or jax) into a packet.

  group_size and scale_dtype only apply to the int formats; fp16/bf16 packets carry the
  values themselves. Raises ValueError on non-finite input or values beyond the format's range.
  """
  _check_format(fmt, scale_dtype)
  x = np.asarray(array)
  if x.ndim != 2:
    raise ValueError(f"wire packets carry a 2-D (M, d) array, got shape {x.shape}; "
                     "send one packet per sample (reshape batches first)")
  if x.size == 0 or max(x.shape) > _U32_MAX:
    raise ValueError(f"array shape {x.shape} must be non-empty with each dim < 2^32")
  if x.size > MAX_VALUES:
    raise ValueError(f"array shape {x.shape} holds {x.size:,} values, over the wire's limit of {MAX_VALUES:,} "
                     "per packet (wire.MAX_VALUES); send it in several packets")
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
          or x.dtype == ml_dtypes.bfloat16):
    raise ValueError(f"array dtype {x.dtype} is not a real number type")
  with np.errstate(over="ignore"):
    flat = x.astype(np.float32).reshape(-1)
  if not np.isfinite(flat).all():
    raise ValueError("array contains non-finite values (NaN/Inf, or beyond float32 range); "
                     "the wire carries finite numbers only")
  if is_quantized(fmt):
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) \
        or not 1 <= group_size <= _U32_MAX:
      raise ValueError(f"group_size must be an int in [1, 2^32 - 1], got {group_size!r}")
    g = int(group_size)
    scales, q = _quantize(flat, fmt, g, scale_dtype)
    body = scales.tobytes() + _pack(q, _BITS[fmt])
    g_field, scale_code = g, _SCALE_CODES[scale_dtype]
  else:
    if np.abs(flat).max() >= _FLOAT_OVERFLOW[fmt]:  # cheaper than isfinite on the cast
      limit = float(ml_dtypes.finfo(_FLOAT_NP[fmt]).max)
      advice = "use bf16 or an int format" if fmt == "fp16" else "use an int format with fp32 scales"
      raise ValueError(f"array has values beyond the {fmt} range (|x| > {limit:.6g}); {advice}")
    body = flat.astype(_FLOAT_NP[fmt]).tobytes()
    g_field, scale_code = 0, 0
  head = _HEADER.pack(MAGIC, VERSION, _FORMAT_CODES[fmt], scale_code, g_field, *x.shape, 0)
  crc = zlib.crc32(body, zlib.crc32(head[:HEADER_SIZE - 4]))
  return head[:HEADER_SIZE - 4] + struct.pack("<I", crc) + body


def read_header(data: bytes) -> Header:
  """Validates the header and that len(data) is exactly what it claims; no CRC check."""
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise WireFormatError(f"expected bytes, got {type(data).__name__}")
  if len(data) > MAX_PACKET_BYTES:
    raise WireFormatError(f"{len(data):,} bytes, over the largest valid packet ({MAX_PACKET_BYTES:,} B)")
  if len(data) < HEADER_SIZE:
    raise WireFormatError(f"truncated: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header")
  magic, version, fmt_code, scale_code, g, rows, cols, _ = _HEADER.unpack_from(data)
  if magic != MAGIC:
    raise WireFormatError(f"wrong magic {bytes(magic)!r}, expected {MAGIC!r}: not a wire packet")
  if version != VERSION:
    raise WireFormatError(f"unsupported version {version}, this decoder reads version {VERSION}")
  if fmt_code >= len(FORMATS):
    raise WireFormatError(f"unknown format code {fmt_code}")
  fmt = FORMATS[fmt_code]
  if rows == 0 or cols == 0:
    raise WireFormatError(f"empty shape ({rows}, {cols})")
  if is_quantized(fmt):
    scale_dtype = _SCALE_NAMES.get(scale_code)
    if scale_dtype is None:
      raise WireFormatError(f"unknown scale dtype code {scale_code} for {fmt}")
    if g == 0:
      raise WireFormatError(f"group size 0 for {fmt}")
  else:
    if scale_code != 0 or g != 0:
      raise WireFormatError(f"{fmt} packet must have scale code 0 and group size 0, "
                            f"got {scale_code} and {g}")
    scale_dtype = None
  expected = packet_size((rows, cols), fmt, g, scale_dtype or "fp16")
  if len(data) < expected:
    raise WireFormatError(f"truncated: header claims {rows}x{cols} {fmt} needing {expected} bytes, "
                          f"got {len(data)}")
  if len(data) > expected:
    raise WireFormatError(f"{len(data) - expected} trailing bytes after a {expected}-byte packet")
  if rows * cols > MAX_VALUES:
    raise WireFormatError(f"{rows}x{cols} holds more than the {MAX_VALUES:,} values a packet may carry")
  return Header(fmt=fmt, group_size=g, scale_dtype=scale_dtype, shape=(rows, cols))


def _decode(data: bytes) -> np.ndarray:
  header = read_header(data)
  data = memoryview(data).cast("B")  # slices below are views, not copies
  (crc,) = struct.unpack_from("<I", data, HEADER_SIZE - 4)
  if zlib.crc32(data[HEADER_SIZE:], zlib.crc32(data[:HEADER_SIZE - 4])) != crc:
    raise WireFormatError("CRC32 mismatch: packet corrupted")
  rows, cols = header.shape
  n = rows * cols
  body = data[HEADER_SIZE:]
  if not is_quantized(header.fmt):
    values = np.frombuffer(body, dtype=_FLOAT_NP[header.fmt]).astype(np.float32)
    if not np.isfinite(values).all():
      raise WireFormatError(f"{header.fmt} payload holds non-finite values")
    return values.reshape(rows, cols)
  g = header.group_size
  scale_np = _SCALE_NP[header.scale_dtype]
  num_scale_bytes = _num_groups(n, g) * scale_np.itemsize
  scales = np.frombuffer(body[:num_scale_bytes], dtype=scale_np).astype(np.float32)
  if not (np.isfinite(_top(scales, header.fmt)) & ~np.signbit(scales)).all():
    raise WireFormatError("scales must be non-negative with scale * qmax finite in float32")
  q = _unpack(body[num_scale_bytes:], _BITS[header.fmt], n)
  if (q == -qmax(header.fmt) - 1).any():
    raise WireFormatError(f"{header.fmt} code {-qmax(header.fmt) - 1} is outside the symmetric range")
  return _apply_per_group(q, scales, g, _dequantize).reshape(rows, cols)


def decode(data: bytes) -> np.ndarray:
  """Packet -> float32 array of its (M, d) shape; anything malformed -> WireFormatError."""
  try:
    return _decode(data)
  except WireFormatError:
    raise
  except Exception as e:  # A decoder facing the network must fail one way only.
    raise WireFormatError(f"malformed packet ({type(e).__name__}: {e})") from e
