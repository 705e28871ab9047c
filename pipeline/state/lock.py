"""One run at a time: an advisory lock on the folder of the state database.

The lock is an ``fcntl.flock`` on the *folder* that holds the state file (and, for runs of
earlier versions, on ``<state file>.lock`` too). Deleting the lock file cannot release it: a
lock on the file alone let a second run lock a new file while the first still held the
deleted one; the folder cannot be removed while the state file is in it. The kernel drops
the lock when the holding process exits for any reason (``kill -9`` included), so a crashed
run never leaves a stale lock behind. ``<state file>.lock`` only tells the operator who holds
it (pid, host, start time, command).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pipeline.core.errors import ConfigError, LockHeldError

log = logging.getLogger(__name__)


def lock_path_for(state_path: Path) -> Path:
    """The lock file that guards ``state_path`` and the outputs written with it."""
    return state_path.with_name(state_path.name + ".lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "an unknown process"
    return (
        f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('started', '?')} "
        f"({info.get('command', '?')})"
    )


@contextlib.contextmanager
def run_lock(path: Path, *, wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the exclusive run lock ``path`` for the duration of the ``with`` block.

    Parameters
    ----------
    path
        Lock file; created (with its folder) when missing. Its folder is what is locked, so
        deleting the file does not let a second run in. One lock per folder: state files
        kept in the same folder share it.
    wait_s
        Seconds to keep retrying while another process holds the lock (0 = fail at once).

    Raises
    ------
    LockHeldError
        Another process holds the lock (exit code 3); the message names that process.
    ConfigError
        The lock file cannot be created (folder not writable).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ConfigError(
            f"Cannot open the folder of the run lock {path}: {exc}. Make it readable or set "
            "state_db (ASM_STATE_DB) to a writable location."
        ) from exc
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        os.close(folder)
        raise ConfigError(
            f"Cannot create the run lock {path}: {exc}. Make its folder writable or set state_db "
            "(ASM_STATE_DB) to a writable location."
        ) from exc
    deadline = time.monotonic() + max(wait_s, 0.0)
    try:
        while True:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                try:  # a run of an earlier version locks only the file
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fcntl.flock(folder, fcntl.LOCK_UN)
                    raise
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeldError(
                        f"Another asm-monitor run holds the lock {path}: {_holder(path)}. "
                        "Wait for it to finish (or pass --lock-wait SECONDS). The lock is released "
                        "automatically when that process exits, even if it crashed."
                    ) from None
                time.sleep(0.5)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv[:6]),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        log.debug("run lock %s taken", path)
        yield path
    finally:
        # closing the descriptors releases the flocks (also what the kernel does on kill -9)
        os.close(fd)
        os.close(folder)
