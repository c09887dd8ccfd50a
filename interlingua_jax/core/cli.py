"""What every command line of the project shows: one `error: …` line for a user error, a quiet console.

    sys.exit(cli.run(main, sys.argv))      # main(argv) -> int | None; `--verbose` is taken out of argv
    sys.exit(cli.run(lambda argv: main(cli.parse_absl(argv)), sys.argv))   # an absl program

- A `UserError` (errors.py), a bad path or an unreadable file (OSError) prints `error: <message>` on
  stderr and exits with status 2; `--verbose` adds the traceback. Any other exception is a bug in this
  code and keeps its traceback.
- Libraries' INFO records (Orbax's checkpoint timings, JAX's backend probing) stay off the console:
  it shows warnings, and this project's own INFO lines; `log_to(file)` keeps everything in a file, and
  `--verbose` shows everything. Known-harmless notices (`HARMLESS`) never reach the console.
"""
import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence

from absl import app, flags

from interlingua_jax.core import errors

EXIT_USER_ERROR = 2
# Errors the user can fix from the message alone. OSError covers a missing path, a file where a
# directory is expected, permissions and a full disk.
USER_ERRORS = (errors.UserError, OSError, app.UsageError)
# Notices printed on every start that say nothing about this run.
HARMLESS = ("Unable to initialize backend", "PyTorch was not found", "None of PyTorch, TensorFlow")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CONSOLE = "interlingua_console"


def one_line(e: BaseException) -> str:
  text = " ".join(str(e).split()) or type(e).__name__
  if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
    text = f"{e.filename}: {text}"
  return text


class _Quiet(logging.Filter):
  """Console filter: warnings and up, plus INFO from this package's own modules."""

  def __init__(self, verbose: bool):
    super().__init__()
    self.verbose = verbose

  def filter(self, record: logging.LogRecord) -> bool:
    if any(h in record.getMessage() for h in HARMLESS):
      return False
    return self.verbose or record.levelno >= logging.WARNING or record.pathname.startswith(_PACKAGE_DIR)


def setup_logging(verbose: bool) -> logging.Handler:
  """Root logger at INFO, one console handler on stderr that shows what `_Quiet` lets through."""
  # transformers prints "PyTorch was not found" through its own handler, not the root logger.
  os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
  root = logging.getLogger()
  root.setLevel(logging.INFO)
  for handler in list(root.handlers):
    if handler.get_name() == _CONSOLE or type(handler).__name__ == "ABSLHandler":
      root.removeHandler(handler)
  console = logging.StreamHandler(sys.stderr)
  console.set_name(_CONSOLE)
  console.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(message)s", "%H:%M:%S"))
  console.addFilter(_Quiet(verbose))
  root.addHandler(console)
  import absl.logging  # Orbax logs through absl: route it to the root logger's handlers only.
  absl.logging.use_python_logging(quiet=True)
  absl.logging.set_verbosity(absl.logging.INFO)
  return console


@contextlib.contextmanager
def log_to(path: str) -> Iterator[None]:
  """Keeps every record (libraries' INFO included) in `path` while the block runs."""
  handler = logging.FileHandler(path)
  handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  root = logging.getLogger()
  root.addHandler(handler)
  try:
    yield
  finally:
    root.removeHandler(handler)
    handler.close()


def parse_absl(argv: list[str], flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
  """absl's flag parsing for `run`: an unknown or malformed flag is a ConfigError, not a traceback."""
  try:
    return flag_values(argv)
  except flags.Error as e:
    raise errors.ConfigError(f"bad command line: {e}") from e


def parse_options(argv: Sequence[str], doc: str, **defaults: int | float | str) -> argparse.Namespace:
  """A script's `--name value` options from their defaults, each typed like its default (argv[0] skipped)."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  for name, default in defaults.items():
    parser.add_argument(f"--{name}", type=type(default), default=default)
  return parser.parse_args(list(argv[1:]))


def run(main: Callable[[list[str]], int | None], argv: Sequence[str]) -> int:
  """Runs `main(argv without --verbose)` and turns a user error into one line and exit status 2."""
  verbose = "--verbose" in argv
  argv = [a for a in argv if a not in ("--verbose", "--noverbose")]
  console = setup_logging(verbose)
  try:
    return int(main(argv) or 0)
  except USER_ERRORS as e:
    if verbose:
      traceback.print_exc()
    print(f"error: {one_line(e)}", file=sys.stderr)
    return EXIT_USER_ERROR
  except KeyboardInterrupt:
    print("error: interrupted", file=sys.stderr)
    return 130
  finally:
    logging.getLogger().removeHandler(console)
