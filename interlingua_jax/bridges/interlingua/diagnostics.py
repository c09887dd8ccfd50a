"""Why a shared interlingua fails, measured: collapse, scale, alignment, calibration (`--mode=diagnostics`).

The first implementation's failures had three signatures, each measured here per target:
  collapse      every question answered alike ("the"): `evaluation.validation.collapse_alarm`, logged at each
                validation pass;
  scale         adapter outputs ~100x off the target's embedding scale: per-vector RMS of the soft tokens
                next to the RMS of the target's own embeddings of the same texts;
  alignment     soft tokens far from any token embedding: cosine to the nearest vocabulary entry, and which;
and two ablations of the trained adapters' outputs at evaluation: `latent` scored as trained, with every soft token
rescaled to the embedding RMS, and batch-normalised (each dimension standardised over the evaluated soft tokens, then
given the mean and spread of the target's embeddings of the same texts). Beside them the compression ratio: the
UTF-8 bytes of what the encoder reads against the bytes of the shared Z (M × d_z, float16 and float32). Training
*with* calibration is a separate run (`interlingua.calibrate_rms=True`; the sweep's calibrated arms).
Figures (PDF + PNG) and `diagnostics.json` go to `<workdir>/diagnostics/`.
"""
import collections
import dataclasses
from pathlib import Path

import numpy as np

from interlingua_jax.bridges.interlingua import batches
from interlingua_jax.core import outputs
from interlingua_jax.core.context import Run
from interlingua_jax.data import pipeline, splits
from interlingua_jax.evaluation.context import Context
from interlingua_jax.evaluation.harness import run_methods
from interlingua_jax.evaluation.validation import collapse_alarm, score

DIAGNOSTIC_SAMPLES = 64  # questions whose soft tokens are measured (the scores use eval.num_samples)


def rms_per_vector(x: np.ndarray) -> np.ndarray:
  return np.sqrt(np.mean(np.square(x.astype(np.float64)), axis=-1))


def nearest_tokens(soft: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """For each vector of soft (N, d): the cosine to its nearest row of the embedding table (V, d), and that row."""
  unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  cos = unit(soft.astype(np.float32)) @ unit(table.astype(np.float32)).T
  return cos.max(axis=-1), cos.argmax(axis=-1)


def rescaled(target_rms: float):
  """A `Context.soft_transform`: every soft vector set to the target's embedding RMS."""
  return lambda s: s * (target_rms / np.maximum(rms_per_vector(s)[..., None], 1e-12))


def batch_normalized(soft_mean: np.ndarray, soft_std: np.ndarray, text_mean: np.ndarray, text_std: np.ndarray):
  """A `Context.soft_transform`: each dimension standardised with the soft tokens' statistics, then mapped to the
  text embeddings' (per-dimension mean and standard deviation, each (d,))."""
  return lambda s: (s - soft_mean) / np.maximum(soft_std, 1e-12) * text_std + text_mean


def compression(examples: list, num_soft_tokens: int, latent_dim: int) -> dict:
  """What the shared Z saves against sending the text it encodes: mean UTF-8 bytes of the reading text over Z's."""
  text_bytes = float(np.mean([len(batches.reading_text(e).encode("utf-8")) for e in examples]))
  z = {f"latent_bytes_{name}": num_soft_tokens * latent_dim * size for name, size in (("float16", 2), ("float32", 4))}
  return {"text_bytes_mean": text_bytes, **z, "ratio_float16": text_bytes / z["latent_bytes_float16"],
          "ratio_float32": text_bytes / z["latent_bytes_float32"]}


def measure(ctx: Context, examples: list) -> dict:
  """Scale and alignment of one target's soft tokens on `examples`, next to its embeddings of their texts."""
  tok, params = ctx.frozen.target_tokenizer, ctx.frozen.target.params
  soft = np.asarray(ctx.soft_source.soft([ctx.soft_source.ids(e) for e in examples]), np.float32)
  table = np.asarray(params["embed"], np.float32)
  text_ids = sorted({i for e in examples for i in pipeline.token_ids(tok, batches.reading_text(e))})
  soft_rms, text_rms = rms_per_vector(soft).ravel(), rms_per_vector(table[text_ids])
  cos, nearest = nearest_tokens(soft.reshape(-1, soft.shape[-1]), table)
  common = collections.Counter(nearest.tolist()).most_common(10)
  flat, text = soft.reshape(-1, soft.shape[-1]).astype(np.float64), table[text_ids].astype(np.float64)
  return {"soft_rms": soft_rms, "text_rms": text_rms, "nearest_cos": cos,
          "dim_stats": (flat.mean(0), flat.std(0), text.mean(0), text.std(0)),
          "summary": {"soft_rms_median": float(np.median(soft_rms)), "text_rms_median": float(np.median(text_rms)),
                      "rms_ratio": float(np.median(soft_rms) / np.median(text_rms)),
                      "table_rms": float(np.sqrt(np.mean(np.square(table)))),
                      "nearest_cos_median": float(np.median(cos)),
                      "nearest_tokens": [[tok.decode([i]), n / len(nearest)] for i, n in common]}}


def first_token_curves(workdir: str, names: list[str]) -> dict[str, list[tuple[int, float]]]:
  train_rows, _, _ = outputs.read_metrics(workdir)
  return {n: [(r["step"], r[f"{n}/first_token_accuracy"]) for r in train_rows if f"{n}/first_token_accuracy" in r]
          for n in names}


def figures(measured: dict[str, dict], curves: dict, out_dir: Path) -> list[str]:
  import matplotlib  # matplotlib loads only when figures are drawn
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  save = outputs.save_figure
  files, names = [], list(measured)
  fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
  for ax, name in zip(axes[0], names):
    m = measured[name]
    lo = min(m["soft_rms"].min(), m["text_rms"].min()) * 0.8
    hi = max(m["soft_rms"].max(), m["text_rms"].max()) * 1.25
    bins = np.geomspace(max(lo, 1e-8), hi, 40)
    ax.hist(m["text_rms"], bins=bins, alpha=0.6, density=True, label="text embeddings")
    ax.hist(m["soft_rms"], bins=bins, alpha=0.6, density=True, label="adapter output")
    ax.set(xscale="log", xlabel="per-vector RMS", title=f"{name}: ratio {m['summary']['rms_ratio']:.3g}")
    ax.legend()
  files += save(fig, out_dir, "rms")
  fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
  for ax, name in zip(axes[0], names):
    ax.hist(measured[name]["nearest_cos"], bins=40, range=(-1, 1))
    ax.set(xlabel="cosine to the nearest token embedding", title=name)
  files += save(fig, out_dir, "nearest_vocabulary")
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for name, points in curves.items():
    if points:
      ax.plot(*zip(*points), label=name)
  ax.set(xlabel="step", ylabel="first-token accuracy (train batch)", ylim=(0, 1))
  ax.legend()
  files += save(fig, out_dir, "first_token_accuracy")
  return files


def diagnose(run: Run, setup, contexts: dict[str, Context]) -> dict:
  """Every diagnostic of the evaluated checkpoint (`contexts`: one per target), for each target."""
  cfg = run.cfg
  examples = splits.evaluation_subset(setup.test, cfg.eval.num_samples, cfg.eval.subset_seed)[0]
  measured, scores = {}, {}
  for name, target_ctx in contexts.items():
    ctx = dataclasses.replace(target_ctx, warm_up=False)
    measured[name] = measure(ctx, examples[:DIAGNOSTIC_SAMPLES])
    table_rms = measured[name]["summary"]["table_rms"]
    scores[name] = {}
    for label, transform in (("as_trained", None), ("rms_rescaled", rescaled(table_rms)),
                             ("batch_normalized", batch_normalized(*measured[name]["dim_stats"]))):
      records = run_methods(dataclasses.replace(ctx, soft_transform=transform), ["latent"], examples,
                            samples_path=None, progress=False)
      scores[name][label] = {"score": score(records),
                             **collapse_alarm([r["prediction"] for r in records], ctx.frozen.target_tokenizer)}
  out_dir = Path(run.workdir) / "diagnostics"
  out_dir.mkdir(parents=True, exist_ok=True)
  curves = first_token_curves(run.workdir, list(contexts))
  files = figures(measured, curves, out_dir)
  result = {name: {**measured[name]["summary"], "latent": scores[name],
                   "first_token_accuracy_last": curves[name][-1][1] if curves[name] else None}
            for name in contexts}
  outputs.write_json(out_dir / "diagnostics.json", {
      "targets": result, "figures": files, "num_questions": len(examples),
      "compression": compression(examples, cfg.interlingua.num_soft_tokens, cfg.interlingua.latent_dim)})
  return result
