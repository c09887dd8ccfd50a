"""The project's user-facing errors: the ones a command line reports in one line, not a traceback.

A `UserError` says what is wrong with an input the user controls (a config key, a file, a
workdir) and how to fix it. Anything else escaping a CLI is a bug in this code and keeps its
traceback (see `interlingua_jax.core.cli`).
"""
import contextlib
from collections.abc import Iterator


class UserError(Exception):
  """Base of every error whose message alone tells the user what to change."""


class ConfigError(UserError, ValueError):
  """A config value out of range, of the wrong type, or inconsistent with another; names the key."""


class InputError(UserError, ValueError):
  """A data file, tokenizer or weight file that cannot be used as it is; names the file."""


class WorkdirError(UserError):
  """The workdir cannot be used: held by another process, not a directory, not writable, or of another run."""


class TrainingDiverged(UserError, FloatingPointError):
  """Non-finite training metrics or parameters; nothing non-finite was saved."""


@contextlib.contextmanager
def as_input_error(*kinds: type[Exception]) -> Iterator[None]:
  """Re-raises `kinds` (e.g. the data loader's ValueError, whose message names file, row and field) as
  InputError, so a CLI reports them in one line while the same exception inside the code stays a bug."""
  try:
    yield
  except UserError:
    raise
  except kinds as e:
    raise InputError(str(e)) from e
