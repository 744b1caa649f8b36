"""One writer per dataset folder: the ``convert`` lock.

``convert`` holds ``<output>/.convert.lock`` while it writes the dataset. The file is created with
``O_CREAT | O_EXCL`` (atomic on local and NFSv3+ file systems) and holds who took it: process id, host,
start time, command line. A second run on the same folder refuses with a message naming the first.

A lock left behind by a run that died without cleaning up (``kill -9``, power loss) is *stale* when it
was taken on this host by a process that no longer exists: it is taken over with a warning. A lock taken
on another host cannot be checked; the message says which file to delete once that run is known to be
gone. The lock is released (deleted) when the ``with`` block ends, normally or by an exception.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import sys
from pathlib import Path
from types import TracebackType

from nnunet_hecktor.errors import HecktorError
from nnunet_hecktor.fileio import new_file_mode

LOCK_NAME = ".convert.lock"
logger = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this host (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return True  # cannot tell: assume alive (refusing is the safe side)
    return True


def describe_holder(info: dict) -> str:
    """``pid 1234 on host gpu01, started 2026-11-30T12:00:00+00:00 (nnunet-hecktor convert ...)``."""
    text = f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {info.get('started', '?')}"
    command = info.get("command")
    return text + (f" ({command})" if command else "")


class OutputLock:
    """Exclusive lock on a dataset folder for one ``convert`` run (a context manager).

    Parameters
    ----------
    folder : path-like
        The dataset folder; created (with its parents) if needed.
    purpose : str
        Recorded in the lock file (the command line by default).

    Attributes
    ----------
    took_over : dict or None
        The holder of a stale lock that was taken over (``None`` when the lock was free).

    Raises
    ------
    HecktorError
        On entry: another live run holds the lock (its pid, host and start time are named), or the
        folder cannot be created or written.
    """

    def __init__(self, folder: str | os.PathLike, purpose: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.purpose = purpose if purpose is not None else " ".join(Path(a).name if i == 0 else a
                                                                    for i, a in enumerate(sys.argv))
        self.took_over: dict | None = None
        self._info: dict | None = None

    def _try_create(self) -> bool:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": self.purpose}
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, new_file_mode())
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
            handle.write("\n")
        self._info = info
        return True

    def _read_holder(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {"gone": True}
        except (OSError, ValueError):
            return {}  # being written right now, or garbage: treated as held

    def acquire(self) -> "OutputLock":
        """Take the lock (see the class docstring); returns ``self``."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HecktorError(f"cannot create the output folder {self.folder}: {exc.strerror}") from None
        for _ in range(3):
            try:
                if self._try_create():
                    return self
            except OSError as exc:
                raise HecktorError(f"cannot write in the output folder {self.folder} ({exc.strerror}); "
                                   "choose another --output or fix its permissions") from None
            holder = self._read_holder()
            if holder.get("gone"):
                continue  # released between our two calls: try again
            same_host = holder.get("host") == socket.gethostname()
            pid = holder.get("pid")
            if same_host and isinstance(pid, int) and not _pid_alive(pid):
                logger.warning("taking over the stale lock %s of a run that no longer exists (%s)",
                               self.path, describe_holder(holder))
                self.took_over = holder
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            where = "" if same_host else (f"; it was taken on another host, so it cannot be checked from here: "
                                          f"delete {self.path} once that run is known to be gone")
            if same_host:
                where = f" (if no convert runs as that pid any more, delete {self.path})"
            raise HecktorError(f"another 'nnunet-hecktor convert' is writing {self.folder}: "
                               f"{describe_holder(holder) if holder else 'lock file ' + str(self.path)}{where}. "
                               "Wait for it to finish, or choose another --output")
        raise HecktorError(f"could not take the lock {self.path} (it keeps changing hands)")

    def release(self) -> None:
        """Delete the lock file if it is still ours."""
        if self._info is None:
            return
        holder = self._read_holder()
        if holder.get("pid") == self._info["pid"] and holder.get("started") == self._info["started"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._info = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
