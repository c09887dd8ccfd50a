"""The evaluation harness on tiny random models: same questions for every method, honest scoring,
per-sample records that survive a crash, controls, warm-up kept out of latency, and an extensible registry."""
import dataclasses
import json
import time

import pytest

from interlingua_jax.evaluation import harness as evaluate, methods, results
from interlingua_jax.run import stages
from interlingua_jax.training.state import split_module
from interlingua_jax.data import pipeline
from tiny_system import system as make_system, tiny_config, write_data

BUILT_IN = ("source_alone", "target_alone", "latent", "token_budget", "token_budget_prompt", "text_relay",
            "latent_shuffled", "no_latent", "chance")


@pytest.fixture(scope="module")
def system(tiny_mistral_dir, tiny_llama_dir, tmp_path_factory):
  data = write_data(str(tmp_path_factory.mktemp("data")))
  cfg = tiny_config(tiny_mistral_dir, tiny_llama_dir, data)
  run, kind, s = make_system(cfg, tmp_path_factory.mktemp("work"))
  ctx = kind.contexts(run, s, split_module(kind.new_module(run, s)))[None]  # an untrained translator's view
  return run, kind, s, ctx


def _sized(ctx, batch_size: int):
  return dataclasses.replace(ctx, decoding=dataclasses.replace(ctx.decoding, batch_size=batch_size))


def test_batched_decoding_equals_one_at_a_time(system):
  run, kind, s, ctx = system
  cfg = run.cfg
  examples = s.test[:5]
  for method in ("target_alone", "latent"):
    batched = evaluate.run_methods(_sized(ctx, 4), [method], examples, None, progress=False)
    single = evaluate.run_methods(_sized(ctx, 1), [method], examples, None, progress=False)
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in single]
    assert [r["generated_tokens"] for r in batched] == [r["generated_tokens"] for r in single]


def test_one_bos_and_no_gold_in_any_input(system):
  """docs/DESIGN.md §3.1 (gold leaked into the input) and §3.5 (double BOS at evaluation), for every built-in method
  a model answers, on several questions; each side decoded with its own tokenizer."""
  run, kind, s, ctx = system
  cfg = run.cfg
  src, tgt = ctx.frozen.source_tokenizer, ctx.frozen.target_tokenizer
  relayed = {e.id: " 1 + 1 = 2" for e in s.test[:4]}  # a relay carries the source's text, never the gold
  names = [m for m in BUILT_IN + ("token_budget_matched", "latent_at_best", "latent_at_final")
           if methods.get(m).model is not None]
  for q in evaluate.questions(s.test[:4], seed=0, relayed=relayed):
    ex = q.example
    for method in names:
      p = evaluate.prepare(ctx, method, q)
      model_tok = src if p.method.model == "source" else tgt
      texts = [model_tok.decode(p.ids)] + ([src.decode(p.source_ids)] if p.source_ids else [])
      for text in texts:
        assert ex.answer not in text and f"#### {ex.gold}" not in text, (method, text)
      if p.source_ids is None:
        assert p.ids.count(model_tok.bos_token_id) == 1 and p.ids[0] == model_tok.bos_token_id, method
      else:  # soft-token methods: the source prompt has one BOS; the layout adds the target's before the soft
        assert p.source_ids.count(src.bos_token_id) == 1 and p.source_ids[0] == src.bos_token_id, method
        assert tgt.bos_token_id not in p.ids, method


def test_token_budget_is_the_first_m_tokens_of_the_question_text(system):
  """Not of the prompt: on GSM8K the prompt's first M tokens are the instruction line."""
  run, kind, s, ctx = system
  cfg = run.cfg
  tok = ctx.frozen.target_tokenizer
  anchor = pipeline.token_ids(tok, ctx.anchor)
  for q in evaluate.questions(s.test[:3], seed=0):
    p = evaluate.prepare(ctx, "token_budget", q)
    question = pipeline.token_ids(tok, q.example.question)
    assert len(question) > ctx.num_soft_tokens  # truncation happens
    assert p.ids == [tok.bos_token_id] + question[:ctx.num_soft_tokens] + anchor
    prefix = evaluate.prepare(ctx, "token_budget_prompt", q)  # the prompt-prefix variant: the few-shot prompt
    assert prefix.ids != p.ids and len(prefix.ids) == len(p.ids)


def test_stop_strings_cut_the_prediction():
  assert evaluate.stop_at("1 + 2 = 3\n#### 3\nQ: next", ["\nQ:"]) == "1 + 2 = 3\n#### 3"
  assert evaluate.stop_at("no stop here", ["\nQ:", "\n\n"]) == "no stop here"
  assert evaluate.stop_at("a\n\nb\nQ:", ["\nQ:", "\n\n"]) == "a"


def test_length_buckets_bound_recompilation():
  assert [evaluate.bucket(n, (32, 64)) for n in (1, 32, 33, 64, 65, 130)] == [32, 32, 64, 64, 128, 256]


def test_samples_resume_after_a_crash(system, tmp_path):
  run, kind, s, ctx = system
  cfg = run.cfg
  h = dataclasses.replace(ctx, warm_up=False)  # one generation per batch: the count below is exact
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
  run, kind, s, ctx = system
  cfg = run.cfg
  records = evaluate.run_methods(ctx, list(BUILT_IN), s.test[:4], None, progress=False)
  assert {r["method"] for r in records} == set(BUILT_IN)
  for r in records:
    assert {"id", "method", "source_prompt_tokens", "target_prompt_tokens", "soft_tokens", "generated_tokens",
            "prediction", "extracted", "gold", "correct", "latency_s", "warmup_s", "kv_cache_bytes",
            "peak_memory_bytes"} <= r.keys()
    assert r["gold"] == next(e.gold for e in s.test if e.id == r["id"])
  latent = next(r for r in records if r["method"] == "latent")
  c = ctx.frozen.target.config
  per_token = 2 * c.num_layers * c.num_kv_heads * c.head_dim * 4  # float32 tiny target
  assert latent["kv_cache_bytes"] == per_token * (1 + ctx.num_soft_tokens + len(pipeline.token_ids(
      ctx.frozen.target_tokenizer, ctx.anchor)) + latent["generated_tokens"])
  agg = results.aggregate(records, dataset="gsm8k", num_soft_tokens=ctx.num_soft_tokens, bootstrap_samples=200,
                          seed=0)
  assert set(agg["methods"]) == set(BUILT_IN) and agg["num_questions"] == 4
  for name, m in agg["methods"].items():
    assert m["ci95"][0] <= m["accuracy"] <= m["ci95"][1]
    assert m["control"] == (name in ("latent_shuffled", "no_latent", "chance"))
  assert set(agg["comparisons"]) == {f"latent_vs_{m}" for m in BUILT_IN if m != "latent"}
  for c in agg["comparisons"].values():
    assert 0 <= c["mcnemar_p"] <= c["mcnemar_p_holm"] <= 1
  assert agg["kv_saving"]["saving_fraction"] == pytest.approx(
      1 - agg["methods"]["latent"]["mean_kv_bytes"] / agg["methods"]["target_alone"]["mean_kv_bytes"])
  json.dumps(agg)


def test_controls_read_another_question(system):
  """latent_shuffled: the soft tokens of the donor (a seeded derangement, no question its own donor);
  no_latent: BOS + anchor; chance: the donor's answer, scored like any prediction."""
  run, kind, s, ctx = system
  cfg = run.cfg
  examples = s.test[:6]
  order = methods.derangement(len(examples), seed=3)
  assert all(i != j for i, j in enumerate(order)) and sorted(order) == list(range(6))
  assert order == methods.derangement(6, seed=3) and order != methods.derangement(6, seed=4)
  qs = evaluate.questions(examples, seed=3)
  tok = ctx.frozen.target_tokenizer
  for q, j in zip(qs, order):
    assert q.donor is examples[j]
    shuffled, own = evaluate.prepare(ctx, "latent_shuffled", q), evaluate.prepare(ctx, "latent", q)
    assert shuffled.source_ids == evaluate.prepare(ctx, "latent", qs[j]).source_ids != own.source_ids
    assert shuffled.ids == own.ids
    assert evaluate.prepare(ctx, "no_latent", q).ids == [tok.bos_token_id] + pipeline.token_ids(tok, ctx.anchor)
  records = evaluate.run_methods(dataclasses.replace(ctx, control_seed=3), ["chance"], examples, None,
                                 progress=False)
  assert [r["prediction"] for r in records] == [examples[j].answer for j in order]
  assert [r["correct"] for r in records] == [examples[j].gold == e.gold for e, j in zip(examples, order)]
  with pytest.raises(ValueError, match="at least 2 questions"):
    evaluate.run_methods(ctx, ["latent_shuffled"], examples[:1], None, progress=False)


def test_latency_excludes_compilation_whether_compiled_before_or_not(system, monkeypatch):
  """The same method evaluated first (its programs new) and last (already compiled): the same latency.

  Compilation is simulated by a one-second pause on the first call of each input shape, so the test is
  exact whatever the machine's speed; on the old harness the first batch's latency held that second."""
  run, kind, s, ctx = system
  cfg = run.cfg
  real, seen = evaluate.generate, set()

  def slow_first_call(lm, **kwargs):
    x = kwargs.get("input_ids", kwargs.get("inputs_embeds"))
    if (lm.config, x.shape) not in seen:
      seen.add((lm.config, x.shape))
      time.sleep(1.0)
    return real(lm, **kwargs)

  monkeypatch.setattr(evaluate, "generate", slow_first_call)
  first = evaluate.run_methods(ctx, ["target_alone"], s.test[:4], None, progress=False)
  evaluate.run_methods(ctx, ["latent", "no_latent"], s.test[:4], None, progress=False)
  last = evaluate.run_methods(ctx, ["target_alone"], s.test[:4], None, progress=False)
  for records in (first, last):
    batch_seconds = sum(r["latency_s"] for r in records)  # one batch of 4
    assert batch_seconds < 0.5, batch_seconds
  assert sum(r["warmup_s"] for r in first) >= 1.0 > sum(r["warmup_s"] for r in last)
  agg = results.aggregate(first, dataset="gsm8k", num_soft_tokens=4, bootstrap_samples=10, seed=0)
  assert agg["methods"]["target_alone"]["warmup_s"] >= 1.0
  assert agg["methods"]["target_alone"]["latency_p90_s"] < 0.5


def test_a_new_method_is_one_registered_object_and_one_config_entry(system, tmp_path, monkeypatch):
  """Registers a toy method (the target reads the bare question, no instruction) and runs the eval stage."""
  run, kind, s, ctx = system
  cfg = run.cfg
  monkeypatch.setattr(methods, "REGISTRY", dict(methods.REGISTRY))  # the registration ends with the test
  def question_only(c, q):
    tok = c.frozen.target_tokenizer
    return pipeline.with_bos(tok, pipeline.token_ids(tok, f"{q.example.question} {c.anchor}"))

  methods.register(methods.Method("question_only", "target", question_only))
  cfg = cfg.copy_and_resolve_references()
  cfg.eval.methods, cfg.eval.num_samples = ("target_alone", "question_only"), cfg.eval.batch_size
  agg = stages.eval_stage(dataclasses.replace(run, cfg=cfg, workdir=str(tmp_path)), kind, s)
  assert set(agg["methods"]) == {"target_alone", "question_only"} and agg["num_questions"] == 4
  assert agg["methods"]["question_only"]["control"] is False
  rows = [json.loads(line) for line in open(tmp_path / "eval" / "samples.jsonl")]
  tok = ctx.frozen.target_tokenizer
  assert {r["target_prompt_tokens"] for r in rows if r["method"] == "question_only"} == {
      1 + len(pipeline.token_ids(tok, f"{e.question} {ctx.anchor}")) for e in s.test[:4]}
  assert set(agg["split"]) == {"exemplars", "train", "validation", "test", "evaluated"}
  with pytest.raises(ValueError, match="already registered"):
    methods.register(dataclasses.replace(methods.REGISTRY["question_only"]))  # another object, same name
  with pytest.raises(ValueError, match="give `model` and `ids`"):
    methods.Method("broken", "target")


def test_scenarios():
  def scenario(source: tuple[float, float], target: tuple[float, float]) -> str:
    """The label from the paired cluster intervals of latent - source and latent - target."""
    return results.scenario({"latent_vs_source_alone": {"diff": sum(source) / 2, "ci95_cluster": list(source)},
                             "latent_vs_target_alone": {"diff": sum(target) / 2, "ci95_cluster": list(target)}})
  assert scenario((0.02, 0.2), (0.1, 0.3)) == "latent above both single models"
  assert scenario((-0.3, -0.1), (-0.2, -0.01)) == "latent below both single models"
  assert scenario((-0.1, 0.05), (0.02, 0.1)) == "latent on par with the source, above the target"
  assert scenario((-0.3, -0.1), (0.02, 0.1)) == "latent below the source, above the target"
  assert scenario((-0.3, -0.1), (-0.05, 0.0)) == "latent below the source, on par with the target"
  assert scenario((0.01, 0.1), (-0.1, 0.1)) == "latent above the source, on par with the target"
  # 2% vs 1%: the point difference is positive, its interval includes 0, so it is no finding either way.
  assert scenario((-0.02, 0.04), (0.0, 0.1)) == "latent on par with both single models (intervals include 0)"
  assert results.scenario({"latent_vs_target_alone": {"ci95_cluster": [0.1, 0.2]}}) == (
      "incomplete: needs latent, source_alone and target_alone")


def test_bad_inputs(system, tmp_path):
  run, kind, s, ctx = system
  cfg = run.cfg
  with pytest.raises(ValueError, match="unknown evaluation method 'oracle'"):
    evaluate.run_methods(ctx, ["oracle"], s.test[:1], None, progress=False)
  with pytest.raises(FileNotFoundError, match="no best checkpoint"):
    stages.restore(dataclasses.replace(run, workdir=str(tmp_path)), kind, s, "best")
  with pytest.raises(ValueError, match="need a trained bridge"):
    evaluate.run_methods(kind.contexts(run, s, None)[None], ["latent"], s.test[:1], None, progress=False)


def test_format_matched_token_budget_is_the_target_prompt_with_the_question_cut_to_m_tokens(system):
  """The same instruction, exemplars and answer format as target_alone; only the question is shortened."""
  run, kind, s, ctx = system
  cfg = run.cfg
  tok = ctx.frozen.target_tokenizer
  for q in evaluate.questions(s.test[:3], seed=0):
    p = evaluate.prepare(ctx, "token_budget_matched", q)
    full = evaluate.prepare(ctx, "target_alone", q)
    head = tok.decode(pipeline.token_ids(tok, q.example.question)[:ctx.num_soft_tokens])
    assert head and head != q.example.question
    cut = dataclasses.replace(q.example, question=head)
    assert p.ids == ctx.builder.ids(tok, ctx.builder.source_prompt(cut)) != full.ids
    prompt, full_prompt = ctx.builder.source_prompt(cut), ctx.builder.source_prompt(q.example)
    # The instruction and the answer format of the text methods (exemplars as the long-prompt rule fits them).
    assert prompt.split("\n")[0] == full_prompt.split("\n")[0] and prompt.endswith(f"Q: {head}\nA:")


def test_the_confidence_router_answers_with_whichever_single_model_is_surer():
  """Reads no gold: the higher mean log-probability wins (ties to the source), right or wrong; no router where a
  single model's records carry no log-probability (runs older than them)."""
  def record(i, method, correct, logprob):
    return {"id": f"q{i}", "method": method, "correct": correct, "prediction": method, "latency_s": 0.0,
            "kv_cache_bytes": 0, "target_prompt_tokens": 1, "soft_tokens": 0, "source_prompt_tokens": 1,
            "generated_tokens": 1, "mean_logprob": logprob}
  source, target = [(1, -0.1), (0, -2.0), (1, -3.0), (0, -0.5)], [(0, -1.0), (1, -0.2), (0, -0.1), (1, -0.5)]
  records = [record(i, m, bool(c), lp) for m, rows in (("source_alone", source), ("target_alone", target))
             for i, (c, lp) in enumerate(rows)]
  routed = results.confidence_routing(records)
  assert [r["prediction"] for r in routed] == ["source_alone", "target_alone", "target_alone", "source_alone"]
  agg = results.aggregate(records, dataset="gsm8k", num_soft_tokens=4, bootstrap_samples=200, seed=0)
  assert agg["routing"]["route_confidence"]["correct"] == 2 and agg["routing"]["route_confidence"]["picked_target"] == 0.5
  assert agg["routing"]["route_oracle"]["correct"] == 4
  records[0]["mean_logprob"] = None
  assert results.confidence_routing(records) == []
  assert "route_confidence" not in results.aggregate(records, dataset="gsm8k", num_soft_tokens=4,
                                                     bootstrap_samples=200, seed=0)["routing"]


def test_the_oracle_router_answers_with_whichever_single_model_is_right():
  """Derived beside the table (outside the Holm family): right where either single model is right."""
  def record(i, method, correct):
    return {"id": f"q{i}", "method": method, "correct": correct, "prediction": method, "latency_s": 0.0,
            "kv_cache_bytes": 0, "target_prompt_tokens": 1, "soft_tokens": 0, "source_prompt_tokens": 1,
            "generated_tokens": 1}
  source, target, latent = [1, 0, 0, 1, 0, 0], [0, 1, 0, 1, 0, 0], [1, 1, 1, 0, 0, 0]
  records = [record(i, m, bool(c)) for m, cs in (("source_alone", source), ("target_alone", target),
                                                  ("latent", latent)) for i, c in enumerate(cs)]
  agg = results.aggregate(records, dataset="gsm8k", num_soft_tokens=4, bootstrap_samples=200, seed=0)
  routing = agg["routing"]
  assert routing["route_oracle"]["correct"] == 3 and "route_oracle" not in agg["methods"]
  assert routing["latent_vs_route_oracle"]["diff"] == pytest.approx(0.0)
  assert [r["prediction"] for r in results.oracle_routing(records)] == ["source_alone", "target_alone",
                                                                         "source_alone", "source_alone",
                                                                         "source_alone", "source_alone"]
  assert "routing" not in results.aggregate([r for r in records if r["method"] != "source_alone"], dataset="gsm8k",
                                            num_soft_tokens=4, bootstrap_samples=200, seed=0)
