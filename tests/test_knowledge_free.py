"""The baselines that need no channel and the probes of the complementary world: what would explain `latent`
without the private fact crossing (prior, the name swaps), and the bridge's ceiling (source_fact)."""
import dataclasses

import pytest

from interlingua_jax.evaluation import harness as evaluate, methods
from interlingua_jax.data.records import Example
from test_evaluate import system  # noqa: F401  (the tiny bridged system, a module fixture)


def _ex(i: int, gold: str, key: str | None, **kw) -> Example:
  return Example(f"q{i}", f"Question {i}?", f"{gold} + 0 = {gold}\n#### {gold}", gold, prior_key=key, **kw)


def test_prior_answers_the_most_common_gold_of_the_same_key():
  train = [_ex(0, "3", "a"), _ex(1, "3", "a"), _ex(2, "5", "a"), _ex(3, "7", "b"), _ex(4, "2", "b"),
           _ex(5, "7", None), _ex(6, "7", None)]
  table = methods.prior_answers(train)
  assert table["a"].endswith("#### 3")
  assert table["b"].endswith("#### 2")  # a tie (7 once, 2 once) goes to the smaller gold: deterministic
  assert table[None].endswith("#### 7")  # overall: 7 three times
  ctx = dataclasses.replace(_context_stub(), prior=table)
  for key, gold in (("a", "3"), ("b", "2"), ("unseen", "7"), (None, "7")):
    p = evaluate.prepare(ctx, "prior", methods.Question(_ex(9, "0", key), None))
    assert p.answer.endswith(f"#### {gold}") and p.ids == []
  with pytest.raises(ValueError, match="needs the training answers"):
    evaluate.prepare(_context_stub(), "prior", methods.Question(_ex(9, "0", "a"), None))


def _context_stub():
  return evaluate.Context(None, None, "A:", 4, None, None)


PROBES = {"name_swap": "Question about Fay?", "unknown_name": "Question about Bob?", "fact": "5",
          "stated": "Sam has {count} pens. How many?"}


def test_source_fact_scores_the_first_number_against_the_private_fact():
  e = _ex(0, "7", None, probes=tuple(PROBES.items()))
  score = methods.get("source_fact").score
  assert score(e, " 5 + 2") == {"correct": True, "extracted": "5", "gold": "5"}
  assert score(e, " 4 + 2")["correct"] is False and score(e, "no number")["extracted"] is None


def test_probe_methods_read_the_probe_and_refuse_without_one(system):
  _, _, s, ctx = system
  q = evaluate.questions(s.test[:2], seed=0)[0]
  probed = dataclasses.replace(q, example=dataclasses.replace(q.example, probes=tuple(PROBES.items())))
  src = ctx.frozen.source_tokenizer
  latent = evaluate.prepare(ctx, "latent", probed)
  for method, probe in (("latent_name_swap", "name_swap"), ("latent_unknown_name", "unknown_name")):
    p = evaluate.prepare(ctx, method, probed)
    swapped = dataclasses.replace(q.example, question=PROBES[probe])
    assert p.source_ids == ctx.builder.ids(src, ctx.builder.bridge_prompt(swapped)) != latent.source_ids
    assert p.ids == latent.ids  # the target's side is latent's: only what the translator reads changes
  relay = evaluate.prepare(ctx, "text_relay_stated", dataclasses.replace(probed, relayed=" 5 + 2"))
  assert "Sam has 5 pens. How many?" in ctx.frozen.target_tokenizer.decode(relay.ids)
  for method in set(methods.PROBES) - {"source_fact"}:  # the tiny data writes no probes
    with pytest.raises(ValueError, match="has no '.*' probe"):
      evaluate.prepare(ctx, method, dataclasses.replace(q, relayed="5"))
  with pytest.raises(ValueError, match="has no 'fact' probe"):
    methods.get("source_fact").score(q.example, "5")


def test_probe_methods_on_data_without_probes_fail_before_any_weight(tiny_mistral_dir, tiny_llama_dir, tmp_path):
  from tiny_system import preflight_of, tiny_config, write_data
  cfg = tiny_config(tiny_mistral_dir, tiny_llama_dir, write_data(str(tmp_path)))
  cfg.eval.methods = ("latent", "latent_name_swap")
  with pytest.raises(ValueError, match=r"holds \['latent_name_swap'\], which read .* without a 'probes' field"):
    preflight_of(cfg, tmp_path / "work")
