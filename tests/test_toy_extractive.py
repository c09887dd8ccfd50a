"""The extractive-QA toy world: SQuAD-format span questions with distractors and held-out names, read by the
real SQuAD loader, and two tiny targets of two families (Llama with BOS, Qwen2 without) saved as HF
checkpoints that load back with the same logits as transformers computes, built once."""
import json
import os
import re

import numpy as np
import pytest
import torch
from test_models import TOL, hf_forward, rel_err

from interlingua_jax import models
from interlingua_jax.data import pipeline, prompts, records
from interlingua_jax.models import loading
from interlingua_jax.toy import extractive, pretrain

SHAPE = dict(num_names=200, min_facts=4, max_facts=6, max_same=2, held_out_names=True, distinct_names=False)


def _names(rows) -> set[str]:
  return {w for r in rows for w in re.findall(r"\b[A-Z][a-z]+\b", r["context"] + " " + r["question"])} - {
      "Where", "Who", "How", "What", "Which"}


def test_answers_are_spans_among_distractors_and_test_names_are_held_out(tmp_path):
  train = extractive.make_split("train", 300, seed=0, **SHAPE)
  test = extractive.make_split("test", 100, seed=0, **SHAPE)
  assert extractive.make_split("test", 100, seed=0, **SHAPE) == test  # deterministic
  for row in train + test:
    (answer,), (start,) = row["answers"]["text"], row["answers"]["answer_start"]
    assert row["context"][start:start + len(answer)] == answer
    assert 4 <= row["context"].count(". ") + 1 <= 6
  assert not _names(train) & _names(test)  # no test name occurs in any training text
  info = extractive.information(train, test)
  assert info["test_answers_in_train"] < 1.0 and 0.2 < info["position_em"] < 0.8  # position alone does not answer
  assert all(len(r["candidates"]) >= 2 for r in test)  # every question has a same-relation distractor
  path = str(tmp_path / "test.jsonl")
  extractive._write_jsonl(path, test)
  loaded = records.load_split("squad", "test", path=path)
  assert [(e.id, e.gold, e.context) for e in loaded] == [
      (r["id"], r["answers"]["text"][0], r["context"]) for r in test]
  assert extractive.lm_text(test[0]) == f"{prompts.build_prompt('squad', loaded[0])} {loaded[0].gold}"
  with pytest.raises(ValueError, match="need 3 <= min_facts <= max_facts and 1 <= max_same < min_facts"):
    extractive.prepare(str(tmp_path), **{**extractive.REDUCED, "max_same": 0})


def test_without_held_out_names_the_split_is_by_question_text():
  shape = {**SHAPE, "num_names": 20, "held_out_names": False}
  train = extractive.make_split("train", 300, seed=0, **shape)
  test = extractive.make_split("test", 100, seed=0, **shape)
  assert _names(train) >= _names(test)  # the few names recur ...
  assert all(extractive.is_test_question(r) for r in test) and not any(map(extractive.is_test_question, train))
  rng = np.random.default_rng(3)  # ... and the pretraining stream never holds a test question
  assert not any(extractive.is_test_question(extractive.sample_split(rng, "train", seed=0, **shape))
                 for _ in range(200))


def test_distinct_names_make_the_subject_find_the_fact_and_pieces_teach_only_answers():
  shape = {**SHAPE, "num_names": 40, "held_out_names": False, "distinct_names": True}
  rows = extractive.make_split("train", 200, seed=0, **shape)
  for row in rows:
    names = re.findall(r"\b[A-Z][a-z]+\b", row["context"])
    assert len(names) == len(set(names))  # no name twice in a context: one-hop recall
    assert len(row["candidates"]) >= 2  # still a same-relation distractor
  assert any(len(re.findall(r"\b[A-Z][a-z]+\b", r["context"])) > len(set(re.findall(r"\b[A-Z][a-z]+\b", r["context"])))
             for r in extractive.make_split("train", 200, seed=0, **{**shape, "distinct_names": False}))
  for row in rows[:50]:
    pieces = extractive.lm_pieces(row, questions_per_text=3)
    assert pieces[0] == (prompts.build_prompt("squad", records.Example("", row["question"], "", gold="-",
                                                                         context=row["context"])), False)
    assert pieces[1] == (" " + row["answers"]["text"][0], True)
    assert 2 <= len(pieces) <= 6 and [learned for _, learned in pieces] == [False, True] * (len(pieces) // 2)
    for (prompt, _), (answer, _) in zip(pieces[2::2], pieces[3::2]):
      question = prompt.split("Question: ")[1].split("\n")[0]
      assert answer.strip() in row["context"] and question != row["question"]
      assert not extractive.is_test_question({"context": row["context"], "question": question})


def test_two_targets_of_two_families_and_tokenizers_built_once(toy_extractive_world):
  paths = toy_extractive_world
  root = os.path.dirname(os.path.dirname(paths["info"]))
  with open(paths["info"]) as f:
    assert json.load(f)["num_test"] == extractive.REDUCED["num_test"]
  llama, qwen = (loading.read_config(paths["targets"][name]) for name in ("llama", "qwen"))
  llama_tok, qwen_tok = (loading.load_tokenizer(paths["targets"][name]) for name in ("llama", "qwen"))
  assert (llama.model_type, qwen.model_type) == ("llama", "qwen2")
  text = records.load_split("squad", "test", path=paths["test"])[0].context
  assert llama_tok(text)["input_ids"][0] == llama_tok.bos_token_id == llama.bos_token_id
  assert qwen_tok.bos_token_id is None and qwen.bos_token_id is None
  assert qwen_tok(text)["input_ids"] == pipeline.with_bos(qwen_tok, pipeline.token_ids(qwen_tok, text))
  assert llama_tok(text, add_special_tokens=False)["input_ids"] != qwen_tok(text)["input_ids"]
  ids, mask, _ = pretrain.lm_batch(qwen_tok, [text], qwen)  # the no-BOS path: text, then EOS
  n = int(mask[0].sum())
  assert list(ids[0, :n]) == qwen_tok(text)["input_ids"] + [qwen.eos_token_id[0]] == qwen_tok(text + "<|endoftext|>")[
      "input_ids"]
  marker = os.path.join(paths["targets"]["qwen"], pretrain.MARKER)
  built = os.path.getmtime(marker)
  assert extractive.prepare(root, **extractive.REDUCED) == paths and os.path.getmtime(marker) == built


def test_saved_qwen_target_has_the_logits_transformers_computes(toy_extractive_world):
  import transformers

  directory = toy_extractive_world["targets"]["qwen"]
  model = loading.load_model(directory, dtype="float32")
  tokenizer = loading.load_tokenizer(directory)
  texts = [extractive.lm_text(r) for r in extractive.make_split("test", 2, seed=1, **SHAPE)]
  rows = [tokenizer(t)["input_ids"] for t in texts]
  width = max(map(len, rows))
  ids = np.array([[0] * (width - len(r)) + r for r in rows], np.int32)  # left-padded, as evaluation pads
  mask = (np.arange(width)[None] >= width - np.array([len(r) for r in rows])[:, None]).astype(np.int32)
  ours = models.forward(model.params, model.config, input_ids=ids, attention_mask=mask).logits
  reference = transformers.AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32).eval()
  assert type(reference).__name__ == "Qwen2ForCausalLM"
  theirs, _ = hf_forward(reference, ids.astype(np.int64), mask.astype(np.int64))
  assert rel_err(theirs, ours, mask) <= TOL


def test_the_states_rehearsal_reads_a_toy_model_as_its_frozen_source(toy_extractive_world):
  """`toy.source` names which toy model a states encoder reads (the world has no third model); resolving the
  world gives the source role its checkpoint (the config is not written), and a missing or misplaced name is one clear
  error."""
  import ml_collections

  from configs import interlingua_toy, interlingua_toy_states
  from interlingua_jax.core import errors
  from interlingua_jax.run import validate
  from interlingua_jax import bridges
  from interlingua_jax.run.setup import resolve_paths
  cfg = interlingua_toy_states.get_config()
  cfg.toy.extractive = ml_collections.ConfigDict(extractive.REDUCED)
  cfg.toy.cache_dir = os.path.dirname(os.path.dirname(toy_extractive_world["info"]))
  validate.check(cfg)
  paths = resolve_paths(cfg, "unused: the cache_dir is set", bridges.get(cfg.bridge.kind))
  assert paths.models["source"] == toy_extractive_world["targets"]["llama"] != cfg.source.path
  assert [paths.models[n] for n in ("llama", "qwen")] == [toy_extractive_world["targets"][n] for n in ("llama", "qwen")]
  assert paths.train == toy_extractive_world["train"] and not cfg.data.train_path
  cfg.toy.source = "mistral"
  with pytest.raises(errors.ConfigError, match=r"toy.source='mistral' must name the toy model .* llama, qwen"):
    validate.check(cfg)
  byte_cfg = interlingua_toy.get_config()
  byte_cfg.toy.source = "llama"
  with pytest.raises(errors.ConfigError, match=r"toy.source='llama' is read by interlingua.encoder='states' only"):
    validate.check(byte_cfg)
