"""The run context: the config as given, and what a run derives from it (the paths of its models and data).

The config is data: nothing writes into it. The toy worlds and the generated word problems build their files
at run time; where they put them travels here, beside the config, to every stage that reads a model or a split.
"""
import dataclasses
from collections.abc import Mapping

import ml_collections


@dataclasses.dataclass(frozen=True)
class Paths:
  """Where a run's inputs are: each frozen LM by role (a bridge kind's names: "source", "target", a target's
  name), and the two data files ('' = load `data.hf_name`)."""
  models: Mapping[str, str]
  train: str
  test: str


@dataclasses.dataclass(frozen=True)
class Run:
  cfg: ml_collections.ConfigDict  # as given: never written
  workdir: str
  modes: tuple[str, ...]
  paths: Paths
