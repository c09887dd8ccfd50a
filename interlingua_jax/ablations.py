r"""Runs a suite of experiments, each as `interlingua_jax.main --mode=all` in its own workdir.

  python -m interlingua_jax.ablations --suite=configs/suites/paper.py --root=/runs
  python -m interlingua_jax.ablations --suite=configs/suites/toy.py --root=/runs --only=toy_stable_8
  python -m interlingua_jax.ablations --suite=configs/suites/paper.py --resume=/runs/20250101_120000

Every run is a subprocess, so one crash cannot take the others down; its output goes to
the console and to `<root>/<name>/run.log`. A run whose `DONE` exists is skipped, so a
suite that was interrupted is finished by running it again with `--resume`.

A suite file's `get_config()` returns `experiments`, a list of
`dict(name=..., config="configs/x.py", overrides={"dotted.key": value}, seeds=(...))` (`seeds`
optional: one run per training seed, named `<name>_s<seed>` with `seed` overridden; the analysis
reports them per seed and as mean ± sd), and optionally suite-wide `overrides` (a ConfigDict
built with `allow_dotted_keys=True`). Override values
may contain `{root}`, replaced by the suite root (e.g. to share pretrained toy models).
Config paths are relative to the working directory: run from the repository root.
"""
import codecs
import dataclasses
import datetime
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence, TextIO

from absl import app
from absl import flags
import ml_collections
from ml_collections import config_flags

from interlingua_jax.core import cli, outputs

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Defined only when run as a program: tests import this beside modules that also have --root."""
  config_flags.DEFINE_config_file("suite", None,
                                  "Suite file whose get_config() lists the experiments.")
  flags.DEFINE_string("root", None,
                      "Parent directory; the suite runs in a new <root>/<YYYYmmdd_HHMMSS>/.")
  flags.DEFINE_string("resume", None,
                      "An existing suite root to continue in (runs with DONE are skipped).")
  flags.DEFINE_list("only", None, "Run only these experiments (comma-separated names).")
  flags.DEFINE_bool("dry_run", False, "Print the commands without running anything.")


# `{config}` and `{workdir}` are filled in per run; overrides follow as `--config.k=v`.
MAIN_COMMAND = (sys.executable, "-m", "interlingua_jax.main", "--config={config}",
                "--workdir={workdir}", "--mode=all")
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"


@dataclasses.dataclass(frozen=True)
class Experiment:
  name: str
  config: Path
  overrides: dict[str, Any]
  group: str = ""  # the suite entry this run belongs to: its name without the seed suffix
  seed: int | None = None  # the training seed of a `seeds=` entry


@dataclasses.dataclass(frozen=True)
class RunResult:
  name: str
  status: str  # "done" | "skipped" (DONE existed) | "failed" | "dry_run"
  returncode: int | None
  seconds: float
  log: Path




def parse_suite(suite: ml_collections.ConfigDict) -> list[Experiment]:
  """Validates a suite and merges suite-wide overrides under each experiment's own."""
  if "experiments" not in suite or not suite.experiments:
    raise ValueError("the suite has no `experiments`: get_config() must set c.experiments to a "
                     "list of dict(name=..., config='configs/x.py', overrides={...})")
  common = outputs.flatten(suite.get("overrides") or {})
  experiments, seen = [], set()
  for i, entry in enumerate(suite.experiments):
    if not isinstance(entry, Mapping) or "name" not in entry or "config" not in entry:
      raise ValueError(f"suite experiment #{i} is {entry!r}: each needs at least `name` and "
                       "`config` keys")
    name = str(entry["name"])
    if not name or "/" in name or name.startswith(".") or name == "analysis":
      raise ValueError(f"suite experiment name {name!r} is not usable as a directory name")
    if name in seen:
      raise ValueError(f"suite experiment name {name!r} appears twice; names must be unique")
    seen.add(name)
    unknown = set(entry) - {"name", "config", "overrides", "seeds"}
    if unknown:
      raise ValueError(f"suite experiment {name!r} has unknown keys {sorted(unknown)}; allowed: "
                       "name, config, overrides, seeds")
    config = Path(entry["config"]).absolute()
    if not config.is_file():
      raise ValueError(f"suite experiment {name!r}: config file {entry['config']!r} not found "
                       f"(looked in {config}); config paths are relative to the working "
                       "directory, so run from the repository root")
    overrides = {**common, **outputs.flatten(entry.get("overrides") or {})}
    seeds = entry.get("seeds")
    if seeds is None:
      experiments.append(Experiment(name=name, config=config, overrides=overrides, group=name))
      continue
    if "seed" in overrides or not seeds or len(set(seeds)) != len(seeds) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in seeds):
      raise ValueError(f"suite experiment {name!r}: seeds={seeds!r} must be distinct integers, and `seed` "
                       "must then not be in its overrides")
    experiments += [Experiment(name=f"{name}_s{x}", config=config, overrides={**overrides, "seed": x},
                               group=name, seed=x) for x in seeds]
  names = [e.name for e in experiments]
  clash = sorted({n for n in names if names.count(n) > 1})
  if clash:
    raise ValueError(f"suite experiment names {clash} appear twice (a `<name>_s<seed>` of a seeds= entry "
                     "equals another entry's name); rename one")
  return experiments


def select(experiments: list[Experiment], only: Sequence[str] | None) -> list[Experiment]:
  """The runs named in `only`; an entry's name selects all its seeds."""
  if not only:
    return experiments
  names = [e.name for e in experiments]
  unknown = [n for n in only if n not in names and not any(e.group == n for e in experiments)]
  if unknown:
    raise ValueError(f"--only names {unknown} are not in the suite; its experiments are {names}")
  return [e for e in experiments if e.name in only or e.group in only]


def _format_value(value: Any, root: Path) -> str:
  if isinstance(value, str):
    return value.replace("{root}", str(root))
  return str(value)  # bools as True/False, tuples as (1, 2): what config_flags parses


def build_command(exp: Experiment, root: Path,
                  template: Sequence[str] = MAIN_COMMAND) -> list[str]:
  workdir = root / exp.name
  cmd = [part.format(config=exp.config, workdir=workdir) for part in template]
  cmd += [f"--config.{k}={_format_value(v, root)}" for k, v in exp.overrides.items()]
  return cmd


def log_path(workdir: Path) -> Path:
  """Every process of a multi-host run tees to its own file on the shared filesystem."""
  process_id = os.environ.get("JAX_PROCESS_ID", "0")
  return workdir / ("run.log" if process_id == "0" else f"run.{process_id}.log")


def run_logged(cmd: Sequence[str], log: Path, out: TextIO) -> int:
  """Runs `cmd`, copying its merged stdout/stderr to `out` and appending it to `log`."""
  log.parent.mkdir(parents=True, exist_ok=True)
  env = {**os.environ, "PYTHONUNBUFFERED": "1"}
  decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
  with open(log, "ab") as f:
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    f.write(f"=== {stamp} $ {' '.join(cmd)}\n".encode())
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
      f.write(chunk)
      f.flush()
      out.write(decoder.decode(chunk))
      out.flush()
    out.write(decoder.decode(b"", final=True))
    returncode = proc.wait()
    f.write(f"=== exit status {returncode}\n".encode())
  return returncode


def run_suite(experiments: Sequence[Experiment], root: Path, *,
              command: Sequence[str] = MAIN_COMMAND, dry_run: bool = False,
              out: TextIO = sys.stdout) -> list[RunResult]:
  """Runs each experiment in `root/<name>`; never stops at a failure."""
  results = []
  for i, exp in enumerate(experiments):
    workdir = root / exp.name
    log = log_path(workdir)
    cmd = build_command(exp, root, command)
    out.write(f"\n[{i + 1}/{len(experiments)}] {exp.name}\n")
    if outputs.is_done(workdir):
      out.write(f"  skipped: {workdir / outputs.DONE} exists\n")
      results.append(RunResult(exp.name, "skipped", None, 0.0, log))
      continue
    out.write(f"  $ {' '.join(cmd)}\n")
    if dry_run:
      results.append(RunResult(exp.name, "dry_run", None, 0.0, log))
      continue
    start = time.monotonic()
    returncode = run_logged(cmd, log, out)
    status = "done" if returncode == 0 else "failed"
    results.append(RunResult(exp.name, status, returncode, time.monotonic() - start, log))
  return results


def report(results: Sequence[RunResult], root: Path, out: TextIO = sys.stdout) -> int:
  """Prints the end-of-suite summary; the exit status is 1 when any run failed."""
  statuses = ("done", "skipped", "failed", "dry_run")
  counts = {s: sum(r.status == s for r in results) for s in statuses}
  out.write(f"\nSuite {root}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + "\n")
  for r in results:
    line = f"  {r.status:8s} {r.name}"
    if r.status == "done":
      line += f" ({r.seconds:.0f} s)"
    if r.status == "failed":
      line += f" (exit status {r.returncode}); log: {r.log}"
    out.write(line + "\n")
  return 1 if counts["failed"] else 0


def suite_root(root: str | None, resume: str | None) -> Path:
  """The timestamped directory this invocation runs in (not created here)."""
  if bool(root) == bool(resume):
    raise ValueError("give exactly one of --root=DIR (start a new timestamped suite root under "
                     "DIR) or --resume=PATH (continue in an existing suite root)")
  if resume:
    path = Path(resume).absolute()
    if not path.is_dir():
      raise ValueError(f"--resume={resume}: no such directory; pass an existing suite root such "
                       "as DIR/20250101_120000")
    return path
  return Path(root).absolute() / datetime.datetime.now().strftime(TIMESTAMP_FORMAT)


def write_suite_record(root: Path, suite: ml_collections.ConfigDict,
                       experiments: Sequence[Experiment]) -> None:
  """Saves what was asked for, so the analysis knows every intended run (even unstarted)."""
  record = {"suite": suite.to_dict(), "argv": sys.argv,
            "experiments": [{"name": e.name, "group": e.group, "seed": e.seed, "config": str(e.config),
                             "overrides": e.overrides} for e in experiments]}
  (root / "suite.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.suite is None:
    sys.exit("ablations: --suite=FILE is required, e.g. --suite=configs/suites/paper.py")
  try:
    experiments = parse_suite(FLAGS.suite)
    chosen = select(experiments, FLAGS.only)
    root = suite_root(FLAGS.root, FLAGS.resume)
  except ValueError as e:
    sys.exit(f"ablations: {e}")
  print(f"Suite root: {root}" + (" (dry run: nothing is created)" if FLAGS.dry_run else ""))
  if not FLAGS.dry_run:
    try:
      root.mkdir(parents=True, exist_ok=bool(FLAGS.resume))
    except FileExistsError:
      sys.exit(f"ablations: {root} already exists; wait a second and retry, or continue it with "
               f"--resume={root}")
    if os.environ.get("JAX_PROCESS_ID", "0") == "0":
      write_suite_record(root, FLAGS.suite, experiments)
  results = run_suite(chosen, root, dry_run=FLAGS.dry_run)
  return report(results, root)


if __name__ == "__main__":
  _define_flags()
  sys.exit(cli.run(lambda argv: main(cli.parse_absl(argv)), sys.argv))
