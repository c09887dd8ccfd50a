"""The evaluation harness on tiny random models: same questions for every method, honest scoring,
per-sample records that survive a crash, and an aggregate with paired statistics."""
import json

import pytest

from interlingua_jax import evaluate, runner, train
from tiny_system import tiny_config, write_data


@pytest.fixture(scope="module")
def system(tiny_mistral_dir, tiny_llama_dir, tmp_path_factory):
  data = write_data(str(tmp_path_factory.mktemp("data")))
  cfg = tiny_config(tiny_mistral_dir, tiny_llama_dir, data)
  s = runner.setup(cfg, str(tmp_path_factory.mktemp("work")))
  h = runner.harness(cfg, s)
  graphdef, params, rngs = train.bridge.split_translator(runner.new_translator(cfg, s))
  h.translator = (graphdef, params, rngs)
  return cfg, s, h


def test_batched_decoding_equals_one_at_a_time(system):
  cfg, s, h = system
  examples = s.test[:5]
  for method in ("target_alone", "latent"):
    h.decoding.batch_size = 4
    batched = evaluate.run_methods(h, [method], examples, None, progress=False)
    h.decoding.batch_size = 1
    single = evaluate.run_methods(h, [method], examples, None, progress=False)
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]
    assert [r["generated_tokens"] for r in batched] == [r["generated_tokens"] for r in single]
  h.decoding.batch_size = cfg.eval.batch_size


def test_one_bos_and_no_gold_in_any_input(system):
  """DESIGN §3.1 (gold leaked into the input) and §3.5 (double BOS at evaluation)."""
  cfg, s, h = system
  tok = s.frozen.target_tokenizer
  ex = s.test[0]
  for method in ("target_alone", "token_budget", "latent"):
    p = evaluate.prepare(h, method, ex)
    ids = p.ids if method != "latent" else p.source_ids
    bos = tok.bos_token_id
    assert ids.count(bos) == 1
    assert ids[0] == bos
    text = tok.decode(p.ids) + (tok.decode(p.source_ids) if p.source_ids else "")
    assert ex.answer not in text and f"#### {ex.gold}" not in text
  latent = evaluate.prepare(h, "latent", ex)
  assert bos not in latent.ids  # the layout adds the single BOS before the soft tokens


def test_token_budget_is_exactly_m_question_tokens(system):
  cfg, s, h = system
  tok = s.frozen.target_tokenizer
  for ex in s.test[:3]:
    p = evaluate.prepare(h, "token_budget", ex)
    anchor = evaluate._ids(tok, h.anchor)
    assert len(p.ids) == 1 + h.num_soft_tokens + len(anchor)
    assert p.ids[-len(anchor):] == anchor


def test_stop_strings_cut_the_prediction():
  assert evaluate.stop_at("1 + 2 = 3\n#### 3\nQ: next", ["\nQ:"]) == "1 + 2 = 3\n#### 3"
  assert evaluate.stop_at("no stop here", ["\nQ:", "\n\n"]) == "no stop here"
  assert evaluate.stop_at("a\n\nb\nQ:", ["\nQ:", "\n\n"]) == "a"


def test_length_buckets_bound_recompilation():
  assert [evaluate.bucket(n, (32, 64)) for n in (1, 32, 33, 64, 65, 130)] == [32, 32, 64, 64, 128, 256]


def test_samples_resume_after_a_crash(system, tmp_path):
  cfg, s, h = system
  path = str(tmp_path / "eval" / "samples.jsonl")
  first = evaluate.run_methods(h, ["target_alone"], s.test[:3], path, progress=False)
  with open(path) as f:
    lines = f.readlines()
  with open(path, "w") as f:  # a crash: two complete records and a torn third line
    f.writelines(lines[:2] + [lines[2][:10]])
  calls = []
  real = evaluate.generate_batch
  evaluate.generate_batch = lambda h_, batch: calls.append(len(batch)) or real(h_, batch)
  try:
    again = evaluate.run_methods(h, ["target_alone"], s.test[:3], path, progress=False)
  finally:
    evaluate.generate_batch = real
  assert calls == [1]  # only the lost record was regenerated
  assert sorted(r["id"] for r in again) == sorted(r["id"] for r in first)
  with open(path) as f:
    rows = [json.loads(line) for line in f]
  assert len(rows) == 3


def test_record_and_aggregate_schemas(system):
  cfg, s, h = system
  records = evaluate.run_methods(h, list(evaluate.METHODS), s.test[:4], None, progress=False)
  assert {r["method"] for r in records} == set(evaluate.METHODS)
  for r in records:
    assert {"id", "method", "source_prompt_tokens", "target_prompt_tokens", "soft_tokens", "generated_tokens",
            "prediction", "extracted", "gold", "correct", "latency_s", "kv_cache_bytes",
            "peak_memory_bytes"} <= r.keys()
    assert r["gold"] == next(e.gold for e in s.test if e.id == r["id"])
  latent = next(r for r in records if r["method"] == "latent")
  c = s.frozen.target.config
  per_token = 2 * c.num_layers * c.num_kv_heads * c.head_dim * 4  # float32 tiny target
  assert latent["kv_cache_bytes"] == per_token * (1 + h.num_soft_tokens + len(evaluate._ids(
      s.frozen.target_tokenizer, h.anchor)) + latent["generated_tokens"])
  agg = evaluate.aggregate(records, dataset="gsm8k", num_soft_tokens=h.num_soft_tokens, bootstrap_samples=200,
                           seed=0)
  assert set(agg["methods"]) == set(evaluate.METHODS) and agg["num_questions"] == 4
  for m in agg["methods"].values():
    assert m["ci95"][0] <= m["accuracy"] <= m["ci95"][1]
  assert set(agg["comparisons"]) == {f"latent_vs_{m}" for m in evaluate.METHODS if m != "latent"}
  assert 0 <= agg["comparisons"]["latent_vs_target_alone"]["mcnemar_p"] <= 1
  assert agg["kv_saving"]["saving_fraction"] == pytest.approx(
      1 - agg["methods"]["latent"]["mean_kv_bytes"] / agg["methods"]["target_alone"]["mean_kv_bytes"])
  json.dumps(agg)


def test_scenarios():
  assert evaluate.scenario({"latent": .8, "source_alone": .7, "target_alone": .6}) == "latent above both single models"
  assert evaluate.scenario({"latent": .65, "source_alone": .7, "target_alone": .6}) == "latent above the target only"
  assert evaluate.scenario({"latent": .5, "source_alone": .7, "target_alone": .6}) == "latent below the source"


def test_bad_inputs(system, tmp_path):
  cfg, s, h = system
  with pytest.raises(ValueError, match="unknown evaluation method 'oracle'"):
    evaluate.run_methods(h, ["oracle"], s.test[:1], None, progress=False)
  with pytest.raises(FileNotFoundError, match="no best checkpoint"):
    runner.best_translator(cfg, s, str(tmp_path))
  bare = runner.harness(cfg, s)
  with pytest.raises(ValueError, match="needs a trained translator"):
    evaluate.run_methods(bare, ["latent"], s.test[:1], None, progress=False)
