"""The toy study's suites: the capacity grid and the stability arms are what their docstrings say."""
import pytest

from configs import tiny
from configs.suites import toy_capacity, toy_stability
from interlingua_jax import ablations


def test_capacity_suite_sweeps_m_at_two_levels_with_the_references():
  exps = ablations.parse_suite(toy_capacity.get_config())
  grid = {(e.config.name, e.overrides["translator.num_soft_tokens"]) for e in exps}
  assert grid == {(f"{level}.py", m) for level in ("toy", "toy_hard") for m in toy_capacity.SOFT_TOKENS}
  assert len({e.name for e in exps}) == len(exps)
  assert all({"latent", "token_budget", "target_alone"} <= set(e.overrides["eval.methods"]) for e in exps)
  reduced = ablations.parse_suite(toy_capacity.get_config("reduced"))
  assert all(e.overrides["train.steps"] == tiny.SHRINK["train.steps"] for e in reduced)
  with pytest.raises(ValueError, match="toy_capacity.py:reduced"):
    toy_capacity.get_config("full")


def test_stability_suite_differs_only_by_the_fixes():
  fixes, no_fixes = toy_stability.get_config().experiments
  assert fixes["config"] == no_fixes["config"] == "configs/toy_hard.py"
  assert len(fixes["seeds"]) >= 3 and fixes["seeds"] == no_fixes["seeds"]
  changed = {k for k in fixes["overrides"].keys() | no_fixes["overrides"].keys()
             if fixes["overrides"].get(k) != no_fixes["overrides"].get(k)}
  assert changed == {"loss.infonce_weight", "train.early_stopping"}
  assert no_fixes["overrides"]["loss.infonce_weight"] == 0 and not no_fixes["overrides"]["train.early_stopping"]
  # The no-fixes arm keeps none of early stopping's benefit: its test split reads the final checkpoint (and its
  # aggregate reports the best one beside it as latent_at_best), so its test accuracy can show a collapse.
  from configs import toy_hard
  from interlingua_jax.run import stages
  for arm, expected in ((fixes, "best"), (no_fixes, "final")):
    cfg = toy_hard.get_config()
    cfg.update_from_flattened_dict(arm["overrides"])
    assert stages.evaluated_checkpoint(cfg) == expected
