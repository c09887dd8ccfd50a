"""Bootstrap intervals and McNemar's exact test, against closed forms and known values."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from interlingua_jax.core import stats


def _binary(n, p, seed):
  return (np.random.default_rng(seed).random(n) < p).astype(np.float64)


def test_bootstrap_ci_matches_normal_approximation():
  values = _binary(400, 0.7, seed=1)
  mean, se = values.mean(), values.std() / math.sqrt(values.size)
  lo, hi = stats.bootstrap_ci(values)
  assert lo < mean < hi
  assert lo == pytest.approx(mean - 1.96 * se, abs=0.15 * se)
  assert hi == pytest.approx(mean + 1.96 * se, abs=0.15 * se)
  assert stats.bootstrap_ci(values, alpha=0.5)[1] - stats.bootstrap_ci(values, alpha=0.5)[0] < hi - lo


def test_bootstrap_ci_seeded():
  values = _binary(50, 0.5, seed=2)
  assert stats.bootstrap_ci(values, seed=3) == stats.bootstrap_ci(values, seed=3)
  assert stats.bootstrap_ci(values, n=200, seed=3) != stats.bootstrap_ci(values, n=200, seed=4)


def test_bootstrap_ci_constant_and_single():
  assert stats.bootstrap_ci([1.0] * 30) == (1.0, 1.0)
  assert stats.bootstrap_ci([0.25]) == (0.25, 0.25)


def test_bootstrap_chunks_agree(monkeypatch):
  """Memory-bounded chunks give the same distribution as one draw."""
  values = _binary(300, 0.4, seed=5)
  whole = stats.bootstrap_ci(values, n=4000)
  monkeypatch.setattr(stats, "_MAX_RESAMPLE_ELEMENTS", 7 * 300 + 11)  # chunks of 7 resamples, the last one short
  means = stats._resampled_ratios(values, np.ones_like(values), 4000, seed=0)
  assert means.shape == (4000,)
  chunked = stats.bootstrap_ci(values, n=4000)
  assert chunked == pytest.approx(whole, abs=0.02)


def test_paired_bootstrap_keeps_pairs():
  """Two methods that agree on most questions: the paired interval is tight around the true
  difference; resampling the two methods independently would give one over 3x wider."""
  a = _binary(500, 0.5, seed=6)
  b = a.copy()
  b[:20] = 1 - b[:20]
  diff, lo, hi = stats.paired_bootstrap(a, b, n=5000, seed=0)
  assert diff == pytest.approx(np.mean(a - b))
  assert lo <= diff <= hi
  independent_width = 2 * 1.96 * math.sqrt(a.var() / a.size + b.var() / b.size)
  assert hi - lo < independent_width / 2


def test_paired_bootstrap_identical_and_dominating():
  a = _binary(100, 0.6, seed=7)
  assert stats.paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
  assert stats.paired_bootstrap(np.ones(10), np.zeros(10)) == (1.0, 1.0, 1.0)


def test_cluster_bootstrap_is_wider_for_clustered_data():
  """10 problems asked 50 times each, every copy answered alike: 10 independent outcomes, not 500."""
  outcomes = np.repeat(_binary(10, 0.5, seed=8), 50)
  clusters = np.repeat([f"p{i}" for i in range(10)], 50)
  lo, hi = stats.cluster_bootstrap_ci(outcomes, clusters, n=4000)
  q_lo, q_hi = stats.bootstrap_ci(outcomes, n=4000)
  assert lo <= outcomes.mean() <= hi
  assert hi - lo > 4 * (q_hi - q_lo)  # sqrt(50) ~ 7 times wider in expectation
  p = outcomes.mean()
  assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / 10), rel=0.3)


def test_cluster_bootstrap_with_singleton_clusters_is_the_ordinary_bootstrap():
  values = _binary(400, 0.3, seed=9)
  ids = [str(i) for i in range(values.size)]
  se = values.std() / math.sqrt(values.size)
  for seed in (0, 1):
    assert stats.cluster_bootstrap_ci(values, ids, n=10000, seed=seed) == pytest.approx(
        stats.bootstrap_ci(values, n=10000, seed=seed), abs=0.2 * se)
  a, b = values, _binary(400, 0.5, seed=10)
  diff, lo, hi = stats.paired_cluster_bootstrap(a, b, ids, n=10000)
  assert (diff, lo, hi) == pytest.approx(stats.paired_bootstrap(a, b, n=10000), abs=0.2 * (a - b).std() / 20)


def test_cluster_bootstrap_ratio_estimator_against_a_reference_loop():
  """Unequal clusters: each resample's statistic is the drawn questions' mean, not the mean of cluster means."""
  values = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 0], np.float64)
  clusters = np.array(["big"] * 6 + ["pair"] * 2 + ["x", "y"])
  members = {c: values[clusters == c] for c in sorted(set(clusters))}  # sorted labels: the order resampled
  rng = np.random.default_rng(5)
  draws = rng.integers(0, len(members), size=(300, len(members)), dtype=np.int32)
  labels = list(members)
  reference = [np.concatenate([members[labels[j]] for j in row]).mean() for row in draws]
  for alpha in (0.05, 0.5, 0.9):
    expected = np.quantile(reference, [alpha / 2, 1 - alpha / 2])
    assert stats.cluster_bootstrap_ci(values, clusters, n=300, seed=5, alpha=alpha) == pytest.approx(
        tuple(expected), rel=1e-12)


def test_cluster_bootstrap_ratio_estimator_analytic_case():
  """One right question and a cluster of three wrong ones: a resample of two clusters is AA (1), BB (0) or,
  half of the time, AB (1 right of 4 questions: 0.25, where a mean of cluster means would say 0.5). The
  30% and 70% quantiles both fall in that middle half."""
  values, clusters = [1, 0, 0, 0], ["A", "B", "B", "B"]
  assert stats.cluster_bootstrap_ci(values, clusters, n=10000, alpha=0.6) == (0.25, 0.25)


def test_paired_cluster_bootstrap_identical_and_seeded():
  a = _binary(60, 0.6, seed=11)
  clusters = [str(i // 6) for i in range(60)]
  assert stats.paired_cluster_bootstrap(a, a, clusters) == (0.0, 0.0, 0.0)
  b = _binary(60, 0.4, seed=12)
  draw = lambda n, seed: stats.paired_cluster_bootstrap(a, b, clusters, n=n, seed=seed)
  assert draw(10000, 3) == draw(10000, 3)
  assert draw(200, 3) != draw(200, 4)


def test_cluster_bootstrap_chunks_agree(monkeypatch):
  values = np.repeat(_binary(30, 0.5, seed=13), 3)
  clusters = np.repeat(np.arange(30), 3)
  whole = stats.cluster_bootstrap_ci(values, clusters, n=4000)
  monkeypatch.setattr(stats, "_MAX_RESAMPLE_ELEMENTS", 7 * 30 + 5)  # chunks of 7 resamples, the last one short
  assert stats._resampled_ratios(np.ones(30), np.ones(30), 4000, seed=0).shape == (4000,)
  assert stats.cluster_bootstrap_ci(values, clusters, n=4000) == pytest.approx(whole, abs=0.03)


@pytest.mark.parametrize("only_a, only_b, expected", [
    (0, 0, 1.0),
    (10, 0, 2 / 1024),
    (5, 3, 2 * (1 + 8 + 28 + 56) / 256),
    (3, 5, 2 * (1 + 8 + 28 + 56) / 256),
    (4, 4, 1.0),
    (1, 0, 1.0),
])
def test_mcnemar_known_values(only_a, only_b, expected):
  both, neither = 7, 4  # concordant pairs carry no information
  a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
  b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
  assert stats.mcnemar_p(a, b) == pytest.approx(expected, rel=1e-12)
  assert stats.mcnemar_p(np.array(a, bool), np.array(b, bool)) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_large_counts_against_log_space():
  only_a, only_b = 1400, 1600
  a = [1] * only_a + [0] * only_b
  b = [0] * only_a + [1] * only_b
  d = only_a + only_b
  log_terms = [math.lgamma(d + 1) - math.lgamma(i + 1) - math.lgamma(d - i + 1) - d * math.log(2)
               for i in range(only_a + 1)]
  top = max(log_terms)
  expected = 2 * math.exp(top) * sum(math.exp(t - top) for t in log_terms)
  assert stats.mcnemar_p(a, b) == pytest.approx(expected, rel=1e-9)
  assert 0 < expected < 1e-3


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_mcnemar_is_a_symmetric_probability(pairs):
  a, b = zip(*pairs)
  p = stats.mcnemar_p(a, b)
  assert 0.0 < p <= 1.0
  assert p == stats.mcnemar_p(b, a)


def test_bad_input():
  with pytest.raises(ValueError, match="values must be a non-empty 1-D sequence"):
    stats.bootstrap_ci([])
  with pytest.raises(ValueError, match="values must be a non-empty 1-D sequence"):
    stats.bootstrap_ci([[1.0, 0.0]])
  with pytest.raises(ValueError, match="values contains NaN"):
    stats.bootstrap_ci([1.0, float("nan")])
  with pytest.raises(ValueError, match="alpha must be in"):
    stats.bootstrap_ci([1.0], alpha=1.5)
  with pytest.raises(ValueError, match="resamples must be >= 1"):
    stats.bootstrap_ci([1.0], n=0)
  with pytest.raises(ValueError, match="same questions: 3 vs 2"):
    stats.paired_bootstrap([1, 0, 1], [1, 0])
  with pytest.raises(ValueError, match="same questions: 3 vs 2"):
    stats.mcnemar_p([1, 0, 1], [1, 0])
  with pytest.raises(ValueError, match="correctness"):
    stats.mcnemar_p([0.5, 1], [1, 0])
  with pytest.raises(ValueError, match="clusters must name one cluster per question: 2 labels for 3 values"):
    stats.cluster_bootstrap_ci([1, 0, 1], ["a", "b"])
  with pytest.raises(ValueError, match="values must be a non-empty 1-D sequence"):
    stats.cluster_bootstrap_ci([], [])
  with pytest.raises(ValueError, match="same questions: 3 vs 2"):
    stats.paired_cluster_bootstrap([1, 0, 1], [1, 0], ["a", "b", "c"])
  with pytest.raises(ValueError, match="clusters must name one cluster per question: 2 labels for 3 values"):
    stats.paired_cluster_bootstrap([1, 0, 1], [1, 0, 0], ["a", "b"])
  with pytest.raises(ValueError, match="resamples must be >= 1"):
    stats.cluster_bootstrap_ci([1.0], ["a"], n=0)


def test_exact_intervals_are_never_degenerate_at_the_boundaries():
  """500/500 correct: the percentile bootstrap says [1, 1]; the exact interval's lower bound is below 100%."""
  assert stats.bootstrap_ci(np.ones(500)) == (1.0, 1.0)  # why the bootstrap is not used for single accuracies
  lo, hi = stats.clopper_pearson(500, 500)
  assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 500), rel=1e-12)  # closed form at k = n
  assert lo < 1.0 and lo == pytest.approx(0.99265, abs=1e-5)
  lo, hi = stats.clopper_pearson(0, 10)
  assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-12) and hi > 0
  for k, n in ((0, 500), (500, 500), (1, 7)):
    w_lo, w_hi = stats.wilson(k, n)
    assert 0 <= w_lo < w_hi <= 1 and w_lo <= k / n <= w_hi
  assert stats.wilson(0, 500)[1] > 0 and stats.wilson(500, 500)[0] < 1
  z = 1.959963984540054  # Wilson at k = 0: upper bound z² / (n + z²)
  assert stats.wilson(0, 20)[1] == pytest.approx(z * z / (20 + z * z), rel=1e-9)


def test_clopper_pearson_against_binomial_tails():
  """The exact bounds are where a binomial tail equals alpha / 2."""
  from scipy.stats import binom
  k, n = 37, 120
  lo, hi = stats.clopper_pearson(k, n)
  assert binom.sf(k - 1, n, lo) == pytest.approx(0.025, rel=1e-6)  # P(X >= k | lo)
  assert binom.cdf(k, n, hi) == pytest.approx(0.025, rel=1e-6)  # P(X <= k | hi)
  with pytest.raises(ValueError, match="0 <= correct <= n"):
    stats.clopper_pearson(5, 4)


def test_holm_adjustment():
  adjusted = stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
  # sorted: a 0.01*4, c 0.03*3, b 0.04*2 -> max with the previous (monotone), d 0.5*1
  assert adjusted == pytest.approx({"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5})
  assert stats.holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
  assert stats.holm({}) == {}


def test_aggregate_has_exact_intervals_and_holm_adjusted_p():
  from interlingua_jax.evaluation import results
  n = 500
  rows = []
  for i in range(n):
    rows += [{"id": str(i), "method": "latent", "correct": True},
             {"id": str(i), "method": "target_alone", "correct": i % 2 == 0},
             {"id": str(i), "method": "chance", "correct": False}]
  for r in rows:
    r.update(latency_s=0.01, warmup_s=0.0, kv_cache_bytes=10, target_prompt_tokens=3, soft_tokens=0,
             source_prompt_tokens=0, generated_tokens=2)
  agg = results.aggregate(rows, dataset="toy", num_soft_tokens=8, bootstrap_samples=200, seed=0)
  assert agg["methods"]["latent"]["accuracy"] == 1.0 and agg["methods"]["latent"]["ci95"][0] < 1.0
  assert agg["methods"]["chance"]["ci95"][1] > 0.0 and agg["methods"]["chance"]["control"]
  comps = agg["comparisons"]
  raw = {k: c["mcnemar_p"] for k, c in comps.items()}
  assert {k: c["mcnemar_p_holm"] for k, c in comps.items()} == stats.holm(raw)
  assert comps["latent_vs_target_alone"]["mcnemar_p_holm"] == pytest.approx(2 * raw["latent_vs_target_alone"])


def _records(correct: dict[str, list[bool]], clusters: dict[str, list[str]] | None = None) -> list[dict]:
  """Per-sample records of each method (`correct[method][i]` for question i); `clusters[method]`, if given,
  is the `cluster` field of that method's records (methods left out have none, as an old run's)."""
  rows = []
  for method, outcomes in correct.items():
    for i, ok in enumerate(outcomes):
      r = {"id": f"q{i:03d}", "method": method, "correct": ok, "latency_s": 0.01, "warmup_s": 0.0,
           "kv_cache_bytes": 10, "target_prompt_tokens": 3, "soft_tokens": 0, "source_prompt_tokens": 0,
           "generated_tokens": 2}
      if clusters and method in clusters:
        r["cluster"] = clusters[method][i]
      rows.append(r)
  return rows


def test_aggregate_cluster_intervals_and_scenario():
  """12 toy problems asked 10 times each. Latent beats the target on 2 problems (20 questions): clear over
  questions, but a resample of problems misses both of them (10/12)^12 = 11% of the time, so the cluster
  interval reaches 0 and the scenario says on par (strict `>` on accuracies said "above the target")."""
  from interlingua_jax.evaluation import results
  problems = [f"p{i // 10:02d}" for i in range(120)]
  solved = lambda k: [int(p[1:]) < k for p in problems]  # the first k problems, every copy
  rows = _records({"source_alone": solved(11), "latent": solved(9), "target_alone": solved(7)},
                  clusters={"latent": problems, "target_alone": problems})  # source_alone's records lack it
  agg = results.aggregate(rows, dataset="toy", num_soft_tokens=8, bootstrap_samples=2000, seed=0)
  assert agg["num_questions"] == 120 and agg["num_clusters"] == 12
  latent = agg["methods"]["latent"]
  assert latent["num_clusters"] == 12 and agg["methods"]["source_alone"]["num_clusters"] == 12
  assert latent["per_cluster"] == {f"p{k:02d}": [10 if k < 9 else 0, 10] for k in range(12)}
  assert latent["ci95_cluster"] == list(stats.cluster_bootstrap_ci(solved(9), problems, n=2000, seed=0))
  assert latent["ci95"] == list(stats.clopper_pearson(90, 120))  # the exact interval stays
  assert latent["ci95_cluster"][1] - latent["ci95_cluster"][0] > 2 * (latent["ci95"][1] - latent["ci95"][0])
  vs_target = agg["comparisons"]["latent_vs_target_alone"]
  assert vs_target["diff"] == pytest.approx(20 / 120) and vs_target["ci95"][0] > 0
  assert vs_target["ci95_cluster"] == list(stats.paired_cluster_bootstrap(solved(9), solved(7), problems, n=2000,
                                                                          seed=0)[1:])
  assert vs_target["ci95_cluster"][0] <= 0 < vs_target["ci95_cluster"][1]
  assert agg["comparisons"]["latent_vs_source_alone"]["ci95_cluster"][1] >= 0
  assert agg["scenario"] == "latent on par with both single models (intervals include 0)"


def test_aggregate_without_clusters_falls_back_to_questions():
  """An old run's records have no `cluster`: each question is its own. 2% vs 1% is on par, not above."""
  from interlingua_jax.evaluation import results
  n = 100
  rows = _records({"latent": [i < 2 for i in range(n)], "target_alone": [i < 1 for i in range(n)],
                   "source_alone": [i < 60 for i in range(n)]})
  agg = results.aggregate(rows, dataset="toy", num_soft_tokens=8, bootstrap_samples=1000, seed=0)
  assert agg["num_clusters"] == n
  latent = agg["methods"]["latent"]
  assert latent["num_clusters"] == n and "per_cluster" not in latent
  assert latent["ci95_cluster"] == list(stats.cluster_bootstrap_ci([i < 2 for i in range(n)],
                                                                   [f"q{i:03d}" for i in range(n)], n=1000, seed=0))
  assert agg["comparisons"]["latent_vs_target_alone"]["ci95_cluster"][0] <= 0
  assert agg["scenario"] == "latent below the source, on par with the target"


def test_mean_sd_interval_across_seeds():
  out = stats.mean_sd_interval([0.6, 0.7, 0.8])
  assert out["mean"] == pytest.approx(0.7) and out["sd"] == pytest.approx(0.1) and out["n"] == 3
  half = 4.302652729911275 * 0.1 / math.sqrt(3)
  assert out["ci95"] == pytest.approx([0.7 - half, 0.7 + half])
  assert stats.mean_sd_interval([0.5]) == {"n": 1, "mean": 0.5, "sd": None, "ci95": None}


def test_aggregate_f1_has_a_bootstrap_interval():
  from interlingua_jax.evaluation import results
  f1s = [1.0, 0.5, 0.0, 0.8] * 25
  rows = [{"id": str(i), "method": "latent", "correct": f == 1.0, "em": float(f == 1.0), "f1": f, "latency_s": 0.0,
           "kv_cache_bytes": 0, "target_prompt_tokens": 1, "soft_tokens": 0, "source_prompt_tokens": 0,
           "generated_tokens": 1} for i, f in enumerate(f1s)]
  m = results.aggregate(rows, dataset="hotpotqa", num_soft_tokens=8, bootstrap_samples=500, seed=0)["methods"]["latent"]
  assert m["f1"] == pytest.approx(np.mean(f1s)) and m["em"] == 0.25
  in_id_order = [f1s[int(i)] for i in sorted(str(i) for i in range(len(f1s)))]  # questions sorted by id
  assert m["f1_ci95"] == list(stats.bootstrap_ci(in_id_order, n=500, seed=0))
  assert m["f1_ci95"][0] < m["f1"] < m["f1_ci95"][1]
