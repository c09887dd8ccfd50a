"""The bridge kinds, by `bridge.kind`: the registry, and its import list (one line per kind's package).

Each kind implements the protocol of `kind.py` in its own package; nothing outside these packages names a kind.
A test or an experiment may `register` another kind object; `get` finds one by name.
"""
from interlingua_jax.bridges.interlingua.kind import INTERLINGUA
from interlingua_jax.bridges.kind import Kind
from interlingua_jax.bridges.kv_fusion.kind import KV_FUSION
from interlingua_jax.bridges.translator.kind import TRANSLATOR
from interlingua_jax.core import registry

REGISTRY: dict[str, Kind] = {}
DEFAULT = TRANSLATOR.name  # the kind of runs saved before `bridge.kind` existed


def register(kind: Kind) -> Kind:
  return registry.add(REGISTRY, kind, "bridge kind")


def get(name: str) -> Kind:
  return registry.find(REGISTRY, name, "bridge kind", "bridge.kind")


register(TRANSLATOR)
register(INTERLINGUA)
register(KV_FUSION)
