"""The workdir as a resource: checked usable, held by one run at a time, and the config it was trained with.

The lock is an exclusive `flock` on `<workdir>/lock` (one file per JAX process), released by the
kernel when its process dies however it dies, so a lock left by a killed run is stale by construction
and the next run takes it over (saying whose it was). The file's content, `pid host since`, only
names the holder in the refusal message.
"""
import datetime
import fcntl
import json
import logging
import os
import socket

from interlingua_jax.core.errors import WorkdirError

CONFIG_FILE = "config.json"


def prepare(workdir: str) -> str:
  """Creates `workdir` if needed; one clear error if it is a file or not writable. Returns its absolute path."""
  workdir = os.path.abspath(workdir)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f"--workdir={workdir} is a file, not a directory; pass a directory path.")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f"--workdir={workdir} cannot be created ({e.strerror}); pass a writable path.") from e
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise WorkdirError(f"--workdir={workdir} is not writable; pass a directory you can write to.")
  return workdir


class Lock:
  """Exclusive hold on a workdir for one process: `with Lock(workdir): ...`."""

  def __init__(self, workdir: str, process_index: int = 0):
    name = "lock" if process_index == 0 else f"lock.{process_index}"
    self.path = os.path.join(workdir, name)
    self._fd: int | None = None

  def acquire(self) -> None:
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 512).decode(errors="replace").strip()
      os.close(fd)
      raise WorkdirError(f"{os.path.dirname(self.path)} is in use by another run ({describe(holder)}); "
                         "wait for it to finish, stop it, or pass another --workdir.") from None
    previous = os.read(fd, 512).decode(errors="replace").strip()
    if previous:
      logging.warning("taking over the stale lock of a run that no longer holds it (%s)", describe(previous))
    since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {since}\n".encode(), 0)
    self._fd = fd

  def release(self) -> None:
    if self._fd is not None:
      os.ftruncate(self._fd, 0)  # an empty file: nobody to name as a stale holder
      os.close(self._fd)  # closing drops the flock
      self._fd = None

  def __enter__(self) -> "Lock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


def describe(holder: str) -> str:
  parts = holder.split()
  if len(parts) != 3:
    return f"lock file content {holder!r}"
  pid, host, since = parts
  return f"pid {pid} on {host}, since {since}"


def saved_config(workdir: str) -> dict | None:
  """The config a run recorded in `<workdir>/config.json` (JSON types: tuples come back as lists), or None."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise WorkdirError(f"{path} is not valid JSON ({e}); restore it or pass another --workdir.") from None
