"""What every evaluation method needs, in one immutable object passed explicitly: the frozen models, the bridge
being evaluated, prompts and decoding. A variant (another checkpoint, a batch size, a wire round trip) is a
`dataclasses.replace` of it.

A bridge reaches the target in one of two ways, each a protocol its kind implements: soft tokens in the target's
input (`SoftSource`: [BOS][soft][anchor]), or a rewrite of the target's KV cache of its own full prompt
(`CacheSource`, KV fusion). The bridge methods (`latent` and its controls) run either way; the harness asks the
context which.
"""
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import jax
import numpy as np
from jax.sharding import Mesh

from interlingua_jax.data import pipeline
from interlingua_jax.data.records import Example
from interlingua_jax.models.frozen import Frozen


@dataclasses.dataclass(frozen=True)
class Decoding:
  max_new_tokens: int
  stop_strings: tuple[str, ...]
  batch_size: int
  length_buckets: tuple[int, ...]
  repetition_penalty: float = 1.0
  no_repeat_ngram_size: int = 0


@dataclasses.dataclass(frozen=True)
class Context:
  """What every method needs: the frozen models, the bridge's soft source (soft-token methods), prompts, decoding."""
  frozen: Frozen
  builder: pipeline.PromptBuilder
  anchor: str
  num_soft_tokens: int
  decoding: Decoding
  mesh: Mesh
  soft_source: "SoftSource | None" = None  # the evaluated bridge's soft tokens (soft-token methods need one)
  cache_source: "CacheSource | None" = None  # or the evaluated bridge's rewrite of the target's cache
  # A wire round trip of what the bridge sends for one question, a (rows, cols) array (compression)
  soft_transform: Callable[[np.ndarray], np.ndarray] | None = None
  control_seed: int = 0  # the controls' derangement of the questions
  warm_up: bool = True  # run each new batch shape once untimed first (off where latency is not read)
  labels: tuple[tuple[str, str], ...] = ()  # extra (key, value) fields of every record, e.g. ("target", name)
  prior: Mapping[str | None, str] = dataclasses.field(default_factory=dict)  # `methods.prior_answers` of training

  @property
  def dataset(self) -> str:
    return self.builder.dataset

  @property
  def bridge(self) -> "SoftSource | CacheSource | None":
    """The evaluated bridge, whichever way it reaches the target."""
    return self.cache_source if self.cache_source is not None else self.soft_source


class SoftSource(Protocol):
  """Where the evaluated bridge's soft tokens come from: each bridge kind implements it."""

  def text(self, example: Example) -> str:
    """The text the soft tokens stand in for (the wire analysis compares its bytes with the packet's)."""

  def ids(self, example: Example) -> list[int]:
    """What the bridge reads for one question (soft-token methods' `Prepared.source_ids`)."""

  def soft(self, rows: list[list[int]]) -> jax.Array:
    """(B, M, d_target) soft tokens of a batch of `ids` rows."""


class CacheSource(Protocol):
  """A bridge that rewrites the target's KV cache of its own full prompt from what a source LM read (KV fusion):
  the target reads `target_ids`, the source reads `ids` of the question the method names."""

  def text(self, example: Example) -> str:
    """The text the source reads (the wire analysis compares its bytes with the packet's)."""

  def ids(self, example: Example) -> list[int]:
    """What the source reads for one question."""

  def target_ids(self, example: Example) -> list[int]:
    """The target's own prompt for one question (the cache the bridge rewrites)."""

  def packet_shape(self, example: Example) -> tuple[int, int]:
    """The (rows, cols) array sent for one question (`Context.soft_transform` round-trips it)."""

  def transform(self, read: Sequence[Example], target_ids: np.ndarray, target_mask: np.ndarray, variant: str,
                soft_transform: Callable[[np.ndarray], np.ndarray] | None = None) -> Callable:
    """generate's cache_transform for a left-padded batch of target prompts (B, T), row b's cache rewritten from
    the source reading `read[b]`; `variant` names the method's variant of the bridge ("" = as trained; a kind
    defines its controls' names)."""
