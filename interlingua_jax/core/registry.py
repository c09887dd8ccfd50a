"""The one way extension objects are registered and looked up: evaluation methods (`methods`), bridge
kinds (`bridges`) and datasets (`data.kinds`), each a module-level `REGISTRY` dict of named objects.

Each module passes its own dict, read at call time, so a test may swap in a copy and register a toy
extension that ends with the test.
"""
from typing import TypeVar

from interlingua_jax.core.errors import ConfigError

T = TypeVar("T")


def add(registry: dict[str, T], item: T, what: str) -> T:
  """Adds `item` under its `name`; another object of the same name is refused (it would shadow the first)."""
  name = item.name
  if name in registry and registry[name] is not item:
    raise ValueError(f"a {what} named {name!r} is already registered")
  registry[name] = item
  return item


def find(registry: dict[str, T], name: str, what: str, config_key: str) -> T:
  """The object registered as `name`, or one error naming the config key and the choices."""
  if name not in registry:
    raise ConfigError(f"unknown {what} {name!r} ({config_key}); choose from {', '.join(registry)}.")
  return registry[name]
