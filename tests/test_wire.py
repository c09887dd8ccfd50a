"""Tests for the soft-token wire packet (docs/wire_format.md).

The expected sizes, byte layout, CRC and error bounds are computed here from the numbers
in the doc, independently of interlingua_jax.evaluation.wire's own helpers.
"""
import math
import struct
import tracemalloc
import zlib

import hypothesis.extra.numpy as hnp
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlingua_jax.evaluation import wire

FORMATS = ("fp16", "bf16", "int8", "int6", "int4")
INT_FORMATS = ("int8", "int6", "int4")
BITS = {"fp16": 16, "bf16": 16, "int8": 8, "int6": 6, "int4": 4}
QMAX = {"int8": 127, "int6": 31, "int4": 7}
FORMAT_CODE = {"fp16": 0, "bf16": 1, "int8": 2, "int6": 3, "int4": 4}
SCALE_CODE = {"fp16": 1, "fp32": 2}
SCALE_BYTES = {"fp16": 2, "fp32": 4}


# --- independent reference helpers (from the doc) --------------------------------------


def doc_size(n: int, fmt: str, g: int = 32, scale_dtype: str = "fp16") -> int:
  scales = 0 if fmt in ("fp16", "bf16") else -(-n // g) * SCALE_BYTES[scale_dtype]
  return 24 + scales + -(-n * BITS[fmt] // 8)


def doc_header(fmt: str, scale_code: int, g: int, rows: int, cols: int, version: int = 1,
               magic: bytes = b"ILWP") -> bytes:
  return (magic + version.to_bytes(2, "little") + bytes([FORMAT_CODE.get(fmt, fmt), scale_code])
          + g.to_bytes(4, "little") + rows.to_bytes(4, "little") + cols.to_bytes(4, "little"))


def seal(head20: bytes, body: bytes) -> bytes:
  """A packet with the doc's CRC: crc32 of header bytes 0..19, then the body."""
  return head20 + struct.pack("<I", zlib.crc32(head20 + body)) + body


def reseal(packet: bytes) -> bytes:
  return seal(packet[:20], packet[24:])


def ref_bitpack(codes, bits: int) -> bytes:
  """Element i at bits [b*i, b*i + b), LSB first, two's complement: a Python big integer."""
  acc = 0
  for i, c in enumerate(codes):
    acc |= (int(c) & ((1 << bits) - 1)) << (bits * i)
  return acc.to_bytes(-(-len(codes) * bits // 8), "little")


def error_bound(x: np.ndarray, fmt: str, g: int, scale_dtype: str) -> np.ndarray:
  """Per-element bound on |x - decode(encode(x))| as documented."""
  flat = np.abs(x.astype(np.float32).reshape(-1).astype(np.float64))
  if fmt == "fp16":
    return np.maximum(flat * 2.0**-11, 2.0**-25).reshape(x.shape)
  if fmt == "bf16":
    return np.maximum(flat * 2.0**-8, 2.0**-134).reshape(x.shape)
  q = QMAX[fmt]
  padded = np.pad(flat, (0, -flat.size % g)).reshape(-1, g)
  s = padded.max(axis=1) / q
  rel, tiny = (2.0**-10, 2.0**-24) if scale_dtype == "fp16" else (2.0**-23, 2.0**-149)
  s_max = np.maximum(s * (1 + rel), s + tiny)
  bound = s_max / 2 * (1 + q * 2.0**-22)
  return np.repeat(bound, g)[:flat.size].reshape(x.shape)


def assert_within_bound(x, fmt, g=32, scale_dtype="fp16"):
  y = wire.decode(wire.encode(x, fmt, g, scale_dtype))
  assert y.dtype == np.float32 and y.shape == x.shape
  err = np.abs(y.astype(np.float64) - np.asarray(x, np.float32).astype(np.float64))
  bound = error_bound(np.asarray(x), fmt, g, scale_dtype)
  assert (err <= bound).all(), f"{fmt}: max excess {(err - bound).max()}"
  return err, bound


# --- sizes -----------------------------------------------------------------------------

# The table in docs/wire_format.md for 64 x 4096, g = 32.
DOC_64x4096 = {
    ("fp16", "fp16"): 524_312, ("bf16", "fp16"): 524_312,
    ("int8", "fp16"): 278_552, ("int6", "fp16"): 213_016, ("int4", "fp16"): 147_480,
    ("int8", "fp32"): 294_936, ("int6", "fp32"): 229_400, ("int4", "fp32"): 163_864,
}


@pytest.mark.parametrize("fmt,scale_dtype", sorted(DOC_64x4096))
def test_64x4096_packet_bytes_equal_documented_formula(fmt, scale_dtype):
  x = np.random.default_rng(0).standard_normal((64, 4096)).astype(np.float32)
  packet = wire.encode(x, fmt, 32, scale_dtype)
  assert len(packet) == DOC_64x4096[fmt, scale_dtype] == doc_size(64 * 4096, fmt, 32, scale_dtype)
  assert wire.packet_size((64, 4096), fmt, 32, scale_dtype) == len(packet)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape,g", [((1, 1), 32), ((3, 11), 5), ((7, 13), 32), ((2, 3), 100),
                                     ((5, 9), 1)])
def test_packet_bytes_formula_odd_sizes(fmt, shape, g):
  x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
  packet = wire.encode(x, fmt, g)
  assert len(packet) == doc_size(math.prod(shape), fmt, g) == wire.packet_size(shape, fmt, g)


# --- byte layout -----------------------------------------------------------------------


def test_int4_packet_bytes_match_doc_layout():
  # absmax 7 = qmax: scale exactly 1.0, codes equal the values.
  packet = wire.encode(np.array([[7.0, -1.0, 3.0]]), "int4", group_size=3)
  body = np.float16(1.0).tobytes() + bytes([0xF7, 0x03])  # low nibble first
  assert packet == seal(doc_header("int4", 1, 3, 1, 3), body)


@pytest.mark.parametrize("fmt", INT_FORMATS)
@pytest.mark.parametrize("n,g", [(1, 1), (5, 5), (37, 8), (64, 32), (101, 7)])
def test_int_payload_matches_reference_bitpacking(fmt, n, g):
  q = QMAX[fmt]
  codes = np.random.default_rng(n).integers(-q, q + 1, n)
  codes[::g] = q  # every group holds qmax, so every scale is exactly 1.0
  packet = wire.encode(codes.astype(np.float32)[None, :], fmt, g, "fp32")
  num_scales = -(-n // g)
  assert packet[24:24 + 4 * num_scales] == np.ones(num_scales, "<f4").tobytes()
  assert packet[24 + 4 * num_scales:] == ref_bitpack(codes, BITS[fmt])
  np.testing.assert_array_equal(wire.decode(packet)[0], codes)


@pytest.mark.parametrize("fmt,dtype", [("fp16", np.float16), ("bf16", ml_dtypes.bfloat16)])
def test_float_payload_is_plain_little_endian(fmt, dtype):
  x = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
  packet = wire.encode(x, fmt)
  assert packet == seal(doc_header(fmt, 0, 0, 3, 5), x.astype(dtype).tobytes())


# --- round trips and error bounds ------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scale_dtype", ["fp16", "fp32"])
@pytest.mark.parametrize("shape,g", [((64, 4096), 32), ((3, 11), 5), ((7, 13), 32), ((4, 4), 1)])
def test_round_trip_within_documented_bound(fmt, scale_dtype, shape, g):
  x = np.random.default_rng(3).standard_normal(shape).astype(np.float32) * 3
  err, bound = assert_within_bound(x, fmt, g, scale_dtype)
  if x.size >= 4096:  # The bound is tight, not vacuous: random data comes close to it.
    assert (err / bound).max() > 0.5


@pytest.mark.parametrize("fmt", INT_FORMATS)
def test_all_zero_groups_decode_to_exact_zeros(fmt):
  x = np.random.default_rng(4).standard_normal((4, 41)).astype(np.float32)
  x[0, :40] = 0.0  # groups 0 and 1 (g = 20) are all zero
  x[3, 37:] = 0.0  # so is the short final group, elements 160..163
  y = wire.decode(wire.encode(x, fmt, group_size=20))
  assert (y[0, :40] == 0).all() and (y[3, 37:] == 0).all()
  assert_within_bound(x, fmt, 20)
  np.testing.assert_array_equal(wire.decode(wire.encode(np.zeros((2, 7)), fmt)), 0)


@pytest.mark.parametrize("fmt", INT_FORMATS)
@pytest.mark.parametrize("scale_dtype", ["fp16", "fp32"])
def test_stored_scales_are_absmax_over_qmax_rounded_up(fmt, scale_dtype):
  rng = np.random.default_rng(7)
  x = (rng.standard_normal((8, 50)) * np.exp(rng.uniform(-25, 5, (8, 1)))).astype(np.float32)
  g = 10
  packet = wire.encode(x, fmt, g, scale_dtype)
  dtype = np.dtype("<f2" if scale_dtype == "fp16" else "<f4")
  stored = np.frombuffer(packet, dtype, count=x.size // g, offset=24)
  exact = np.abs(x.reshape(-1, g)).max(axis=1).astype(np.float64) / QMAX[fmt]
  assert (stored >= exact).all()  # never below: no code is ever clipped
  below = np.nextafter(stored, dtype.type(0)).astype(np.float64)
  assert (below < exact).all()  # and the smallest such value


@pytest.mark.parametrize("fmt", INT_FORMATS)
def test_short_final_group_has_its_own_scale(fmt):
  # 35 values in groups of 32: the last 3 are tiny and must not share the big group's step.
  x = np.concatenate([np.full(32, 100.0), [1e-3, -2e-3, 3e-3]]).astype(np.float32)[None]
  y = wire.decode(wire.encode(x, fmt))
  np.testing.assert_allclose(y[0, 32:], x[0, 32:], rtol=0.15)


def test_subnormal_and_tiny_values_within_bound():
  x = np.array([[1e-40, -3e-39, 2.0**-133, 1e-7, -3e-8, 2.0**-24, 0.0, 1e-30]], np.float32)
  for fmt in FORMATS:
    for scale_dtype in ("fp16", "fp32"):
      assert_within_bound(x, fmt, 3, scale_dtype)


def test_accepts_jax_and_other_dtypes():
  x = np.random.default_rng(5).standard_normal((4, 8)).astype(np.float32)
  assert wire.encode(jnp.asarray(x), "int6") == wire.encode(x, "int6")
  assert wire.encode(jnp.asarray(x, jnp.bfloat16), "bf16") == wire.encode(x, "bf16")
  assert wire.encode(x.astype(np.float64), "int8") == wire.encode(x, "int8")
  np.testing.assert_array_equal(wire.decode(wire.encode(np.arange(6).reshape(2, 3), "fp16")),
                                np.arange(6).reshape(2, 3))


def test_decode_accepts_bytearray_and_memoryview():
  packet = wire.encode(np.ones((2, 3)), "int4")
  for data in (bytearray(packet), memoryview(packet)):
    np.testing.assert_array_equal(wire.decode(data), wire.decode(packet))


def test_read_header_reports_packet_fields():
  packet = wire.encode(np.ones((5, 6)), "int6", group_size=7, scale_dtype="fp32")
  assert wire.read_header(packet) == wire.Header(fmt="int6", group_size=7, scale_dtype="fp32",
                                                 shape=(5, 6))


# --- encode input checks ---------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_rejects_non_finite(bad, fmt):
  x = np.ones((2, 3), np.float32)
  x[1, 2] = bad
  with pytest.raises(ValueError, match="non-finite"):
    wire.encode(x, fmt)


def test_encode_rejects_float64_beyond_float32():
  with pytest.raises(ValueError, match="non-finite"):
    wire.encode(np.array([[1e300]]), "int8")


def test_encode_rejects_values_beyond_fp16_and_bf16():
  with pytest.raises(ValueError, match="fp16 range"):
    wire.encode(np.array([[65520.0]]), "fp16")
  assert wire.decode(wire.encode(np.array([[65519.0]]), "fp16"))[0, 0] == 65504.0
  overflow = np.float32(2.0**128 * (1 - 2.0**-9))  # bf16 max + half an ulp: rounds to inf
  with pytest.raises(ValueError, match="bf16 range"):
    wire.encode(np.array([[-overflow]]), "bf16")
  below = np.nextafter(overflow, np.float32(0))
  assert wire.decode(wire.encode(np.array([[below]]), "bf16"))[0, 0] == ml_dtypes.finfo(
      ml_dtypes.bfloat16).max


@pytest.mark.parametrize("fmt,limit", [("int8", 65504 * 127), ("int6", 65504 * 31),
                                       ("int4", 65504 * 7)])
def test_fp16_scales_never_overflow(fmt, limit):
  ok = np.array([[float(limit)]], np.float32)
  assert_within_bound(ok, fmt, 32, "fp16")
  too_big = np.array([[limit * 1.001]], np.float32)
  with pytest.raises(ValueError, match="scale_dtype='fp32'"):
    wire.encode(too_big, fmt, scale_dtype="fp16")
  assert_within_bound(too_big, fmt, 32, "fp32")


def test_fp32_scales_refuse_overflowing_dequantization():
  with pytest.raises(ValueError, match="overflow"):
    wire.encode(np.array([[np.finfo(np.float32).max]]), "int8", scale_dtype="fp32")
  y = wire.decode(wire.encode(np.array([[1e38, -1.0]]), "int8", scale_dtype="fp32"))
  assert np.isfinite(y).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(fmt="int3"), "unknown wire format"),
    (dict(scale_dtype="bf16"), "unknown scale dtype"),
    (dict(group_size=0), "group_size"),
    (dict(group_size=-4), "group_size"),
    (dict(group_size=2.0), "group_size"),
    (dict(group_size=True), "group_size"),
    (dict(group_size=2**32), "group_size"),
])
def test_encode_rejects_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    wire.encode(np.ones((2, 2)), **kwargs)


@pytest.mark.parametrize("array,match", [
    (np.ones(8), "2-D"),
    (np.ones((2, 2, 2)), "2-D"),
    (np.ones((0, 4)), "non-empty"),
    (np.ones((2, 2), np.complex64), "real number"),
    (np.array([["a", "b"]]), "real number"),
])
def test_encode_rejects_bad_arrays(array, match):
  with pytest.raises(ValueError, match=match):
    wire.encode(array)


# --- safe decoding ---------------------------------------------------------------------

GOOD = wire.encode(np.random.default_rng(6).standard_normal((3, 11)).astype(np.float32), "int6", 5)


def _hostile_cases():
  body = GOOD[24:]
  int6 = lambda **kw: seal(doc_header(**{**dict(fmt="int6", scale_code=1, g=5, rows=3, cols=11),
                                         **kw}), body)
  return [
      ("empty", b"", "truncated"),
      ("short", GOOD[:10], "truncated"),
      ("header only", GOOD[:24], "truncated"),
      ("truncated body", GOOD[:-1], "truncated"),
      ("trailing", GOOD + b"\0", "trailing"),
      ("magic", b"XLWP" + GOOD[4:], "magic"),
      ("version", int6(version=2), "version"),
      ("format code", int6(fmt=9), "format code"),
      ("scale code", int6(scale_code=3), "scale dtype code"),
      ("no scales for int", int6(scale_code=0), "scale dtype code"),
      ("group size 0", int6(g=0), "group size 0"),
      ("zero rows", int6(rows=0), "empty shape"),
      ("2^40 elements", int6(rows=2**20, cols=2**20), "truncated"),
      ("absurd dims", int6(rows=2**32 - 1, cols=2**32 - 1), "truncated"),
      ("huge group", int6(g=2**32 - 1), "trailing"),
      ("fp16 with scales", seal(doc_header("fp16", 1, 0, 3, 11), bytes(66)), "scale code 0"),
      ("fp16 with group", seal(doc_header("fp16", 0, 32, 3, 11), bytes(66)), "group size 0"),
      ("bad crc body", GOOD[:-1] + bytes([GOOD[-1] ^ 0x10]), "CRC"),
      ("bad crc header", GOOD[:20] + bytes([GOOD[20] ^ 1]) + GOOD[21:], "CRC"),
      # fp16 <-> bf16 is a one-bit flip of equal size: only the header CRC catches it.
      ("fp16 as bf16", wire.encode(np.ones((2, 2)), "fp16")[:6] + b"\x01"
       + wire.encode(np.ones((2, 2)), "fp16")[7:], "CRC"),
  ]


@pytest.mark.parametrize("name,data,match", _hostile_cases(), ids=[c[0] for c in _hostile_cases()])
def test_decode_rejects_malformed_with_one_line_reason(name, data, match):
  with pytest.raises(wire.WireFormatError, match=match) as info:
    wire.decode(data)
  assert "\n" not in str(info.value)


def _crafted(fmt, n, scales: bytes, payload: bytes, g=32, scale_code=1):
  return seal(doc_header(fmt, scale_code, g, 1, n), scales + payload)


@pytest.mark.parametrize("name,data,match", [
    ("negative scale", _crafted("int8", 2, np.float16(-1).tobytes(), b"\x01\x02"), "non-negative"),
    ("nan scale", _crafted("int8", 2, np.float16(np.nan).tobytes(), b"\x01\x02"), "non-negative"),
    ("inf scale", _crafted("int8", 2, np.float16(np.inf).tobytes(), b"\x01\x02"), "non-negative"),
    ("overflowing fp32 scale", _crafted("int8", 2, np.float32(3e38).tobytes(), b"\x01\x02",
                                        scale_code=2), "finite"),
    ("int8 code -128", _crafted("int8", 2, np.float16(1).tobytes(), b"\x80\x02"), "outside"),
    ("int4 code -8", _crafted("int4", 2, np.float16(1).tobytes(), b"\x18"), "outside"),
    ("int4 padding bits", _crafted("int4", 1, np.float16(1).tobytes(), b"\x11"), "padding"),
    ("int6 padding bits", _crafted("int6", 1, np.float16(1).tobytes(), b"\x41"), "padding"),
    ("fp16 inf", seal(doc_header("fp16", 0, 0, 1, 1), np.float16(np.inf).tobytes()), "non-finite"),
    ("bf16 nan", seal(doc_header("bf16", 0, 0, 1, 1), b"\xc0\x7f"), "non-finite"),
])
def test_decode_rejects_crafted_packets_with_valid_crc(name, data, match):
  with pytest.raises(wire.WireFormatError, match=match):
    wire.decode(data)


@pytest.mark.parametrize("data", ["ILWP", None, 12, [1, 2], np.zeros(30, np.uint8)])
def test_decode_rejects_non_bytes(data):
  with pytest.raises(wire.WireFormatError, match="expected bytes"):
    wire.decode(data)


def _peak_bytes(fn) -> int:
  tracemalloc.start()
  try:
    fn()
    return tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()


def test_hostile_headers_allocate_nothing_proportional_to_their_claims():
  huge = seal(doc_header("int8", 1, 32, 2**20, 2**20), bytes(64))  # claims 2^40 elements
  with pytest.raises(wire.WireFormatError):
    assert _peak_bytes(lambda: wire.decode(huge)) < 64 * 1024
  # A legal but hostile group size: one group of 2^32 - 1 would be 16 GiB if padded.
  packet = wire.encode(np.ones((3, 5)), "int4", group_size=2**32 - 1)
  assert _peak_bytes(lambda: wire.decode(packet)) < 64 * 1024
  np.testing.assert_allclose(wire.decode(packet), 1.0, rtol=1e-3)


def test_packets_beyond_the_documented_limits_are_refused_before_any_work():
  n = wire.MAX_VALUES + 1
  with pytest.raises(ValueError, match="over the wire's limit"):
    wire.encode(np.broadcast_to(np.float32(1), (1, n)), "int4")  # a view: no n-sized allocation
  one_group = 2**32 - 1  # a single fp16 scale
  claim = seal(doc_header("int4", 1, one_group, 1, n), bytes(2 + (n * 4 + 7) // 8))  # length matches the claim
  with pytest.raises(wire.WireFormatError, match="more than the 16,777,216 values"):
    assert _peak_bytes(lambda: wire.decode(claim)) < 64 * 1024
  with pytest.raises(wire.WireFormatError, match="over the largest valid packet"):
    wire.decode(bytes(wire.MAX_PACKET_BYTES + 1))
  assert wire.MAX_PACKET_BYTES == wire.packet_size((1, wire.MAX_VALUES), "int8", 1, "fp32")


def test_unexpected_errors_are_wrapped(monkeypatch):
  def boom(*args):
    raise IndexError("internal")
  monkeypatch.setattr(wire, "_unpack", boom)
  with pytest.raises(wire.WireFormatError, match="IndexError"):
    wire.decode(GOOD)


# --- property tests --------------------------------------------------------------------

_arrays = hnp.arrays(
    np.float32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=24),
    elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=_arrays, fmt=st.sampled_from(FORMATS), g=st.integers(1, 70),
       scale_dtype=st.sampled_from(["fp16", "fp32"]), magnitude=st.sampled_from([1e-30, 1e-3, 1.0]))
def test_property_round_trip_within_bound(x, fmt, g, scale_dtype, magnitude):
  x = (x * np.float32(magnitude)).astype(np.float32)
  packet = wire.encode(x, fmt, g, scale_dtype)
  assert len(packet) == doc_size(x.size, fmt, g, scale_dtype)
  assert_within_bound(x, fmt, g, scale_dtype)


def _decode_or_reject(data: bytes) -> None:
  """decode may succeed (then: float32, header's shape, finite) or raise WireFormatError."""
  try:
    y = wire.decode(data)
  except wire.WireFormatError:
    return
  rows, cols = struct.unpack_from("<II", data, 12)
  assert y.dtype == np.float32 and y.shape == (rows, cols) and np.isfinite(y).all()


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.binary(max_size=120),
                      st.binary(max_size=120).map(lambda b: b"ILWP\x01\x00" + b)))
def test_property_random_bytes_raise_only_wire_format_error(data):
  _decode_or_reject(data)


_packets = st.builds(
    lambda fmt, shape, scale_dtype, g: wire.encode(
        np.random.default_rng(shape[0] * 31 + shape[1]).standard_normal(shape), fmt, g, scale_dtype),
    st.sampled_from(FORMATS), st.tuples(st.integers(1, 5), st.integers(1, 20)),
    st.sampled_from(["fp16", "fp32"]), st.integers(1, 40))


@settings(max_examples=300, deadline=None)
@given(packet=_packets, flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                                      max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10**6)), extra=st.binary(max_size=8),
       fix_crc=st.booleans())
def test_property_mutated_packets_raise_only_wire_format_error(packet, flips, cut, extra, fix_crc):
  data = bytearray(packet)
  for pos, xor in flips:
    data[pos % len(data)] ^= xor
  if cut is not None:
    data = data[:cut % (len(data) + 1)]
  data = bytes(data) + extra
  if fix_crc and len(data) >= 24:  # get past the CRC to exercise the checks behind it
    data = reseal(data)
  _decode_or_reject(data)
