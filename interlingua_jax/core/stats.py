"""Uncertainty: exact intervals for accuracies, bootstrap intervals, McNemar's exact test, Holm.

Every method is scored on the same questions, so differences are tested *paired*: resampling
question indices jointly and testing only the questions where the two methods disagree.
Near-duplicate questions (one toy problem, one article) are not independent, so the cluster
bootstrap resamples whole groups of them instead of questions.
Plain numpy, seeded, and vectorised over resamples.
"""
import math

import numpy as np

_MAX_RESAMPLE_ELEMENTS = 1 << 23  # resample indices held at once (32 MiB of int32)


def _as_vector(values, name: str) -> np.ndarray:
  array = np.asarray(values, dtype=np.float64)
  if array.ndim != 1 or array.size == 0:
    raise ValueError(f"{name} must be a non-empty 1-D sequence of per-question values, got shape {array.shape}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} contains NaN or infinite values")
  return array


def _check_args(n: int, alpha: float) -> None:
  if n < 1:
    raise ValueError(f"the number of bootstrap resamples must be >= 1, got {n}")
  if not 0 < alpha < 1:
    raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def bootstrap_ci(values, n: int = 10000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
  """Percentile bootstrap (1 - alpha) interval for the mean of per-question values."""
  _check_args(n, alpha)
  values = _as_vector(values, "values")
  means = _resampled_ratios(values, np.ones_like(values), n, seed)  # every question its own cluster
  lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
  return float(lo), float(hi)


def paired_bootstrap(a, b, n: int = 10000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
  """Mean of `a - b` and its percentile interval, resampling questions jointly.

  Resampling the same question indices for both methods is resampling the per-question
  differences, which keeps the correlation between methods that share the questions.
  """
  a, b = _as_vector(a, "a"), _as_vector(b, "b")
  if a.shape != b.shape:
    raise ValueError(f"paired samples must score the same questions: {a.size} vs {b.size} values")
  lo, hi = bootstrap_ci(a - b, n, seed, alpha)
  return float(np.mean(a - b)), lo, hi


def _cluster_totals(values: np.ndarray, clusters) -> tuple[np.ndarray, np.ndarray]:
  """Per-cluster sums of `values` and per-cluster question counts (clusters in sorted label order)."""
  labels = np.asarray(clusters)
  if labels.shape != values.shape:
    raise ValueError(f"clusters must name one cluster per question: {labels.size} labels for {values.size} values")
  _, index = np.unique(labels, return_inverse=True)
  return np.bincount(index, weights=values), np.bincount(index).astype(np.float64)


def _resampled_ratios(sums: np.ndarray, counts: np.ndarray, n: int, seed: int) -> np.ndarray:
  """Ratio estimates sum(values) / count(questions) of `n` resamples of whole clusters.

  Dividing by the questions drawn, not by the clusters, keeps every question's weight equal when
  clusters differ in size; with singleton clusters (counts all 1) it is the ordinary bootstrap of the mean.
  """
  rng = np.random.default_rng(seed)
  size = sums.size
  chunk = max(1, _MAX_RESAMPLE_ELEMENTS // size)
  chunks = []
  for start in range(0, n, chunk):
    indices = rng.integers(0, size, size=(min(chunk, n - start), size), dtype=np.int32)
    chunks.append(sums[indices].sum(axis=1) / counts[indices].sum(axis=1))
  return np.concatenate(chunks)


def cluster_bootstrap_ci(values, clusters, n: int = 10000, seed: int = 0,
                         alpha: float = 0.05) -> tuple[float, float]:
  """Percentile (1 - alpha) interval for the mean of per-question values, resampling clusters.

  Questions of one cluster share their outcome far more than independent draws would, so
  resampling questions overstates precision; resampling the clusters keeps that dependence.
  """
  _check_args(n, alpha)
  sums, counts = _cluster_totals(_as_vector(values, "values"), clusters)
  lo, hi = np.quantile(_resampled_ratios(sums, counts, n, seed), [alpha / 2, 1 - alpha / 2])
  return float(lo), float(hi)


def paired_cluster_bootstrap(a, b, clusters, n: int = 10000, seed: int = 0,
                             alpha: float = 0.05) -> tuple[float, float, float]:
  """Mean of `a - b` and its percentile interval, resampling clusters jointly for both methods."""
  a, b = _as_vector(a, "a"), _as_vector(b, "b")
  if a.shape != b.shape:
    raise ValueError(f"paired samples must score the same questions: {a.size} vs {b.size} values")
  lo, hi = cluster_bootstrap_ci(a - b, clusters, n, seed, alpha)
  return float(np.mean(a - b)), lo, hi


def mcnemar_p(a, b) -> float:
  """Exact two-sided McNemar p-value for paired correct/incorrect outcomes.

  Under the null the discordant pairs split as Binomial(d, 1/2); the p-value is twice the
  smaller tail, capped at 1, computed in exact integer arithmetic.
  """
  a, b = _as_vector(a, "a"), _as_vector(b, "b")
  if a.shape != b.shape:
    raise ValueError(f"paired samples must score the same questions: {a.size} vs {b.size} values")
  if not np.all(np.isin(a, (0, 1)) & np.isin(b, (0, 1))):
    raise ValueError("McNemar's test takes per-question correctness (0/1 or bool), not graded scores")
  only_a = int(np.sum((a == 1) & (b == 0)))
  only_b = int(np.sum((a == 0) & (b == 1)))
  discordant = only_a + only_b
  tail = sum(math.comb(discordant, i) for i in range(min(only_a, only_b) + 1))
  return min(1.0, 2 * tail / 2**discordant)


def _check_counts(correct: int, n: int, alpha: float) -> None:
  if n < 1 or not 0 <= correct <= n:
    raise ValueError(f"need 0 <= correct <= n and n >= 1, got correct={correct}, n={n}")
  if not 0 < alpha < 1:
    raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def clopper_pearson(correct: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
  """Exact binomial (1 - alpha) interval for an accuracy of `correct` out of `n`.

  Unlike a percentile bootstrap it is never degenerate: 500/500 gives [0.9926, 1], not [1, 1].
  """
  from scipy.stats import beta
  _check_counts(correct, n, alpha)
  lo = 0.0 if correct == 0 else float(beta.ppf(alpha / 2, correct, n - correct + 1))
  hi = 1.0 if correct == n else float(beta.ppf(1 - alpha / 2, correct + 1, n - correct))
  return lo, hi


def wilson(correct: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
  """Wilson score interval: a closed form close to Clopper–Pearson, also non-degenerate at 0 and n."""
  from scipy.stats import norm
  _check_counts(correct, n, alpha)
  z = float(norm.ppf(1 - alpha / 2))
  p = correct / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  lo = 0.0 if correct == 0 else max(0.0, centre - half)  # exact at the boundaries, not off by rounding
  hi = 1.0 if correct == n else min(1.0, centre + half)
  return lo, hi


def holm(p_values: dict[str, float]) -> dict[str, float]:
  """Holm–Bonferroni adjusted p-values for the comparisons of one report (family-wise error control).

  The k-th smallest p is multiplied by (m - k + 1); adjusted values are made monotone and capped at 1.
  """
  order = sorted(p_values, key=lambda k: p_values[k])
  m, running, out = len(order), 0.0, {}
  for rank, key in enumerate(order):
    running = max(running, min(1.0, (m - rank) * p_values[key]))
    out[key] = running
  return out


def mean_sd_interval(values, alpha: float = 0.05) -> dict:
  """Across training seeds: mean, sample sd and a Student-t (1 - alpha) interval for the mean.

  With one seed the sd and interval are None: one run says nothing about the spread.
  """
  from scipy.stats import t
  x = _as_vector(values, "values")
  out = {"n": int(x.size), "mean": float(x.mean()), "sd": None, "ci95": None}
  if x.size > 1:
    sd = float(x.std(ddof=1))
    half = float(t.ppf(1 - alpha / 2, x.size - 1)) * sd / math.sqrt(x.size)
    out.update(sd=sd, ci95=[out["mean"] - half, out["mean"] + half])
  return out
