"""HF checkpoints <-> the decoder's params: `from_pretrained` onto a mesh, `save_pretrained` for toy models.

A checkpoint is a HF directory (config.json + safetensors), a hub id, a llama.cpp `.gguf` file (gguf.py)
or a `zoo:` name that resolves to one (zoo.py); every function here that takes a checkpoint takes each.

Loading puts each tensor straight into its sharded place, one at a time: a stacked layer weight is first
allocated (zeros) with its NamedSharding, then each layer's tensor is read (memory-mapped safetensors, or
a GGUF tensor dequantized), converted on host and written into its slice by a jitted, donated
`dynamic_update_index_in_dim`. Host memory peaks at one layer's tensor and device memory at the model plus
one layer's tensor; the whole model never sits on host or on a single device.
"""
import functools
import json
import os
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from interlingua_jax.models import inputs, sharding
from interlingua_jax.models import gguf, zoo
from interlingua_jax.models.config import CheckpointError, DecoderConfig, ParamSpec, param_layout
from interlingua_jax.models.decoder import CausalLM, Params

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def _hf_names(config: DecoderConfig) -> dict[str, tuple[str, Callable, Callable]]:
  """Our param path -> (HF tensor name, HF array -> ours, ours -> HF). Layer names carry `{i}`.

  The names are shared by every family; the family's flags add its optional tensors."""
  c = config
  d, n, k, hd = c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim
  ident = lambda w: w
  names = {
      "embed": ("model.embed_tokens.weight", ident, ident),
      "layers/attn_norm": ("model.layers.{i}.input_layernorm.weight", ident, ident),
      "layers/q": ("model.layers.{i}.self_attn.q_proj.weight", lambda w: w.T.reshape(d, n, hd),
                   lambda w: w.reshape(d, n * hd).T),
      "layers/k": ("model.layers.{i}.self_attn.k_proj.weight", lambda w: w.T.reshape(d, k, hd),
                   lambda w: w.reshape(d, k * hd).T),
      "layers/v": ("model.layers.{i}.self_attn.v_proj.weight", lambda w: w.T.reshape(d, k, hd),
                   lambda w: w.reshape(d, k * hd).T),
      "layers/o": ("model.layers.{i}.self_attn.o_proj.weight", lambda w: w.T.reshape(n, hd, d),
                   lambda w: w.reshape(n * hd, d).T),
      "layers/mlp_norm": ("model.layers.{i}.post_attention_layernorm.weight", ident, ident),
      "layers/gate": ("model.layers.{i}.mlp.gate_proj.weight", np.transpose, np.transpose),
      "layers/up": ("model.layers.{i}.mlp.up_proj.weight", np.transpose, np.transpose),
      "layers/down": ("model.layers.{i}.mlp.down_proj.weight", np.transpose, np.transpose),
      "final_norm": ("model.norm.weight", ident, ident),
  }
  if c.family.qkv_bias:
    for proj, heads in (("q", n), ("k", k), ("v", k)):
      names[f"layers/{proj}_bias"] = (f"model.layers.{{i}}.self_attn.{proj}_proj.bias",
                                      functools.partial(np.reshape, shape=(heads, hd)), np.ravel)
  if c.family.qk_norm:
    for proj in ("q", "k"):
      names[f"layers/{proj}_norm"] = (f"model.layers.{{i}}.self_attn.{proj}_norm.weight", ident, ident)
  if not c.tie_word_embeddings:
    names["lm_head"] = ("lm_head.weight", np.transpose, np.transpose)
  return names


def _flat_layout(config: DecoderConfig) -> dict[str, ParamSpec]:
  flat, _ = jax.tree_util.tree_flatten_with_path(param_layout(config), is_leaf=lambda x: isinstance(x, ParamSpec))
  return {"/".join(p.key for p in path): spec for path, spec in flat}


def _nest(flat: dict[str, Any]) -> Params:
  out: dict[str, Any] = {}
  for path, value in flat.items():
    node = out
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return out


def _expected_hf_shapes(config: DecoderConfig) -> dict[str, tuple[int, ...]]:
  """HF tensor name -> the shape config.json implies for it."""
  layout = _flat_layout(config)
  shapes = {}
  for path, (name, _, to_hf) in _hf_names(config).items():
    spec = layout[path]
    stacked = path.startswith("layers/")
    ours = spec.shape[1:] if stacked else spec.shape
    hf_shape = to_hf(np.empty(ours, np.int8)).shape
    for i in range(config.num_layers if stacked else 1):
      shapes[name.format(i=i)] = hf_shape
  return shapes


# ---------------------------------------------------------------------------------------------------------
# Saving.


def save_pretrained(path: str, config: DecoderConfig, params: Params, tokenizer=None) -> None:
  """Writes config.json + model.safetensors (+ the tokenizer): a directory both `from_pretrained` and
  transformers' `AutoModelForCausalLM.from_pretrained` read (the class is the family's).

  Gathers every tensor on host; meant for the toy models, not for multi-GB checkpoints.
  """
  os.makedirs(path, exist_ok=True)
  flat = {"/".join(p.key for p in kp): v for kp, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  names = _hf_names(config)
  if set(flat) != set(names):
    raise ValueError(f"params do not match config: missing {sorted(set(names) - set(flat))}, "
                     f"unexpected {sorted(set(flat) - set(names))}.")
  tensors = {}
  for key, (name, _, to_hf) in names.items():
    value = np.asarray(jax.device_get(flat[key]))
    if key.startswith("layers/"):
      for i in range(config.num_layers):
        tensors[name.format(i=i)] = np.ascontiguousarray(to_hf(value[i]))
    else:
      tensors[name] = np.ascontiguousarray(to_hf(value))
  save_file(tensors, os.path.join(path, SINGLE_FILE), metadata={"format": "pt"})
  hf = config.to_hf()
  hf["torch_dtype"] = str(jnp.dtype(flat["embed"].dtype))
  with open(os.path.join(path, CONFIG_FILE), "w") as f:
    json.dump(hf, f, indent=2)
  if tokenizer is not None:
    tokenizer.save_pretrained(path)


# ---------------------------------------------------------------------------------------------------------
# Loading.


def resolve_checkpoint_dir(path: str) -> str:
  """A local directory or .gguf file as is; a `zoo:` name through the offline zoo (its .gguf file); a hub id
  ("org/name") through `huggingface_hub.snapshot_download`. (The name predates .gguf files: it returns a
  directory or a file, whatever `read_config` and `load_params` take.)"""
  if zoo.is_zoo_name(path):
    return zoo.resolve(path)
  if os.path.isdir(path) or (gguf.is_gguf(path) and os.path.isfile(path)):
    return path
  if gguf.is_gguf(path):
    raise CheckpointError(f"{path}: not found; pass an existing .gguf file.")
  if os.path.exists(path) or not _HUB_ID.match(path):
    raise CheckpointError(f"{path!r} is not a checkpoint directory; pass a local directory that holds "
                          f"{CONFIG_FILE} and *.safetensors (or a hub id such as 'meta-llama/Llama-3.1-8B-Instruct', "
                          f"a .gguf file, or one of {', '.join(zoo.names())}).")
  try:
    import huggingface_hub
    return huggingface_hub.snapshot_download(
        repo_id=path, allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"],
        ignore_patterns=["consolidated*", "original/*"])  # Mistral/Meta-format duplicates of the weights
  except Exception as e:  # offline, gated, unknown repo: one message that says what to do instead
    raise CheckpointError(f"{path!r} is not a local directory and could not be downloaded from the Hugging Face hub "
                          f"({type(e).__name__}: {e}). Without network access, download the checkpoint elsewhere "
                          f"and pass its local directory.") from e


def _local(checkpoint: str) -> str:
  """A zoo name as its file; any other checkpoint as is."""
  return zoo.resolve(checkpoint) if zoo.is_zoo_name(checkpoint) else checkpoint


def read_config(directory: str) -> DecoderConfig:
  """Parses and validates `config.json` of a checkpoint directory (a .gguf file's metadata, for one)."""
  directory = _local(directory)
  if gguf.is_gguf(directory):
    return gguf.read_config(directory)
  file = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(file):
    raise CheckpointError(f"{file}: not found; a checkpoint directory needs the model's {CONFIG_FILE}.")
  try:
    with open(file) as f:
      hf = json.load(f)
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{file}: not valid JSON ({e}).") from None
  try:
    return DecoderConfig.from_hf(hf, source=file)
  except CheckpointError:
    raise
  except (TypeError, ValueError) as e:  # e.g. "num_hidden_layers": "two"
    raise CheckpointError(f"{file}: a field has a value of the wrong type ({e}).") from None


def _weight_files(directory: str) -> dict[str, str] | None:
  """Tensor name -> shard path from the index, or None for a single `model.safetensors`."""
  index = os.path.join(directory, INDEX_FILE)
  if os.path.isfile(index):
    try:
      with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError) as e:
      raise CheckpointError(f"{index}: not a valid safetensors index (needs a 'weight_map'): {e}.") from None
    files = {name: os.path.join(directory, shard) for name, shard in weight_map.items()}
    for shard in sorted(set(files.values())):
      if not os.path.isfile(shard):
        raise CheckpointError(f"{shard}: missing shard; {index} lists it but the file does not exist.")
    return files
  if not os.path.isfile(os.path.join(directory, SINGLE_FILE)):
    raise CheckpointError(f"{directory}: no weights; expected {SINGLE_FILE} or {INDEX_FILE} with its shards.")
  return None


class _Tensors:
  """Memory-mapped access to every tensor of a checkpoint, validated against the config up front."""

  def __init__(self, directory: str, config: DecoderConfig):
    files = _weight_files(directory)
    if files is None:
      single = os.path.join(directory, SINGLE_FILE)
      handle = self._open(single)
      files = {name: single for name in handle.keys()}
      self.handles = {single: handle}
    else:
      self.handles = {shard: self._open(shard) for shard in sorted(set(files.values()))}
    self.files = files
    for name, shape in _expected_hf_shapes(config).items():
      if name not in files:
        raise CheckpointError(f"{directory}: tensor {name!r} is missing from the checkpoint "
                              f"(looked in {sorted(os.path.basename(s) for s in self.handles)}).")
      file = files[name]
      if name not in self.handles[file].keys():
        raise CheckpointError(f"{file}: tensor {name!r} is listed for this shard in the index but is not in it.")
      tensor = self.handles[file].get_slice(name)
      inputs.check_weight_dtype(file, name, tensor.get_dtype())
      got = tuple(tensor.get_shape())
      if got != shape:
        raise CheckpointError(f"{file}: tensor {name!r} has shape {got} but {CONFIG_FILE} implies {shape}; "
                              f"the config does not belong to these weights.")

  @staticmethod
  def _open(file: str):
    try:
      return safe_open(file, framework="numpy")
    except (SafetensorError, OSError) as e:
      raise CheckpointError(f"{file}: truncated or corrupt safetensors file ({e}).") from None

  def get(self, name: str) -> np.ndarray:
    file = self.files[name]
    try:
      array = self.handles[file].get_tensor(name)
    except SafetensorError as e:
      raise CheckpointError(f"{file}: cannot read tensor {name!r} ({e}).") from None
    inputs.check_finite_weights(file, name, array)
    return array


@functools.partial(jax.jit, donate_argnums=0)
def _set_layer(stack: jax.Array, piece: jax.Array, i: jax.Array) -> jax.Array:
  return jax.lax.dynamic_update_index_in_dim(stack, piece, i, 0)


def place_params(config: DecoderConfig, dtype, mesh: Mesh, get: Callable[[str], np.ndarray]) -> Params:
  """Params sharded by `sharding.param_shardings`, filled tensor by tensor from `get(HF tensor name)`, which
  returns the tensor in HF's layout (each checkpoint format brings its own `get`)."""
  layout, shardings = _flat_layout(config), {}
  for kp, s in jax.tree_util.tree_flatten_with_path(sharding.param_shardings(config, mesh))[0]:
    shardings["/".join(p.key for p in kp)] = s
  flat = {}
  for path, (name, to_ours, _) in _hf_names(config).items():
    target = shardings[path]
    read = lambda n: np.asarray(to_ours(get(n))).astype(dtype)
    if not path.startswith("layers/"):
      flat[path] = jax.device_put(read(name), target)
      continue
    layer_sharding = NamedSharding(mesh, P(*target.spec[1:]))
    stack = jnp.zeros(layout[path].shape, dtype, device=target)
    for i in range(config.num_layers):
      stack = _set_layer(stack, jax.device_put(read(name.format(i=i)), layer_sharding), jnp.int32(i))
    flat[path] = stack
  return _nest(flat)


def load_params(directory: str, config: DecoderConfig, dtype, mesh: Mesh) -> Params:
  """Reads the checkpoint (directory or .gguf file) tensor by tensor into params on `mesh`."""
  if gguf.is_gguf(directory):
    tensors = gguf.Tensors(directory, config, _expected_hf_shapes(config))
  else:
    tensors = _Tensors(directory, config)
  return place_params(config, dtype, mesh, tensors.get)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
GENERATION_CONFIG_FILE = "generation_config.json"


def _has_tokenizer(directory: str) -> bool:
  return any(os.path.isfile(os.path.join(directory, f)) for f in TOKENIZER_FILES)


def load_tokenizer(directory: str, *, required: bool = False):
  """The checkpoint's tokenizer (no weight is read), or None when the directory has none.

  Pad fallback: the real Mistral-v0.3 and Llama-3.1 tokenizers have no pad token. Then the EOS token
  pads (pad_token_id = eos_token_id): no vocabulary entry is added, so the embedding table keeps its
  shape, and pads are masked everywhere (attention_mask 0, loss_mask 0), so their id is never read.
  A .gguf file holds its tokenizer in its metadata (`gguf.load_tokenizer`).
  """
  directory = _local(directory)
  if gguf.is_gguf(directory):
    return gguf.load_tokenizer(directory, required=required)
  if not _has_tokenizer(directory):
    if required:
      raise CheckpointError(f"{directory}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)}).")
    return None
  from transformers import AutoTokenizer
  tokenizer = AutoTokenizer.from_pretrained(directory)
  if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
    tokenizer.pad_token = tokenizer.eos_token
  return tokenizer


def stop_token_ids(directory: str, config: DecoderConfig, tokenizer) -> tuple[int, ...]:
  """Every id that ends generation: the tokenizer's EOS, config.json's and generation_config.json's
  eos_token_id (Llama-3.1-Instruct lists 128001, 128008 and 128009 there; its tokenizer names one).
  A .gguf file has no generation_config.json: `gguf.stop_token_ids` says what stands in for it."""
  directory = _local(directory)
  if gguf.is_gguf(directory):
    return gguf.stop_token_ids(directory, config, tokenizer)
  ids = [] if tokenizer is None or tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
  ids += config.eos_token_id
  file = os.path.join(directory, GENERATION_CONFIG_FILE)
  if os.path.isfile(file):
    try:
      with open(file) as f:
        eos = json.load(f).get("eos_token_id")
    except json.JSONDecodeError as e:
      raise CheckpointError(f"{file}: not valid JSON ({e}).") from None
    ids += [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
  return tuple(dict.fromkeys(int(i) for i in ids))


def load_model(path: str, *, dtype: str | jnp.dtype = jnp.bfloat16, mesh: Mesh | None = None,
               attention_impl: str | None = None) -> CausalLM:
  """The frozen LM of a checkpoint (directory, hub id, .gguf file, zoo name), its weights sharded on `mesh`
  (None = (1, 1) mesh)."""
  directory = resolve_checkpoint_dir(path)
  config = read_config(directory)
  mesh = sharding.make_mesh(data=1, model=1) if mesh is None else mesh
  params = load_params(directory, config, jnp.dtype(dtype), mesh)
  return CausalLM(config, params, mesh, attention_impl=attention_impl)


def from_pretrained(path: str, *, dtype: str | jnp.dtype = jnp.bfloat16, mesh: Mesh | None = None,
                    attention_impl: str | None = None) -> tuple[CausalLM, Any]:
  """(CausalLM, tokenizer) from a checkpoint (directory, hub id, .gguf file, zoo name); the tokenizer is None
  if the directory has no tokenizer files. Without a mesh, the model lives on a (1, 1) mesh of the first device."""
  model = load_model(path, dtype=dtype, mesh=mesh, attention_impl=attention_impl)
  return model, load_tokenizer(resolve_checkpoint_dir(path))
