"""Entry point: `python -m interlingua_jax.main --config=configs/stable_64.py --workdir=DIR [--mode=...]`.

Modes: train, eval, compression, report, or all (train → eval → compression → report, then
`<workdir>/DONE`); or a stage of the bridge kind's own (`Kind.stages`). With no --config the embedded default is the offline toy world
(`configs/toy.py`), which first pretrains its two tiny LMs (cached in the workdir).

A workdir that already holds a run's `config.json` needs no --config: that saved config is the base
and `--config.KEY=VALUE` overrides apply to it, so `--mode=eval --workdir=DIR` evaluates a trained
run with exactly its training settings. Only evaluation keys may then differ from the saved config
(the difference is logged), except `train.steps`, which may be raised to extend a run (see
`run.config.check_config` for the schedule rule).

Before anything is loaded: the workdir is checked and locked (a second run on it exits at once,
naming the holder), and every config value is validated. Errors the user can fix print one
`error: …` line (`--verbose`: with the traceback, and libraries' INFO logging on the console;
it is always kept in `<workdir>/log.txt`). Multi-host runs call `jax.distributed.initialize()`
when JAX_COORDINATOR_ADDRESS is set.
"""
import functools
import json
import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

from interlingua_jax.core import cli, workdir as workdir_lib
from interlingua_jax.core.errors import ConfigError

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Config files import `configs.base`: make the folder that holds `configs/` importable from anywhere.
sys.path.insert(0, _REPO)

DEFAULT_CONFIG = os.path.join(_REPO, "configs", "toy.py")
MODES = ("all", "train", "eval", "compression", "report", "diagnostics")
MODES_OF_ALL = ("train", "eval", "compression", "report")
LOG_FILE = "log.txt"


def parse_flags(argv: list[str]) -> flags.FlagValues:
  """Fresh flags for this argv (so the CLI can run twice in one process); a bad flag is a ConfigError."""
  if sum(a == "--config" or a.startswith("--config=") for a in argv) > 1:
    raise ConfigError("--config is given twice; pass one config file (and --config.KEY=VALUE overrides).")
  fv = flags.FlagValues()
  try:
    config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Experiment config file (ml_collections get_config()).",
                                    flag_values=fv, sys_argv=argv)
    flags.DEFINE_string("workdir", "runs/toy", "Where checkpoints, metrics and outputs go.", flag_values=fv)
    flags.DEFINE_enum("mode", "all", MODES, "What to run.", flag_values=fv)
    fv(argv)
  except (AttributeError, KeyError, ValueError, TypeError, OSError, SyntaxError, flags.Error) as e:
    message = str(e).replace("\\n", " ").replace("\\'", "'")
    while len(message) > 1 and message[0] == message[-1] and message[0] in "'\"":  # KeyError's quotes
      message = message[1:-1]
    raise ConfigError(f"bad command line or --config: {message}") from e
  return fv


def overridden_keys(fv: flags.FlagValues) -> list[str]:
  return [name[len("config."):] for name in fv if name.startswith("config.") and fv[name].present]


def effective_config(fv: flags.FlagValues, workdir: str) -> ml_collections.ConfigDict:
  """The --config file with its overrides or, with no --config and a saved run, the saved config with them."""
  saved = workdir_lib.saved_config(workdir)
  if fv["config"].present or saved is None:
    return fv["config"].value
  from interlingua_jax.run import config as config_lib  # the package (and jax) load after the flags are read
  cfg = config_lib.from_json(saved)
  for key in overridden_keys(fv):
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
      node = node.get(p) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ConfigError(f"--config.{key}: the config saved in {workdir} has no such key; pass --config=FILE "
                        "to start from a config file instead.")
    node[leaf] = functools.reduce(lambda d, part: d[part], key.split("."), fv["config"].value)
  return cfg


def main(argv: list[str]) -> int:
  fv = parse_flags(argv)
  workdir = workdir_lib.prepare(fv["workdir"].value)
  process_index = int(os.environ.get("JAX_PROCESS_ID", "0"))
  log_file = os.path.join(workdir, LOG_FILE if process_index == 0 else f"{LOG_FILE}.{process_index}")
  with workdir_lib.Lock(workdir, process_index), cli.log_to(log_file):
    return _run(fv, workdir)


def initialize_distributed() -> None:
  """Joins the processes of a multi-host run (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID set, as
  launch/ does); a single-process run has no coordinator and does nothing."""
  import jax
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    jax.distributed.initialize(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                               num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                               process_id=int(os.environ["JAX_PROCESS_ID"]))


def _run(fv: flags.FlagValues, workdir: str) -> int:
  mode = fv["mode"].value
  cfg = effective_config(fv, workdir)
  import jax
  initialize_distributed()
  from interlingua_jax.analysis import report
  from interlingua_jax.run import experiment
  modes = MODES_OF_ALL if mode == "all" else (mode,)
  out = experiment.run(cfg, workdir, modes)
  if "eval" in out:
    views = out["eval"].get("targets", {None: out["eval"]})
    for label, agg in views.items():
      print(("" if label is None else f"\n## target {label}\n") + report.methods_table(agg))
  for label, result in out.get("compression", {}).items():
    print(report.wire_table(result))
  if "report" in modes and jax.process_index() == 0:
    out["report"] = report.write(workdir)
  if mode == "all" and jax.process_index() == 0:
    with open(os.path.join(workdir, "DONE"), "w") as f:
      json.dump(done_record(out), f)
  print(f"\nDone. Outputs in {workdir}" + (f"; report: {out['report']}" if out.get("report") else ""))
  return 0


def done_record(out: dict) -> dict:
  """What `<workdir>/DONE` says of a finished run: the training summary, each view's latent score and the
  scenario, the report's path."""
  views = out["eval"].get("targets", {None: out["eval"]})
  latent = {str(label): agg["methods"].get("latent", {}).get("accuracy") for label, agg in views.items()}
  return {"train": out.get("train"), "latent_accuracy": latent,
          "scenario": {str(label): agg.get("scenario") for label, agg in views.items()}, "report": out.get("report")}


def run(argv: list[str] | None = None) -> int:
  """The command line, callable in-process: returns the exit status instead of exiting."""
  return cli.run(main, sys.argv if argv is None else argv)


if __name__ == "__main__":
  sys.exit(run())
