"""The training loop's judgement of a bridge: `latent` on the validation split (never the test split), per view.

Every view's score is the mean F1 where the dataset scores F1, else accuracy; the state's score is their mean
and selects the best checkpoint. Each view also gets the collapse alarm: the first implementation's bridges
answered every question alike ("the"), which a score alone can hide.
"""
import collections
import dataclasses
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.data.scoring import normalize_answer
from interlingua_jax.evaluation.context import Context
from interlingua_jax.evaluation.harness import run_methods

ALARM_SHARE = 0.5  # over half the questions answered alike, or starting with the same token: collapse


def score(records: Sequence[dict]) -> float:
  """Mean F1 where the dataset scores F1, else accuracy."""
  key = "f1" if records and "f1" in records[0] else "correct"
  return float(np.mean([float(r[key]) for r in records]))


def collapse_alarm(predictions: list[str], tokenizer) -> dict:
  """Share of the most common (normalised) prediction, the most common first token and its share, and
  whether either is over `ALARM_SHARE`."""
  n = max(len(predictions), 1)
  same = collections.Counter(normalize_answer(p) for p in predictions).most_common(1)
  firsts = collections.Counter(tokenizer.decode(pipeline.token_ids(tokenizer, p.strip())[:1]) for p in predictions)
  top, count = firsts.most_common(1)[0] if firsts else ("", 0)
  identical = same[0][1] / n if same else 0.0
  return {"identical_share": identical, "top_first_token": top, "top_first_token_share": count / n,
          "alarm": bool(identical > ALARM_SHARE or count / n > ALARM_SHARE)}


def validation_pass(contexts: Mapping[str | None, Context], examples: Sequence[Example], step: int) -> tuple[float, dict]:
  """(the mean score over views, the metrics row of this pass): `latent` on `examples` in every view."""
  row, scores = {"step": step}, []
  for label, ctx in contexts.items():
    records = run_methods(dataclasses.replace(ctx, warm_up=False), ["latent"], examples, samples_path=None,
                          progress=False)
    scores.append(score(records))
    alarm = collapse_alarm([r["prediction"] for r in records], ctx.frozen.target_tokenizer)
    prefix = "validation/" if label is None else f"validation/{label}/"
    row.update({f"{prefix}score": scores[-1], **{f"{prefix}{k}": v for k, v in alarm.items()}})
    logging.log(logging.WARNING if alarm["alarm"] else logging.INFO,
                "step %d%s: validation score %.4f; %.0f%% identical predictions, most common first token %r "
                "(%.0f%%)%s", step, "" if label is None else f", target {label}", scores[-1],
                100 * alarm["identical_share"], alarm["top_first_token"], 100 * alarm["top_first_token_share"],
                " -- COLLAPSE ALARM" if alarm["alarm"] else "")
  return float(np.mean(scores)), row
