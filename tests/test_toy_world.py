"""Toy worlds end to end, through the same code path as the README's main command.

The reduced easy world (configs/toy_reduced.py): two tiny LMs pretrained from scratch, a
translator trained between them, and the bridge evaluated against the token budget on held-out
questions. The graded and complementary worlds, shrunk by configs/tiny.py's SHRINK: their
knobs reach the data files and the info beside them, and every stage runs on them."""
import json
import os

import pytest

from configs import tiny, toy_complementary, toy_hard, toy_reduced
from interlingua_jax.run import experiment, stages
from interlingua_jax.toy import capacity, task


def test_reduced_toy_world_latent_beats_its_controls_and_the_prior(tmp_path):
  """Not against token_budget alone (near 0 by construction: the question's end is cut off): against another
  question's soft tokens and the knowledge-free prior, by the cluster (per-problem) intervals."""
  workdir = str(tmp_path)
  experiment.run(toy_reduced.get_config(), workdir, ("train", "eval"))
  with open(os.path.join(workdir, "eval", "aggregate.json")) as f:
    agg = json.load(f)
  acc = {m: v["accuracy"] for m, v in agg["methods"].items()}
  print("reduced toy world:", acc, agg["num_clusters"])
  assert agg["num_questions"] == 100 and 1 < agg["num_clusters"] < 100  # near-duplicates share a problem
  for other in ("latent_shuffled", "prior", "token_budget"):
    comparison = agg["comparisons"][f"latent_vs_{other}"]
    assert comparison["ci95_cluster"][0] > 0, (other, acc, comparison)
  assert agg["checkpoint"]["evaluated"] == "best" and "latent_at_final" in agg["methods"]
  assert set(agg["latency_batch1"]) == {"target_alone", "latent", "token_budget", "latent_shuffled"}


@pytest.mark.parametrize("config", [toy_hard, toy_complementary], ids=["hard", "complementary"])
def test_graded_and_complementary_worlds_run_every_stage(tmp_path, config):
  cfg = tiny.shrink(config.get_config())  # every method of the world's config, its probes included
  experiment.run(cfg, str(tmp_path), ("train", "eval"))
  assert not cfg.data.test_path  # the config is never written: the run's record holds the paths it resolved
  with open(tmp_path / "config.json") as f:
    test_path = json.load(f)["data"]["test_path"]
  spec = task.TaskSpec(**cfg.toy.world.task)
  with open(os.path.join(os.path.dirname(test_path), "info.json")) as f:
    info = json.load(f)
  assert info["bits_per_question"] == pytest.approx(capacity.information(spec)["bits_per_question"])
  assert info["test_problems_in_train"] == 0
  with open(test_path) as f:
    questions = [json.loads(line)["question"] for line in f]
  assert len(questions) == cfg.toy.world.num_test
  assert all(("lucky number" in q) == spec.lookup for q in questions)
  with open(tmp_path / "eval" / "aggregate.json") as f:
    assert set(json.load(f)["methods"]) == set(cfg.eval.methods) | {"latent_at_final"}  # the other checkpoint
