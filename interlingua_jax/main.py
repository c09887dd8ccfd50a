"""Entry point: `python -m interlingua_jax.main --config=configs/stable_64.py --workdir=DIR [--mode=...]`.

Modes: train, eval, compression, report, or all (train → eval → compression → report, then
`<workdir>/DONE`). With no --config the embedded default is the offline toy world
(`configs/toy.py`), which first pretrains its two tiny LMs (cached in the workdir).
Multi-host runs call `jax.distributed.initialize()` when JAX_COORDINATOR_ADDRESS is set.
"""
import json
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Config files import `configs.base`: make the folder that holds `configs/` importable from anywhere.
sys.path.insert(0, _REPO)

_CONFIG = config_flags.DEFINE_config_file("config", os.path.join(_REPO, "configs", "toy.py"),
                                          "Experiment config file (ml_collections get_config()).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/toy", "Where checkpoints, metrics and outputs go.")
_MODE = flags.DEFINE_enum("mode", "all", ["all", "train", "eval", "compression", "report"], "What to run.")

MODES_OF_ALL = ("train", "eval", "compression", "report")


def main(argv) -> None:
  del argv
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    import jax
    jax.distributed.initialize(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                               num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                               process_id=int(os.environ["JAX_PROCESS_ID"]))
  logging.getLogger().setLevel(logging.INFO)
  from interlingua_jax import runner
  cfg, workdir = _CONFIG.value, os.path.abspath(_WORKDIR.value)
  modes = MODES_OF_ALL if _MODE.value == "all" else (_MODE.value,)
  result = runner.run(cfg, workdir, modes)
  if _MODE.value == "all":
    with open(os.path.join(workdir, "DONE"), "w") as f:
      json.dump(result, f)
  print(f"\nDone. Outputs in {workdir}" + (f"; report: {result['report']}" if result.get("report") else ""))


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with a bad flag or --config override reported in one line, not a traceback."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError, ValueError, flags.Error) as e:
    message = str(e).replace("\\n", " ").replace("\n", " ").replace("\\'", "'").strip("'\"")
    sys.exit(f"error: bad command line or --config override: {message}")


def run() -> None:
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
