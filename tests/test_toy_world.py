"""A reduced toy world, through the same code path as the README's main command: two tiny LMs
pretrained from scratch, a translator trained between them, and the bridge evaluated against the
token budget on held-out questions. Reduced in steps and questions so it fits the test suite."""
import json
import os

from interlingua_jax import runner


def reduced_toy_config():
  from configs import toy
  c = toy.get_config()
  c.toy.world.num_train = 3000
  c.toy.world.num_test = 100
  c.toy.world.pretrain_steps = 300
  c.toy.world.pretrain_batch_size = 32
  c.train.steps = 400
  c.train.eval_every = 200
  c.train.eval_num_samples = 50
  c.eval.methods = ("target_alone", "latent", "token_budget")
  c.eval.num_samples = 100
  c.eval.latency_batch_sizes = (1,)
  c.eval.bootstrap_samples = 1000
  return c


def test_reduced_toy_world_latent_beats_token_budget(tmp_path):
  workdir = str(tmp_path)
  runner.run(reduced_toy_config(), workdir, ("train", "eval"))
  with open(os.path.join(workdir, "eval", "aggregate.json")) as f:
    agg = json.load(f)
  acc = {m: v["accuracy"] for m, v in agg["methods"].items()}
  print("reduced toy world:", acc)
  assert agg["num_questions"] == 100
  comparison = agg["comparisons"]["latent_vs_token_budget"]
  assert acc["latent"] > acc["token_budget"] and comparison["ci95"][0] > 0, (acc, comparison)
