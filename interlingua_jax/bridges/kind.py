"""The bridge kinds: the one dispatch from `bridge.kind` to what a run of that kind does.

A kind says how a run builds its trainable module and runs its stages. Two are built in:

  translator   frozen source LM -> `Translator` -> soft tokens of one frozen target (runner.py).
  interlingua  text -> `SharedInterlingua` -> one Z -> an adapter per target of `interlingua.targets`
               (interlingua/stage.py); the loss is the sum of `target_loss` over the targets.

Latent kinds (the interlingua and any kind registered beside it) share the interlingua's stages: only
`build` differs, a module called as `(encoder inputs, mask) -> {target name: (B, M, d_model)}` in float32,
where the inputs are byte ids, or the frozen source's states (B, S, d_source) with interlingua.encoder =
"states".
A new kind is one `register(Kind(...))` and `bridge.kind` in a config (docs/DESIGN.md §5).
"""
import dataclasses
from collections.abc import Callable

from interlingua_jax.core import registry


@dataclasses.dataclass(frozen=True)
class Kind:
  """run: (cfg, workdir, modes) -> summary, the stages of a run of this kind.
  build: latent kinds only, (cfg, target_dims {name: d_model}, target_rms {name: rms}, source_dim or None) ->
  the trainable module."""
  name: str
  run: Callable
  build: Callable | None = None


REGISTRY: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
  return registry.add(REGISTRY, kind, "bridge kind")


def get(name: str) -> Kind:
  return registry.find(REGISTRY, name, "bridge kind", "bridge.kind")


def _run_translator(cfg, workdir, modes):
  from interlingua_jax.run import runner
  return runner.run_translator(cfg, workdir, modes)


def run_latent(cfg, workdir, modes):
  from interlingua_jax.bridges.interlingua import stage
  return stage.run(cfg, workdir, modes)


def _build_interlingua(cfg, target_dims, target_rms, source_dim):
  from interlingua_jax.bridges.interlingua import stage
  return stage.build_shared(cfg, target_dims, target_rms, source_dim)


register(Kind("translator", run=_run_translator))
register(Kind("interlingua", run=run_latent, build=_build_interlingua))
