"""The primitives of config checking: a rule is a function from a value to its problem (or None); `get` reads a
dotted key and `fail` raises the one-line error naming the key and the fix. The run's checks (`run.validate`)
and each bridge kind's own rules (`bridges.kind.Kind.rules`) are written with them.
"""
from collections.abc import Callable

import ml_collections

from interlingua_jax.core.errors import ConfigError

DTYPES = ("float32", "bfloat16", "float16")
Rule = Callable[[object], str | None]  # the problem with a value, or None


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(low, integer: bool = True) -> Rule:
  kind = "an integer" if integer else "a number"
  return lambda v: None if (isinstance(v, int) if integer else _number(v)) and not isinstance(v, bool) \
      and v >= low else f"must be {kind} >= {low}"


def above(low) -> Rule:
  return lambda v: None if _number(v) and v > low else f"must be a number > {low}"


def within(low, high) -> Rule:
  """low <= v < high."""
  return lambda v: None if _number(v) and low <= v < high else f"must be a number in [{low}, {high})"


def one_of(choices) -> Rule:
  return lambda v: None if v in choices else f"must be one of {', '.join(map(str, choices))}"


def each_of(choices) -> Rule:
  def rule(v):
    if not isinstance(v, (tuple, list)) or not v:
      return f"must be a non-empty list drawn from {', '.join(choices)}"
    bad = [x for x in v if x not in choices]
    return f"has unknown entries {bad}; choose from {', '.join(choices)}" if bad else None
  return rule


def increasing_positive(v) -> str | None:
  ok = isinstance(v, (tuple, list)) and v and all(isinstance(x, int) and x >= 1 for x in v) \
      and list(v) == sorted(set(v))
  return None if ok else "must be a non-empty increasing list of positive integers"


def text(v) -> str | None:
  return None if isinstance(v, str) and v else "must be a non-empty string"


def flag(v) -> str | None:
  return None if isinstance(v, bool) else "must be True or False"


def get(cfg: ml_collections.ConfigDict, key: str):
  node = cfg
  for part in key.split("."):
    if part not in node:
      raise ConfigError(f"the config has no key {key}; a config file must start from configs/base.py "
                        "(`c = base.get_config()`) and change only what differs.")
    node = node[part]
  return node


def fail(key: str, value, problem: str) -> None:
  raise ConfigError(f"config key {key}={value!r} {problem}; change it in the config file or with "
                    f"--config.{key}=...")
