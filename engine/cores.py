"""Sharing a CPU between engines: how many run on this machine, and this one's share of the threads.

Every engine, whatever its workspace or user, holds an exclusive `flock` on its own file in one
machine-wide folder while it runs ($SDTUI_ENGINE_REGISTRY, else `<tmp>/sdtui-engines`). Counting
probes each file's lock: the kernel drops a lock when its process dies, so a killed engine is
never counted, which a pid file or a heartbeat could not promise without a timeout.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; engines count their workspace only
    fcntl = None  # type: ignore[assignment]

_CORES: list[int] = []  # torch's own thread count, read before anything changed it


def registry_dir() -> Path:
    return Path(os.environ.get("SDTUI_ENGINE_REGISTRY") or Path(tempfile.gettempdir()) / "sdtui-engines")


class Registration:
    """This process's place in the registry; `close()` (or the process's death) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)  # closing drops the lock
        self.fd = -1


def register() -> Registration | None:
    """Enter this engine in the machine's registry; None where that cannot be done (no flock, a
    folder another user made unwritable), and the engine then counts its own workspace only."""
    if fcntl is None:
        return None
    folder = registry_dir()
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o1777)  # every user's engines share the cores: sticky, like /tmp
        fd, name = tempfile.mkstemp(prefix=f"{socket.gethostname()}-{os.getpid()}-", suffix=".lock", dir=folder)
        os.fchmod(fd, 0o644)  # other users' engines open it to probe the lock
    except OSError:
        return None
    fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a counter probes this file
    return Registration(Path(name), fd)


def count_engines() -> int:
    """Engines running on this machine now: registry files whose lock is held."""
    if fcntl is None:
        return 0
    live = 0
    try:
        paths = list(registry_dir().glob("*.lock"))
    except OSError:
        return 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:  # gone since the listing: its engine ended
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            live += 1  # held: its engine runs
        else:
            _remove_if_stale(path)
        finally:
            os.close(fd)
    return live


def _remove_if_stale(path: Path) -> None:
    """An unlocked file left by a killed engine. Not one just created: a registering engine locks
    its file microseconds after making it, so one a minute old and unlocked is surely dead."""
    try:
        if time.time() - path.stat().st_mtime > 60:
            path.unlink()
    except OSError:  # gone already, or another user's
        pass


def share_cpu(engines: int) -> int | None:
    """Give this process its share of the CPU's threads when `engines` engines run on the machine:
    torch's default (one per core) divided by them, at least 1. Returns the new count when it
    changed, else None. Why: OpenMP threads wait for each other at every parallel region, and on
    shared cores they are often descheduled; two engines with a thread per core each sampled at
    0.50x one engine's rate in total, with one thread each at 1.19x (bench/threads.py, 2 cores)."""
    import torch

    if not _CORES:
        _CORES.append(torch.get_num_threads())
    want = max(1, _CORES[0] // max(1, engines))
    if torch.get_num_threads() == want:
        return None
    torch.set_num_threads(want)
    return want
