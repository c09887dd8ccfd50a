"""Checkpoint loading: sharded checkpoints, hub ids, and one clear error per kind of bad input."""
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM

from interlingua_jax import models
from interlingua_jax.models import CheckpointError


@pytest.fixture
def llama_copy(tiny_llama_dir, tmp_path):
  """A private copy of the tiny Llama checkpoint that a test may damage."""
  path = tmp_path / "ckpt"
  shutil.copytree(tiny_llama_dir, path)
  return str(path)


def edit_config(path, **changes):
  file = os.path.join(path, "config.json")
  with open(file) as f:
    hf = json.load(f)
  hf.update(changes)
  with open(file, "w") as f:
    json.dump(hf, f)


@pytest.fixture(scope="module")
def sharded_dir(tiny_llama_dir, tmp_path_factory):
  """The tiny Llama re-saved by transformers in several shards with a model.safetensors.index.json."""
  path = str(tmp_path_factory.mktemp("sharded"))
  AutoModelForCausalLM.from_pretrained(tiny_llama_dir).save_pretrained(path, max_shard_size="200KB")
  return path


def test_sharded_checkpoint_with_index_loads(sharded_dir, tiny_llama_dir):
  shards = [f for f in os.listdir(sharded_dir) if f.endswith(".safetensors")]
  assert len(shards) >= 2 and os.path.isfile(os.path.join(sharded_dir, "model.safetensors.index.json"))
  sharded, tokenizer = models.from_pretrained(sharded_dir, dtype=jnp.float32)
  single, _ = models.from_pretrained(tiny_llama_dir, dtype=jnp.float32)
  assert tokenizer is None  # transformers' save_pretrained wrote no tokenizer here
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), sharded.params,
               single.params)
  ids = np.arange(3, 15)[None]
  with torch.no_grad():
    ref = AutoModelForCausalLM.from_pretrained(sharded_dir).eval()(torch.tensor(ids)).logits.numpy()
  got = np.asarray(sharded(input_ids=jnp.asarray(ids)).logits)
  assert np.abs(got - ref).max() / np.abs(ref).max() <= 1e-4


def test_tokenizer_comes_from_the_checkpoint_directory(tiny_llama_dir, tiny_tokenizer):
  _, tokenizer = models.from_pretrained(tiny_llama_dir, dtype=jnp.float32)
  text = "Q: Ann has 12 apples. #### 12"
  assert tokenizer(text).input_ids == tiny_tokenizer(text).input_ids
  assert tokenizer(text).input_ids[0] == tokenizer.bos_token_id == 1
  assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 2)


def test_missing_config_json(llama_copy):
  os.remove(os.path.join(llama_copy, "config.json"))
  with pytest.raises(CheckpointError, match=r"config\.json: not found"):
    models.from_pretrained(llama_copy)


def test_missing_shard_named_in_index(sharded_dir, tmp_path):
  path = tmp_path / "broken"
  shutil.copytree(sharded_dir, path)
  with open(path / "model.safetensors.index.json") as f:
    shard = sorted(set(json.load(f)["weight_map"].values()))[-1]
  os.remove(path / shard)
  with pytest.raises(CheckpointError, match=rf"{shard}: missing shard; .*index\.json lists it"):
    models.from_pretrained(str(path))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_corrupt_safetensors(llama_copy, damage):
  file = os.path.join(llama_copy, "model.safetensors")
  data = open(file, "rb").read()
  with open(file, "wb") as f:
    f.write(data[:len(data) - 1000] if damage == "truncate" else b"not a safetensors file" * 10)
  with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated or corrupt safetensors file"):
    models.from_pretrained(llama_copy)


def test_unsupported_model_type(llama_copy):
  edit_config(llama_copy, model_type="gpt2")
  with pytest.raises(CheckpointError, match=r"config\.json: model_type 'gpt2' is not supported"):
    models.from_pretrained(llama_copy)


def test_tensor_shape_disagrees_with_config(llama_copy):
  edit_config(llama_copy, intermediate_size=96)
  with pytest.raises(CheckpointError, match=r"model\.safetensors: tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' "
                                            r"has shape \(128, 64\) but config\.json implies \(96, 64\)"):
    models.from_pretrained(llama_copy)


def test_missing_tensor(llama_copy):
  file = os.path.join(llama_copy, "model.safetensors")
  tensors = load_file(file)
  del tensors["model.layers.1.self_attn.v_proj.weight"]
  save_file(tensors, file, metadata={"format": "pt"})
  with pytest.raises(CheckpointError, match=r"tensor 'model\.layers\.1\.self_attn\.v_proj\.weight' is missing"):
    models.from_pretrained(llama_copy)


def test_directory_without_weights(llama_copy):
  os.remove(os.path.join(llama_copy, "model.safetensors"))
  with pytest.raises(CheckpointError, match=r"no weights; expected model\.safetensors or model\.safetensors\.index"):
    models.from_pretrained(llama_copy)


def test_hub_id_offline_asks_for_a_local_directory(monkeypatch, tmp_path):
  import huggingface_hub.constants
  monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
  monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
  monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
  with pytest.raises(CheckpointError, match="could not be downloaded from the Hugging Face hub.*pass its local "
                                            "directory"):
    models.from_pretrained("no-such-org/no-such-model")


def test_path_that_is_neither_directory_nor_hub_id(tmp_path):
  with pytest.raises(CheckpointError, match="is not a checkpoint directory"):
    models.from_pretrained(str(tmp_path / "missing" / "dir"))
