"""The frozen source's hidden states of the training pool, computed once and kept in the workdir.

The source LM never changes, so the states of layer L it gives a training example are a pure function of
(its weights, L, dtype, attention impl, the example's tokenised prompt). Recomputing them every step is the
source forward of every step (on GPUs the whole 7B forward); this module computes them once for the whole
pool, in length buckets with `models.frozen.source_states` on the run's mesh, and stores them under
`<workdir>/source_cache/<key>/`:

  states.bin   every example's states at its real tokens only (ragged), concatenated: (tokens, d), raw dtype
  offsets.npy  (N + 1,) int64: example i is rows offsets[i]:offsets[i + 1]
  meta.json    what the key was computed from, the dtype and the sizes; written last

The key is a hash of: the checkpoint's resolved path and every file of it as (name, size, mtime_ns), the
resolved layer, the dtype, the attention impl and the bytes of every example's `source_ids`/`source_mask`.
The files' stat stands for the weights' content: hashing the tensors would read gigabytes (or gather them
from a sharded mesh) on every run, while any rewrite of a weight file changes its size or mtime; a copy that
keeps mtimes (`cp -p`) of other weights of the same size would be mistaken for the same model.

A cache is built in `.<key>.partial/` and renamed to `<key>/` once complete, so a killed build leaves no
directory that could be reused; one that fails the size checks on open (truncated, a file missing) is rebuilt.
Several processes: all compute together (the forward is one sharded program, the states come back replicated),
process 0 alone writes, the others wait at a barrier and then read the same (shared) directory.
"""
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from orbax.checkpoint import multihost

from interlingua_jax.models.frozen import source_states
from interlingua_jax.core import outputs
from interlingua_jax.data import pipeline
from interlingua_jax.models import DecoderConfig
from interlingua_jax.models.loading import resolve_checkpoint_dir
from interlingua_jax.training.loop import same_on_all_processes

CACHE_DIR = "source_cache"
VERSION = 1  # of the layout above; a new one never reads an old cache
STATES, OFFSETS, META = "states.bin", "offsets.npy", "meta.json"


@dataclasses.dataclass(frozen=True)
class SourceStates:
  """A complete cache, opened read-only: `states[i]` is example i's (length_i, d) states, memory-mapped."""
  directory: str
  states: np.ndarray  # (tokens, d) memmap
  offsets: np.ndarray  # (N + 1,)

  def __len__(self) -> int:
    return len(self.offsets) - 1

  def __getitem__(self, i: int) -> np.ndarray:
    return self.states[self.offsets[i]:self.offsets[i + 1]]


def model_files(path: str) -> list[tuple[str, int, int]]:
  """(name, size, mtime_ns) of a checkpoint: the file itself, or every file directly in its directory."""
  if os.path.isfile(path):
    return [(os.path.basename(path), os.path.getsize(path), os.stat(path).st_mtime_ns)]
  out = []
  for name in sorted(os.listdir(path)):
    file = os.path.join(path, name)
    if os.path.isfile(file):
      stat = os.stat(file)
      out.append((name, stat.st_size, stat.st_mtime_ns))
  return out


def key_contents(encoded: Sequence[dict[str, np.ndarray]], *, model_path: str, layer: int, dtype: str,
                 attention_impl: str | None) -> dict:
  """Everything the cached states depend on (the module docstring says why each part)."""
  directory = os.path.abspath(resolve_checkpoint_dir(model_path))
  digest = hashlib.blake2b(digest_size=16)
  for e in encoded:
    digest.update(np.ascontiguousarray(e["source_ids"], np.int32).tobytes())
    digest.update(np.ascontiguousarray(e["source_mask"], np.int32).tobytes())
  return {"version": VERSION, "model": directory, "model_files": model_files(directory), "layer": layer,
          "dtype": str(jnp.dtype(dtype)), "attention_impl": attention_impl, "num_examples": len(encoded),
          "source_sha": digest.hexdigest()}


def cache_key(contents: dict) -> str:
  return hashlib.blake2b(json.dumps(contents, sort_keys=True).encode(), digest_size=10).hexdigest()


def open_cache(directory: str) -> SourceStates | None:
  """The cache in `directory` if it is complete and consistent, else None (said when something is there)."""
  if not os.path.isdir(directory):
    return None
  try:
    with open(os.path.join(directory, META)) as f:
      meta = json.load(f)
    offsets = np.load(os.path.join(directory, OFFSETS))
    dtype, shape = jnp.dtype(meta["dtype"]), (meta["num_tokens"], meta["hidden_size"])
    expected = shape[0] * shape[1] * dtype.itemsize
    size = os.path.getsize(os.path.join(directory, STATES))
    if offsets.shape != (meta["key"]["num_examples"] + 1,) or offsets[-1] != shape[0] or size != expected:
      raise ValueError(f"{STATES} holds {size} bytes and {OFFSETS} {offsets.shape[0]} offsets; meta.json "
                       f"implies {expected} bytes and {meta['key']['num_examples'] + 1}")
  except (OSError, ValueError, KeyError, TypeError) as e:
    logging.warning("source cache %s is incomplete or damaged (%s); rebuilding it", directory, e)
    return None
  states = np.memmap(os.path.join(directory, STATES), dtype=dtype, mode="r", shape=shape)
  return SourceStates(directory, states, offsets)


def load_or_build(root: str, encoded: Sequence[dict[str, np.ndarray]], *, model_path: str, params,
                  config: DecoderConfig, layer: int, dtype: str, attention_impl: str | None, mesh: Mesh,
                  length_buckets: Sequence[int], batch_size: int) -> SourceStates:
  """The states of `encoded` (example i = `encoded[i]`) under `root`: reused when a complete cache of the same
  key is there, else computed with `batch_size` rows per forward (a multiple of the mesh's data axis)."""
  contents = key_contents(encoded, model_path=model_path, layer=layer, dtype=dtype, attention_impl=attention_impl)
  directory = os.path.join(root, cache_key(contents))
  found = open_cache(directory) if jax.process_index() == 0 else None
  if same_on_all_processes(found is not None):
    cache = found or open_cache(directory)
    if cache is None:
      raise FileNotFoundError(f"process {jax.process_index()} cannot read the source cache {directory} that "
                              "process 0 found: the workdir must be one shared directory for every process.")
    logging.info("source states: reusing %s (%d examples, %d tokens)", directory, len(cache), cache.states.shape[0])
    return cache
  _build(directory, encoded, contents, params=params, config=config, layer=layer, attention_impl=attention_impl,
         mesh=mesh, length_buckets=length_buckets, batch_size=batch_size)
  if jax.process_count() > 1:  # the coordination service's barrier: no collective that times out after 30 s
    multihost.get_barrier_sync_fn()(key=f"interlingua_jax:source-cache-{os.path.basename(directory)}",
                                    timeout_ms=600_000)
  cache = open_cache(directory)
  if cache is None:
    raise FileNotFoundError(f"the source cache {directory} that process 0 wrote cannot be read here.")
  return cache


@functools.lru_cache(maxsize=None)  # one compilation per bucket width for every build of a run (or a test session)
def _forward(mesh: Mesh, config: DecoderConfig, layer: int, attention_impl: str | None):
  """`models.frozen.source_states` jitted with its result replicated: every process gets every row, process 0 writes."""
  return jax.jit(lambda params, ids, mask: source_states(params, config, ids, mask, layer, attention_impl),
                 out_shardings=NamedSharding(mesh, P()))


def _build(directory: str, encoded: Sequence[dict[str, np.ndarray]], contents: dict, *, params,
           config: DecoderConfig, layer: int, attention_impl: str | None, mesh: Mesh,
           length_buckets: Sequence[int], batch_size: int) -> None:
  """Computes every example's states in batches of one length bucket (left-padded to it, as training batches
  are) and writes them, on process 0, into a partial directory renamed to `directory` when complete."""
  writer = jax.process_index() == 0
  lengths = np.array([int(e["source_mask"].sum()) for e in encoded])
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  full = encoded[0]["source_mask"].shape[0]
  widths = np.array([min(pipeline.bucket(n, length_buckets), full) if length_buckets else full for n in lengths])
  partial = os.path.join(os.path.dirname(directory), f".{os.path.basename(directory)}.partial")
  rows_sharding = NamedSharding(mesh, P("data"))
  put = lambda x: jax.make_array_from_callback(x.shape, rows_sharding, lambda index: x[index])
  forward = _forward(mesh, config, layer, attention_impl)
  ids_spec = jax.ShapeDtypeStruct((batch_size, full), jnp.int32)
  out = jax.eval_shape(forward, params, ids_spec, ids_spec)
  if writer:
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed build
    os.makedirs(partial)
    states = np.memmap(os.path.join(partial, STATES), dtype=out.dtype, mode="w+",
                       shape=(int(offsets[-1]), out.shape[-1]))
    logging.info("source states: computing %d examples (%d tokens, %.1f MB) into %s", len(encoded), offsets[-1],
                 states.nbytes / 1e6, directory)
  for width in sorted(set(widths)):
    members = np.flatnonzero(widths == width)
    for start in range(0, len(members), batch_size):
      chunk = members[start:start + batch_size]
      rows = np.concatenate([chunk, np.repeat(chunk[:1], batch_size - len(chunk))])  # one shape per bucket
      ids = np.stack([encoded[i]["source_ids"][full - width:] for i in rows])
      mask = np.stack([encoded[i]["source_mask"][full - width:] for i in rows])
      host = np.asarray(forward(params, put(ids), put(mask)).addressable_data(0))
      if writer:
        for r, i in enumerate(chunk):
          states[offsets[i]:offsets[i + 1]] = host[r, width - lengths[i]:]
  if not writer:
    return
  states.flush()
  np.save(os.path.join(partial, OFFSETS), offsets)
  outputs.write_json(os.path.join(partial, META), {"key": contents, "dtype": str(states.dtype),
                                                   "num_tokens": int(offsets[-1]), "hidden_size": states.shape[1]})
  shutil.rmtree(directory, ignore_errors=True)  # a damaged cache of this key (open_cache refused it)
  os.replace(partial, directory)
