"""Run folders: checked before anything is built, created (exclusively, for default names) once the model and
data are known to be good, and locked for the run's life so that two runs never share one."""
from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from datetime import datetime
from pathlib import Path

from ..config import RunConfig, load_config, resume_changes
from ..errors import ConfigError, StorageError
from ..files import remove_stale_temporaries
from .state import CONFIG_FILE, has_saved_run, remove_orphan_states

LOCK_FILE = ".lock"
DEFAULT_PARENT = Path("runs")


def check_run_dir(cfg: RunConfig) -> tuple[Path, bool]:
    """The run folder ``cfg`` asks for (a new default name when it names none) and whether the run continues the
    one saved there, after checking that a new run does not land on a saved one, that ``resume: true`` finds one,
    and that whatever a resumed or ``auto`` run finds there is this run's (its saved settings). Nothing is
    created."""
    if cfg.output is None:
        if cfg.resume != "false":
            raise ConfigError(f"--resume{' auto' if cfg.resume == 'auto' else ''} needs --output DIR naming the run "
                              "to continue")
        return DEFAULT_PARENT / f"{cfg.model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}", False
    run_dir = Path(cfg.output)
    saved = has_saved_run(run_dir)
    if cfg.resume == "true" and not saved:
        raise ConfigError(f"{run_dir} holds no run to resume (--resume auto starts one when there is none)")
    if cfg.resume == "false" and saved:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --output")
    if cfg.resume != "false":  # a run killed before its first checkpoint left only its config: the same run, or not
        check_saved_config(cfg, run_dir / CONFIG_FILE, saved)
    return run_dir, saved and cfg.resume != "false"


def check_saved_config(cfg: RunConfig, saved_path: Path, resuming: bool) -> None:
    """A resumed run continues with its saved settings: refuse any change but where and how long it runs (a
    longer or shorter run recomputes the lr schedule for the new length, which is said). Before its first
    checkpoint (``resuming`` False) the folder is this run's only when its settings are the same."""
    if not saved_path.is_file():
        return
    saved = load_config(saved_path, kind=type(cfg))
    changed = resume_changes(saved, cfg)
    if changed and resuming:
        raise ConfigError(f"--resume continues {saved_path.parent} with its saved settings, but these differ: "
                          f"{'; '.join(changed)}; start a new run (another --output) to change them")
    if changed:
        raise ConfigError(f"{saved_path.parent} holds another run's files (it saved no checkpoint; its settings "
                          f"differ: {'; '.join(changed)}); choose another --output")
    if resuming and saved.epochs != cfg.epochs:
        warnings.warn(f"epochs changed from {saved.epochs} to {cfg.epochs}: the lr schedule is recomputed for "
                      f"{cfg.epochs} epochs from where the run stopped")


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
