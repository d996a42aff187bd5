"""Run folders: checked before anything is built, created (exclusively, for default names) once the model and
data are known to be good, and locked for the run's life so that two runs never share one."""
from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import datetime
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError, StorageError
from ..files import remove_stale_temporaries
from .state import has_saved_run, remove_orphan_states

LOCK_FILE = ".lock"
DEFAULT_PARENT = Path("runs")


def check_run_dir(cfg: RunConfig) -> Path:
    """The run folder ``cfg`` asks for (a new default name when it names none), after checking that a new run
    does not land on a saved one and that a resumed run has one. Nothing is created."""
    if cfg.output is None:
        if cfg.resume:
            raise ConfigError("--resume needs --output DIR naming the run to continue")
        return DEFAULT_PARENT / f"{cfg.model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(cfg.output)
    if cfg.resume and not has_saved_run(run_dir):
        raise ConfigError(f"{run_dir} holds no run to resume")
    if not cfg.resume and has_saved_run(run_dir):
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --output")
    return run_dir


class RunLock:
    """An exclusive lock on a run folder, held until ``release`` (or the process's death: the kernel drops it)."""

    def __init__(self, run_dir: Path) -> None:
        path = run_dir / LOCK_FILE
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise ConfigError(f"{run_dir} is in use by another run (process {holder}); wait for it to end or "
                              "choose another --output") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
            self.fd = None


def create_run_dir(cfg: RunConfig, run_dir: Path) -> tuple[Path, RunLock]:
    """Create and lock the run folder checked by ``check_run_dir``: a default name gets a numbered suffix when
    another run took it first. What a killed save left behind (temporary files, a state without weights) is
    removed."""
    try:
        if cfg.output is None:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            base, n = run_dir, 1
            while True:
                try:
                    run_dir.mkdir()
                    break
                except FileExistsError:
                    n += 1
                    run_dir = base.with_name(f"{base.name}-{n}")
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir)
    except OSError as e:
        raise StorageError(f"cannot create the run folder {run_dir} ({e.strerror or e})") from None
    remove_stale_temporaries(run_dir)
    remove_orphan_states(run_dir)
    return run_dir, lock
