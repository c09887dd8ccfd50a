"""A llama.cpp `.gguf` file as a checkpoint: config from its metadata, weights dequantized tensor by tensor.

One GGUF file holds what a HF directory spreads over config.json, the tokenizer files and safetensors:
metadata key/values, tensor infos, then the (mostly quantized) tensor data. `read_config` maps the
metadata onto a DecoderConfig; `Tensors` hands `loading.place_params` each tensor under its HF name and
in HF's layout, dequantized to float32 on host one at a time (gguf-py, no torch); `load_tokenizer` builds
the tokenizer through transformers' GGUF support. The header, architecture, tensor types, names and
shapes are all checked when the file is opened, so a bad file fails in one line before any weight is
placed.

llama.cpp's converter permutes the rows of attn_q/attn_k of llama-architecture models from HF's
rotate-half RoPE layout to its interleaved one; `_unpermute` undoes that. qwen2 files keep HF's order
(llama.cpp runs them with NEOX-style RoPE), so they are read as stored.
"""
import functools
import os
import re
import struct

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from interlingua_jax.models import inputs
from interlingua_jax.models.config import CheckpointError, DecoderConfig

ARCHITECTURES = {"llama": "llama", "qwen2": "qwen2"}  # GGUF general.architecture -> family (families.py)
PERMUTED_ARCHITECTURES = ("llama",)  # whose attn_q/attn_k rows llama.cpp's converter permuted
VERSIONS = (2, 3)
_T = GGMLQuantizationType
# The float types and llama.cpp's legacy and k-quants: what its usual presets write and gguf-py dequantizes.
SUPPORTED_TYPES = (_T.F32, _T.F16, _T.BF16, _T.Q4_0, _T.Q4_1, _T.Q5_0, _T.Q5_1, _T.Q8_0, _T.Q2_K, _T.Q3_K, _T.Q4_K,
                   _T.Q5_K, _T.Q6_K)
# HF tensor name -> llama.cpp's (gguf-py's TensorNameMap for llama/qwen2).
_GLOBAL_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                 "lm_head.weight": "output.weight"}
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")


def is_gguf(path: str) -> bool:
  return path.lower().endswith(".gguf")


def gguf_name(hf_name: str) -> str:
  """llama.cpp's name of a HF tensor name ("model.layers.3.mlp.up_proj.weight" -> "blk.3.ffn_up.weight")."""
  layer = _HF_LAYER.fullmatch(hf_name)
  if layer:
    return f"blk.{layer[1]}.{_LAYER_NAMES[layer[2]]}"
  return _GLOBAL_NAMES[hf_name]


def _check_header(file: str) -> None:
  """Magic and version first: gguf-py would otherwise report a damaged header as some later parse error."""
  with open(file, "rb") as f:
    head = f.read(8)
  if len(head) < 8 or head[:4] != b"GGUF":
    raise CheckpointError(f"{file}: not a GGUF file (starts with {head[:4]!r}, not b'GGUF'); the file is damaged "
                          "or is not a llama.cpp model.")
  version = struct.unpack("<I", head[4:])[0]
  if version not in VERSIONS and struct.unpack(">I", head[4:])[0] not in VERSIONS:  # big-endian files exist too
    raise CheckpointError(f"{file}: GGUF version {version} is not supported (this loader reads versions "
                          f"{' and '.join(map(str, VERSIONS))}); the header is damaged or the file is from a newer "
                          "llama.cpp.")


@functools.lru_cache(maxsize=2)
def _open(file: str, size: int, mtime_ns: int) -> GGUFReader:
  """The parsed file, its tensor types checked; cached by (path, size, mtime) since parsing a big vocabulary
  takes seconds and config, tokenizer and weights each need it."""
  del size, mtime_ns  # only the cache key
  _check_header(file)
  try:
    reader = GGUFReader(file)
  except (ValueError, IndexError, KeyError, OverflowError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{file}: truncated or corrupt GGUF file ({type(e).__name__}: {e}).") from None
  for t in reader.tensors:
    if t.tensor_type not in SUPPORTED_TYPES:
      raise CheckpointError(f"{file}: tensor {t.name!r} is stored as {t.tensor_type.name}, which this loader does "
                            f"not dequantize; supported types: {', '.join(q.name for q in SUPPORTED_TYPES)}.")
  return reader


def reader(file: str) -> GGUFReader:
  try:
    stat = os.stat(file)
  except FileNotFoundError:
    raise CheckpointError(f"{file}: not found; pass an existing .gguf file.") from None
  return _open(os.path.abspath(file), stat.st_size, stat.st_mtime_ns)


def _metadata(file: str, r: GGUFReader, key: str, default=KeyError):
  field = r.get_field(key)
  if field is None:
    if default is KeyError:
      raise CheckpointError(f"{file}: metadata key {key!r} is missing; the file is not a complete model.")
    return default
  return field.contents()


def read_config(file: str) -> DecoderConfig:
  """The DecoderConfig the metadata describes; vocab_size is token_embd's row count (the tokenizer may be smaller)."""
  r = reader(file)
  arch = _metadata(file, r, "general.architecture", None)
  if arch not in ARCHITECTURES:
    raise CheckpointError(f"{file}: architecture {arch!r} is not supported; this loader reads GGUF architectures "
                          f"{', '.join(ARCHITECTURES)}.")
  get = lambda key, default=KeyError: _metadata(file, r, f"{arch}.{key}", default)
  shapes = {t.name: tuple(int(n) for n in t.shape) for t in r.tensors}  # GGUF order: (columns, rows)
  if "token_embd.weight" not in shapes:
    raise CheckpointError(f"{file}: tensor 'token_embd.weight' is missing; the file is not a complete model.")
  vocab = shapes["token_embd.weight"][1]
  tokens = r.get_field("tokenizer.ggml.tokens")
  if tokens is not None and len(tokens.data) > vocab:
    raise CheckpointError(f"{file}: the tokenizer has {len(tokens.data)} tokens but token_embd.weight has {vocab} "
                          "rows; the file is inconsistent.")
  if get("vocab_size", vocab) != vocab:
    raise CheckpointError(f"{file}: {arch}.vocab_size={get('vocab_size')} but token_embd.weight has {vocab} rows.")
  if get("rope.scaling.type", "none") != "none" or "rope_freqs.weight" in shapes:
    raise CheckpointError(f"{file}: RoPE scaling ({arch}.rope.scaling.type / rope_freqs.weight) is not supported "
                          "for GGUF files; pass the model's HF directory instead.")
  hidden, heads = int(get("embedding_length")), int(get("attention.head_count"))
  head_dim = int(get("attention.key_length", hidden // heads))
  if int(get("rope.dimension_count", head_dim)) != head_dim:
    raise CheckpointError(f"{file}: {arch}.rope.dimension_count={get('rope.dimension_count')} rotates part of a "
                          f"head of {head_dim}; partial rotary embeddings are not supported.")
  token = lambda name: _metadata(file, r, f"tokenizer.ggml.{name}", None)
  eos = token("eos_token_id")
  return DecoderConfig(
      model_type=ARCHITECTURES[arch],
      vocab_size=vocab,
      hidden_size=hidden,
      intermediate_size=int(get("feed_forward_length")),
      num_layers=int(get("block_count")),
      num_heads=heads,
      num_kv_heads=int(get("attention.head_count_kv", heads)),
      head_dim=head_dim,
      rms_norm_eps=float(get("attention.layer_norm_rms_epsilon")),
      rope_theta=float(get("rope.freq_base", 10000.0)),
      tie_word_embeddings="output.weight" not in shapes,
      bos_token_id=token("bos_token_id"),
      eos_token_id=() if eos is None else (int(eos),),
      pad_token_id=token("padding_token_id"),
      max_position_embeddings=int(get("context_length", 4096)),
  )


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
  """Inverse of llama.cpp's `permute`: per head, rows (pair, half) interleaved back to (half, pair)."""
  return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Tensors:
  """A GGUF file's tensors by HF name, checked against the shapes the config implies (`expected`) up front."""

  def __init__(self, file: str, config: DecoderConfig, expected: dict[str, tuple[int, ...]]):
    self.file, self.config = file, config
    self.tensors = {t.name: t for t in reader(file).tensors}
    for name, shape in expected.items():
      theirs = gguf_name(name)
      if theirs not in self.tensors:
        raise CheckpointError(f"{file}: tensor {theirs!r} is missing; the file is not a complete model.")
      got = tuple(int(n) for n in reversed(self.tensors[theirs].shape))
      if got != shape:
        raise CheckpointError(f"{file}: tensor {theirs!r} has shape {got} but the metadata implies {shape}.")
    unused = sorted(set(self.tensors) - {gguf_name(n) for n in expected})
    if unused:  # e.g. biases of a llama file: ignoring them would silently change the model
      raise CheckpointError(f"{file}: tensors this port does not use for {config.model_type}: {unused[:4]}"
                            f"{' …' if len(unused) > 4 else ''}.")

  def get(self, name: str) -> np.ndarray:
    """The float32 tensor `name` (HF name, HF layout: (out, in) for projections)."""
    theirs = gguf_name(name)
    t = self.tensors[theirs]
    array = np.asarray(dequantize(t.data, t.tensor_type), np.float32)
    array = array.reshape(tuple(int(n) for n in reversed(t.shape)))
    if self.config.model_type in PERMUTED_ARCHITECTURES:
      if name.endswith("self_attn.q_proj.weight"):
        array = _unpermute(array, self.config.num_heads)
      elif name.endswith("self_attn.k_proj.weight"):
        array = _unpermute(array, self.config.num_kv_heads)
    inputs.check_finite_weights(self.file, theirs, array)
    return array


def load_tokenizer(file: str, *, required: bool = False):
  """transformers' tokenizer of the file (it takes the chat template from the metadata too), or None when the
  file has no tokenizer metadata; EOS pads when there is no pad token, as `loading.load_tokenizer` does."""
  if reader(file).get_field("tokenizer.ggml.model") is None:  # a damaged file failed in reader(), in one line
    if required:
      raise CheckpointError(f"{file}: holds no tokenizer (no tokenizer.ggml.* metadata); use a GGUF file converted "
                            "with its tokenizer.")
    return None
  from transformers import AutoTokenizer
  path = os.path.abspath(file)
  tokenizer = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
  if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
    tokenizer.pad_token = tokenizer.eos_token
  return tokenizer


# Turn ends that the HF releases' generation_config.json lists besides the tokenizer's EOS: ChatML's
# <|im_end|> wherever the template uses it, and Qwen's <|endoftext|> (Qwen2.5-Instruct: [151645, 151643]).
_CHATML_END = "<|im_end|>"
_FAMILY_STOPS = {"qwen2": ("<|endoftext|>",)}


def stop_token_ids(file: str, config: DecoderConfig, tokenizer) -> tuple[int, ...]:
  """Every id that ends generation: the tokenizer's EOS, the metadata's, and the chat template's turn ends.

  A GGUF file carries no generation_config.json, so transformers stops on the metadata's EOS alone; the
  HF releases of these models stop on every id listed here."""
  r = reader(file)
  ids = [] if tokenizer is None or tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
  ids += config.eos_token_id
  wanted = list(_FAMILY_STOPS.get(config.model_type, ()))
  if _CHATML_END in (_metadata(file, r, "tokenizer.chat_template", None) or ""):
    wanted.append(_CHATML_END)
  tokens = r.get_field("tokenizer.ggml.tokens")
  if wanted and tokens is not None:
    names = tokens.contents()
    ids += [names.index(w) for w in wanted if w in names]
  return tuple(dict.fromkeys(int(i) for i in ids))
