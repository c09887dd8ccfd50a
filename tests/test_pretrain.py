"""Toy-LM pretraining: it learns, it refuses bad input, and the toy models land on disk as HF
checkpoints that `models.from_pretrained` loads, built once and reused."""
import os

import jax
import numpy as np
import pytest

from interlingua_jax import models
from interlingua_jax.toy import pretrain, task
from interlingua_jax.toy import tokenizer as toy_tokenizer

TINY = pretrain.ToyLMSize(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)


@pytest.fixture(scope="module")
def tok():
  return toy_tokenizer.train_target_tokenizer(task.pretrain_texts()(np.random.default_rng(0), 500), vocab_size=300)


def test_lm_batch_wraps_each_text_in_bos_and_eos(tok):
  config = pretrain.toy_config("llama", len(tok), TINY)
  texts = ["Q: Ann has 3 pens.\nA: 3", "Q: Ben has 4 cups. Then Ben buys 2 more cups.\nA: 4 + 2 = 6\n#### 6"]
  ids, mask, loss_mask = pretrain.lm_batch(tok, texts, config, min_length=40)
  assert ids.shape == mask.shape == loss_mask.shape and ids.shape[1] % 16 == 0 and ids.shape[1] >= 40
  for row, m, lm, text in zip(ids, mask, loss_mask, texts):
    n = int(m.sum())
    assert m[:n].all() and not m[n:].any()
    assert lm[0] == 0 and lm[1:n].all() and not lm[n:].any()  # every real token after the first is predicted
    assert row[0] == config.bos_token_id and row[n - 1] == config.eos_token_id[0]
    assert list(row[1:n - 1]) == tok(text, add_special_tokens=False)["input_ids"]
    assert (row[n:] == config.pad_token_id).all()


def test_lm_batch_with_pieces_predicts_only_the_learned_pieces_and_eos(tok):
  config = pretrain.toy_config("llama", len(tok), TINY)
  texts = [[("Q: Ann has 3 pens.\nA:", False), (" 3", True)],
           [("Q: Ben has 4 cups.\nA:", False), (" 4", True), ("\n\nQ: and 2 more?\nA:", False), (" 6", True)]]
  ids, mask, loss_mask = pretrain.lm_batch(tok, texts, config)
  encode = lambda t: tok(t, add_special_tokens=False)["input_ids"]
  for row, m, lm, pieces in zip(ids, mask, loss_mask, texts):
    expected_ids, expected_mask = [config.bos_token_id], [0]
    for piece, learned in pieces:  # each piece tokenised on its own
      expected_ids += encode(piece)
      expected_mask += [int(learned)] * len(encode(piece))
    n = int(m.sum())
    assert list(row[:n]) == expected_ids + [config.eos_token_id[0]]
    assert list(lm[:n]) == expected_mask + [1] and not lm[n:].any()
    assert sum(lm) == sum(len(encode(p)) for p, learned in pieces if learned) + 1


def test_pretrain_lm_cuts_the_held_out_loss(tok):
  config = pretrain.toy_config("llama", len(tok), TINY)
  held_out = [task.lm_text(e) for e in task.make_split("test", 32, seed=0)]
  batch = pretrain.lm_batch(tok, held_out, config)
  before = float(pretrain.lm_loss(models.init_params(config, jax.random.PRNGKey(0)), config, *batch))
  params = pretrain.pretrain_lm(config, tok, task.pretrain_texts(), steps=40, batch_size=16, learning_rate=1e-2,
                                seed=0, log_every=20)
  after = float(pretrain.lm_loss(params, config, *batch))
  assert before > 0.9 * np.log(len(tok))  # a random model is near uniform over the vocabulary
  assert after < 0.6 * before  # measured: 5.7 -> 2.1


def test_pretrain_lm_rejects_bad_input(tok):
  config = pretrain.toy_config("llama", len(tok), TINY)
  small = pretrain.toy_config("llama", len(tok) - 1, TINY)
  sample = task.pretrain_texts()
  with pytest.raises(ValueError, match="vocab_size"):
    pretrain.pretrain_lm(small, tok, sample, steps=1, batch_size=2, learning_rate=1e-3, seed=0)
  with pytest.raises(ValueError, match="steps"):
    pretrain.pretrain_lm(config, tok, sample, steps=0, batch_size=2, learning_rate=1e-3, seed=0)


def test_prepare_toy_models_writes_loadable_checkpoints_once(tmp_path, monkeypatch):
  trained = {}
  real_pretrain_lm = pretrain.pretrain_lm

  def recording(config, *args, **kwargs):
    trained[config.model_type] = real_pretrain_lm(config, *args, **kwargs)
    return trained[config.model_type]

  kwargs = dict(seed=0, steps=2, batch_size=4, source_size=TINY, target_size=TINY, tokenizer_corpus_size=300)
  monkeypatch.setattr(pretrain, "pretrain_lm", recording)
  source_dir, target_dir = pretrain.prepare_toy_models(str(tmp_path), **kwargs)
  assert (source_dir, target_dir) == (str(tmp_path / "toy_models" / "source"), str(tmp_path / "toy_models" / "target"))

  question = "Q: Ann has 3 pens. Later Ann buys 4 more pens. How many pens does Ann have now?\nA:"
  loaded_tokenizers = []
  for directory, model_type in ((source_dir, "mistral"), (target_dir, "llama")):
    for name in ("config.json", "model.safetensors", "tokenizer.json", pretrain.MARKER):
      assert os.path.isfile(os.path.join(directory, name)), name
    model, loaded_tok = models.from_pretrained(directory, dtype="float32")
    assert model.config.model_type == model_type and model.config.vocab_size == len(loaded_tok)
    ids = np.asarray([loaded_tok(question)["input_ids"]])
    expected = models.forward(trained[model_type], model.config, input_ids=ids).logits
    np.testing.assert_allclose(model(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)
    loaded_tokenizers.append(loaded_tok)
  assert loaded_tokenizers[0].get_vocab() != loaded_tokenizers[1].get_vocab()

  calls = []
  monkeypatch.setattr(pretrain, "pretrain_lm",
                      lambda config, *a, **k: calls.append(config.model_type) or trained[config.model_type])
  stamp = os.path.getmtime(os.path.join(target_dir, "model.safetensors"))
  assert pretrain.prepare_toy_models(str(tmp_path), **kwargs) == (source_dir, target_dir)
  assert calls == [] and os.path.getmtime(os.path.join(target_dir, "model.safetensors")) == stamp

  os.remove(os.path.join(target_dir, pretrain.MARKER))  # as if interrupted before the marker was written
  pretrain.prepare_toy_models(str(tmp_path), **kwargs)
  assert calls == ["llama"]
  pretrain.prepare_toy_models(str(tmp_path), **{**kwargs, "steps": 3})  # other settings: both rebuilt
  assert calls == ["llama", "mistral", "llama"]
  pretrain.prepare_toy_models(str(tmp_path), **{**kwargs, "steps": 4}, roles=("target",))  # one process per LM
  assert calls == ["llama", "mistral", "llama", "llama"]
