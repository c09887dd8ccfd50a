"""What every evaluation method needs, in one immutable object passed explicitly: the frozen models, the soft
source of the bridge being evaluated, prompts and decoding. A variant (another checkpoint, a batch size, a wire
round trip) is a `dataclasses.replace` of it.
"""
import dataclasses
from collections.abc import Callable, Mapping
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
  soft_transform: Callable[[np.ndarray], np.ndarray] | None = None  # e.g. a wire round trip (compression)
  control_seed: int = 0  # the controls' derangement of the questions
  warm_up: bool = True  # run each new batch shape once untimed first (off where latency is not read)
  labels: tuple[tuple[str, str], ...] = ()  # extra (key, value) fields of every record, e.g. ("target", name)
  prior: Mapping[str | None, str] = dataclasses.field(default_factory=dict)  # `methods.prior_answers` of training

  @property
  def dataset(self) -> str:
    return self.builder.dataset


class SoftSource(Protocol):
  """Where the evaluated bridge's soft tokens come from: each bridge kind implements it."""

  def text(self, example: Example) -> str:
    """The text the soft tokens stand in for (the wire analysis compares its bytes with the packet's)."""

  def ids(self, example: Example) -> list[int]:
    """What the bridge reads for one question (soft-token methods' `Prepared.source_ids`)."""

  def soft(self, rows: list[list[int]]) -> jax.Array:
    """(B, M, d_target) soft tokens of a batch of `ids` rows."""
