"""A run's evaluation summary (`eval/aggregate.json`) from its per-sample records.

Single accuracies get exact Clopper–Pearson intervals (a percentile bootstrap collapses to
[1, 1] at 500/500). Latent is compared with every other method, paired on the same
questions (bootstrap interval of the difference, exact McNemar), and the McNemar p-values of
the report are Holm-adjusted together: one report, one family of tests.

Test questions are often near-duplicates (one toy problem asked many times, one SQuAD article),
so beside those per-question numbers every accuracy and difference also gets a cluster-bootstrap
interval over a record's `cluster` (its `id` when a record has none: each question its own
cluster), and the scenario label is decided from those wider intervals.
"""
from collections.abc import Sequence

import numpy as np

from interlingua_jax.core import stats
from interlingua_jax.evaluation import methods
from interlingua_jax.data import kinds


def _relation(comparison: dict) -> str:
  lo, hi = comparison["ci95_cluster"]
  return "above" if lo > 0 else "below" if hi < 0 else "on par with"


def scenario(comparisons: dict[str, dict]) -> str:
  """Which of the study's outcomes holds for the bridge, from the paired cluster intervals of latent - model.

  A point difference whose interval includes 0 is "on par": 2% vs 1% on 100 questions is no finding.
  """
  if not {"latent_vs_source_alone", "latent_vs_target_alone"} <= comparisons.keys():
    return "incomplete: needs latent, source_alone and target_alone"
  source, target = (_relation(comparisons[f"latent_vs_{m}"]) for m in ("source_alone", "target_alone"))
  if source == target == "on par with":
    return "latent on par with both single models (intervals include 0)"
  if source == target:
    return f"latent {source} both single models"
  return f"latent {source} the source, {target} the target"


def _clusters(by_method: dict[str, dict[str, dict]], ids: list[str]) -> list[str]:
  """Each question's near-duplicate group: the `cluster` of any of its records, else its own id (old runs)."""
  return [next((rows[i]["cluster"] for rows in by_method.values() if "cluster" in rows[i]), i) for i in ids]


def _method_entry(rows: list[dict], clusters: list[str], dataset: str, bootstrap_samples: int, seed: int) -> dict:
  correct = np.array([r["correct"] for r in rows], np.float64)
  latency = np.array([r["latency_s"] for r in rows], np.float64)
  mean = lambda key: float(np.mean([r[key] for r in rows]))
  name = rows[0]["method"]
  entry = {"accuracy": float(correct.mean()), "ci95": list(stats.clopper_pearson(int(correct.sum()), len(rows))),
           "n": len(rows), "correct": int(correct.sum()),
           "control": name in methods.REGISTRY and methods.REGISTRY[name].control,
           "mean_latency_s": float(latency.mean()), "latency_p50_s": float(np.percentile(latency, 50)),
           "latency_p90_s": float(np.percentile(latency, 90)),
           "warmup_s": float(sum(r.get("warmup_s", 0.0) for r in rows)),
           "mean_kv_bytes": mean("kv_cache_bytes"),
           "mean_prompt_tokens": float(np.mean([r["target_prompt_tokens"] + r["soft_tokens"]
                                                or r["source_prompt_tokens"] for r in rows])),
           "mean_generated_tokens": mean("generated_tokens")}
  per_cluster: dict[str, list[int]] = {}
  for c, ok in zip(clusters, correct):
    counts = per_cluster.setdefault(c, [0, 0])
    counts[0] += int(ok)
    counts[1] += 1
  entry["num_clusters"] = len(per_cluster)
  entry["ci95_cluster"] = list(stats.cluster_bootstrap_ci(correct, clusters, n=bootstrap_samples, seed=seed))
  if len(per_cluster) < len(rows):  # with singleton clusters it would only repeat the records
    entry["per_cluster"] = dict(sorted(per_cluster.items()))
  for metric in kinds.get(dataset).metrics:  # e.g. em and f1 for extractive QA
    values = np.array([r[metric] for r in rows], np.float64)
    entry[metric] = float(values.mean())
    entry[f"{metric}_ci95"] = list(stats.bootstrap_ci(values, n=bootstrap_samples, seed=seed))
    entry[f"{metric}_ci95_cluster"] = list(stats.cluster_bootstrap_ci(values, clusters, n=bootstrap_samples,
                                                                     seed=seed))
  return entry


ORACLE_ROUTER = "route_oracle"
CONFIDENCE_ROUTER = "route_confidence"


def _paired(a: np.ndarray, b: np.ndarray, clusters: list[str], bootstrap_samples: int, seed: int) -> dict:
  """a - b on the same questions: the difference, its paired 95% intervals (per question, per cluster), McNemar."""
  diff, lo, hi = stats.paired_bootstrap(a, b, n=bootstrap_samples, seed=seed)
  _, cluster_lo, cluster_hi = stats.paired_cluster_bootstrap(a, b, clusters, n=bootstrap_samples, seed=seed)
  return {"diff": diff, "ci95": [lo, hi], "ci95_cluster": [cluster_lo, cluster_hi], "mcnemar_p": stats.mcnemar_p(a, b)}


def _routed(records: Sequence[dict], name: str, pick_target) -> list[dict]:
  """Derived records (never generated): each question answered by source_alone's record, or by target_alone's
  where pick_target(source, target)."""
  by = {m: {r["id"]: r for r in records if r["method"] == m} for m in ("source_alone", "target_alone")}
  out = []
  for i in sorted(by["source_alone"].keys() & by["target_alone"].keys()):
    source, target = by["source_alone"][i], by["target_alone"][i]
    to_target = bool(pick_target(source, target))
    out.append(dict(target if to_target else source, method=name, routed_to="target" if to_target else "source"))
  return out


def oracle_routing(records: Sequence[dict]) -> list[dict]:
  """The oracle router: each question answered by whichever single model (source_alone, target_alone) is right,
  the source where both or neither are. The bound of any query router that picks one model per question, and
  what a bridge must beat to be more than routing."""
  return _routed(records, ORACLE_ROUTER, lambda source, target: target["correct"] and not source["correct"])


def confidence_routing(records: Sequence[dict]) -> list[dict]:
  """A router that reads no gold and learns nothing: each question answered by whichever single model is surer
  of its own greedy answer (the higher mean log-probability per generated token; ties to the source). It costs
  both models' generations. [] where a single model's record has no log-probability (a run older than them)."""
  if any(r.get("mean_logprob") is None for r in records if r["method"] in ("source_alone", "target_alone")):
    return []
  return _routed(records, CONFIDENCE_ROUTER,
                 lambda source, target: target["mean_logprob"] > source["mean_logprob"])


def aggregate(records: Sequence[dict], *, dataset: str, num_soft_tokens: int, bootstrap_samples: int,
              seed: int, throughput: dict | None = None, split: dict | None = None) -> dict:
  """Per-method accuracy with exact and cluster intervals; latent vs each method, paired and Holm-adjusted;
  KV saving; the oracle and confidence routers where both single models ran (`routing`: beside the table, outside
  the Holm family)."""
  by_method: dict[str, dict[str, dict]] = {}
  for r in records:
    by_method.setdefault(r["method"], {})[r["id"]] = r
  ids = sorted(set.intersection(*(set(v) for v in by_method.values()))) if by_method else []
  if not ids:
    raise ValueError("no question was answered by every method: nothing to aggregate (check eval.num_samples)")
  clusters = _clusters(by_method, ids)
  table = {m: _method_entry([rows[i] for i in ids], clusters, dataset, bootstrap_samples, seed)
           for m, rows in by_method.items()}
  comparisons = {}
  if "latent" in by_method:
    lat = np.array([by_method["latent"][i]["correct"] for i in ids], np.float64)
    for m in by_method.keys() - {"latent"}:
      other = np.array([by_method[m][i]["correct"] for i in ids], np.float64)
      comparisons[f"latent_vs_{m}"] = _paired(lat, other, clusters, bootstrap_samples, seed)
    adjusted = stats.holm({k: c["mcnemar_p"] for k, c in comparisons.items()})
    for k, c in comparisons.items():
      c["mcnemar_p_holm"] = adjusted[k]
  kv_saving = None
  if {"latent", "target_alone"} <= by_method.keys():
    lat_kv, tgt_kv = table["latent"]["mean_kv_bytes"], table["target_alone"]["mean_kv_bytes"]
    kv_saving = {"latent_mean_kv_bytes": lat_kv, "target_alone_mean_kv_bytes": tgt_kv,
                 "saving_fraction": 1.0 - lat_kv / tgt_kv if tgt_kv else None}
  out = {"dataset": dataset, "num_questions": len(ids), "num_clusters": len(set(clusters)),
         "num_soft_tokens": num_soft_tokens, "methods": table, "comparisons": dict(sorted(comparisons.items())),
         "kv_saving": kv_saving, "throughput": throughput or {}, "split": split, "scenario": scenario(comparisons)}
  for name, route in ((ORACLE_ROUTER, oracle_routing), (CONFIDENCE_ROUTER, confidence_routing)):
    routed = {r["id"]: r for r in route(records)}
    if not routed or not set(ids) <= routed.keys():
      continue
    routing = out.setdefault("routing", {})
    routing[name] = _method_entry([routed[i] for i in ids], clusters, dataset, bootstrap_samples, seed)
    routing[name]["picked_target"] = float(np.mean([routed[i]["routed_to"] == "target" for i in ids]))
    if "latent" in by_method:
      lat, other = (np.array([rows[i]["correct"] for i in ids], np.float64) for rows in (by_method["latent"], routed))
      routing[f"latent_vs_{name}"] = _paired(lat, other, clusters, bootstrap_samples, seed)
  return out


def paired_f1(records: list[dict], other: str, *, bootstrap_samples: int, seed: int) -> dict | None:
  """latent − `other` in mean F1 on the questions both answered: the difference and its paired 95% intervals,
  per question and per cluster; None where the dataset scores no F1."""
  by = {m: {r["id"]: r for r in records if r["method"] == m} for m in ("latent", other)}
  ids = sorted(by["latent"].keys() & by[other].keys())
  if not ids or "f1" not in by["latent"][ids[0]]:
    return None
  a, b = (np.array([by[m][i]["f1"] for i in ids], np.float64) for m in ("latent", other))
  diff, lo, hi = stats.paired_bootstrap(a, b, n=bootstrap_samples, seed=seed)
  clusters = [by["latent"][i].get("cluster", i) for i in ids]  # SQuAD: the article; records of old runs: the id
  _, cluster_lo, cluster_hi = stats.paired_cluster_bootstrap(a, b, clusters, n=bootstrap_samples, seed=seed)
  return {"diff": diff, "ci95": [lo, hi], "ci95_cluster": [cluster_lo, cluster_hi], "n": len(ids)}
