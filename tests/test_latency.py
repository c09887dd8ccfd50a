"""Batch-1 latency, per sample: time to first token and decoding apart, the relay's source generation counted."""
import numpy as np

from interlingua_jax.evaluation import harness as evaluate, latency
from test_evaluate import system  # noqa: F401  (the tiny bridged system, a module fixture)


def test_batch1_latency_splits_first_token_and_decoding_and_charges_the_relay_its_source(system, monkeypatch):
  _, _, s, ctx = system
  examples = s.test[:3]
  relayed = {r["id"]: r["prediction"] for r in evaluate.run_methods(ctx, ["source_alone"], examples, None,
                                                                     progress=False)}
  timed = []
  real = latency.generate_batch

  def spy(c, batch):
    out, seconds = real(c, batch)
    timed.append((batch[0].method.name, c.decoding.batch_size, c.decoding.max_new_tokens, seconds))
    return out, seconds

  monkeypatch.setattr(latency, "generate_batch", spy)
  got = latency.measure_latency(ctx, ["latent", "text_relay", "chance"], examples, 2, relayed=relayed)
  assert set(got) == {"latent", "text_relay"}  # chance has no model; source_alone is timed only for the relay
  assert {b for _, b, _, _ in timed} == {1}  # every question alone
  for name, entry in got.items():
    runs = [t for t in timed if t[0] == name]
    firsts = [t[3] for t in runs if t[2] == 1]
    wholes = [t[3] for t in runs if t[2] == ctx.decoding.max_new_tokens]
    assert len(firsts) == len(wholes) >= 2 + 1  # two timed questions, one untimed warm-up per shape
    assert entry["samples"] == 2 and len(entry["per_sample"]["ttft_s"]) == 2
    assert entry["per_sample"]["ttft_s"] == firsts[-2:] and entry["per_sample"]["total_s"] == wholes[-2:]
    assert entry["ttft_s"] == float(np.median(firsts[-2:])) and entry["decode_s"] >= 0
  source = [t[3] for t in timed if t[0] == "source_alone" and t[2] == ctx.decoding.max_new_tokens][-2:]
  relay = got["text_relay"]["per_sample"]["total_s"]
  assert got["text_relay"]["end_to_end_s"] == float(np.median([a + b for a, b in zip(source, relay)]))
  assert "end_to_end_s" not in got["latent"]


def test_no_latency_samples_times_nothing_and_writes_no_nan(system):
  """eval.latency_samples = 0 (the tiny and reduced configs): no entry, rather than medians of nothing (NaN)."""
  import warnings
  _, _, s, ctx = system
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert latency.measure_latency(ctx, ["latent", "target_alone"], s.test[:3], 0) == {}
