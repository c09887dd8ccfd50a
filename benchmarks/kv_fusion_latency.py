"""KV fusion's latency at batch 1, split into its parts, against the target alone on the same prompts.

For each of --questions test questions of a trained kv_fusion run, timed in interleaved rounds (medians, warm-up
excluded), every call waited for:
  source     the sharer's prefill of the prompt and the alignment of its cache to the target's slots (what a
             sender computes and ships; host tokenisation and alignment included)
  prefill    the target's prefill of its prompt but the last token
  fusion     the fusers rewriting that cache once (hard gates)
  fused      the target's whole generation from the fused cache: prefill, fusion, then decoding
  alone      target_alone: the target's plain generation of the same prompt
decode = fused - prefill - fusion (derived). Both generations write exactly --new_tokens tokens (EOS out of
reach), so decoding is compared at equal length. End to end, a fused answer costs source + fused.

  python benchmarks/kv_fusion_latency.py --workdir=<a kv_fusion run> [--questions 8 --new_tokens 16 --rounds 5]
"""
import argparse
import json
import statistics

import jax
import numpy as np

import timing
from interlingua_jax.core import workdir as workdir_lib
from interlingua_jax.models import generate
from interlingua_jax.models.generate import prefill_prompt
from interlingua_jax.run import config as config_lib, experiment, stages
from interlingua_jax.run.setup import setup

PARTS = ("source", "prefill", "fusion", "fused", "alone")


def question_timings(ctx, example, *, new_tokens: int, rounds: int) -> dict[str, float]:
  bridge, target = ctx.cache_source, ctx.frozen.target
  ids = np.asarray([bridge.target_ids(example)], np.int32)
  mask = np.ones_like(ids)
  transform = bridge.transform([example], ids, mask, "")
  _, cache = prefill_prompt(target, input_ids=ids[:, :-1], attention_mask=mask[:, :-1], extra_slots=1 + new_tokens)
  fuse = jax.jit(lambda t, c: t(c))
  kw = dict(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, eos_token_id=target.config.vocab_size,
            pad_token_id=0)
  fns = {"source": lambda: bridge.transform([example], ids, mask, "").source.k,
         "prefill": lambda: prefill_prompt(target, input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                                           extra_slots=1 + new_tokens)[1].k,
         "fusion": lambda: fuse(transform, cache).k,
         "fused": lambda: generate(target, cache_transform=transform, **kw).tokens,
         "alone": lambda: generate(target, **kw).tokens}
  return {name: t.median for name, t in timing.interleaved(fns, rounds=rounds, warmup=1).items()}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="a trained kv_fusion run")
  p.add_argument("--questions", type=int, default=8)
  p.add_argument("--new_tokens", type=int, default=16)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--out", default="", help="write the figures as JSON here")
  a = p.parse_args()
  cfg = config_lib.from_json(workdir_lib.saved_config(a.workdir))
  if cfg.bridge.kind != "kv_fusion":
    raise SystemExit(f"{a.workdir} is a {cfg.bridge.kind!r} run; pass a kv_fusion run's workdir.")
  run, kind = experiment.start(cfg, a.workdir, ("eval",))
  s = setup(run, kind)
  ctx = kind.contexts(run, s, stages.restore(run, kind, s, stages.evaluated_checkpoint(cfg)))[None]
  per_question = [question_timings(ctx, e, new_tokens=a.new_tokens, rounds=a.rounds) for e in s.test[:a.questions]]
  mean = {name: statistics.mean(q[name] for q in per_question) for name in PARTS}
  mean["decode"] = mean["fused"] - mean["prefill"] - mean["fusion"]
  mean["end_to_end_over_alone"] = (mean["source"] + mean["fused"]) / mean["alone"]
  print(f"batch 1, {len(per_question)} questions, {a.new_tokens} new tokens, median of {a.rounds} interleaved "
        "rounds per question, mean over questions (ms):")
  for name in (*PARTS, "decode"):
    print(f"  {name:>8} {1e3 * mean[name]:9.2f}")
  print(f"  end to end (source + fused) / alone: {mean['end_to_end_over_alone']:.2f}x")
  if a.out:
    with open(a.out, "w") as f:
      json.dump({"settings": vars(a), "mean_seconds": mean, "per_question": per_question}, f, indent=1)


if __name__ == "__main__":
  main()
