"""Saving and restoring everything a run needs to continue exactly where it stopped."""
from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import read_checkpoint, save_checkpoint
from ..errors import CheckpointError
from ..files import TEMP_SUFFIX, atomic_write, sync_folder

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"  # what the run is: model, data sizes, device, steps (written at its start)
STATE_FILE = "state.pt"
PREVIOUS_STATE_FILE = "state.prev.pt"  # the state before the last save began (see save_run_state)
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"


@dataclass
class Progress:
    """Where the run is: ``batches_done`` batches of epoch ``epoch`` are behind it, and the best value of its task's
    ``metric`` so far."""

    epoch: int = 0
    batches_done: int = 0
    global_step: int = 0  # optimizer steps
    metric: str | None = None  # the task's metric that decides the best weights (None: the task keeps none)
    best_score: float | None = None  # its best held-out value (None: none yet)
    best_epoch: int = 0  # numbered from 1 like every epoch a user sees (0 = none yet)

    @classmethod
    def from_saved(cls, saved: dict[str, Any], higher_is_better: bool = True) -> "Progress":
        """The progress a state.pt recorded. One written before tasks declared their metric holds ``best_top1``
        (minus the held-out MSE for forecasting, -1 before any evaluation) and an unused ``extra``: read here,
        the one place that knows."""
        saved = {k: v for k, v in saved.items() if k != "extra"}
        if "best_top1" in saved:
            old = saved.pop("best_top1")
            saved["best_score"] = None if not saved.get("best_epoch") else old if higher_is_better else -old
        return cls(**saved)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_run_state(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   scaler: torch.amp.GradScaler, ema: nn.Module | None, progress: Progress, metadata: dict[str, Any],
                   rng_states: list[dict[str, Any]]) -> None:
    """Write the run's checkpoint set: state.pt (optimizer, scheduler, fp16 gradient scaler, EMA, every process's
    RNG ``rng_states``
    in rank order, progress) and last.safetensors, both carrying the step, so that a kill at any moment leaves
    a consistent pair to resume from.

    Both files are first written in full (and synced) under pending names; then the commit renames them:
    state.pt -> state.prev.pt, pending state -> state.pt, pending weights -> last.safetensors. Whichever rename a
    kill lands between, state.pt or state.prev.pt carries the step of last.safetensors (``load_run_state``
    takes whichever does). A failed write (a full disk) leaves the previous set untouched."""
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
             "ema": ema.state_dict() if ema is not None else None, "rng": rng_states,
             "progress": asdict(progress)}
    pending_state, pending_last = run_dir / _pending(STATE_FILE), run_dir / _pending(LAST_FILE)
    atomic_write(pending_state, lambda tmp: torch.save(state, tmp))
    save_checkpoint(model, pending_last, metadata={**metadata, "global_step": progress.global_step})
    if (run_dir / STATE_FILE).exists():
        os.replace(run_dir / STATE_FILE, run_dir / PREVIOUS_STATE_FILE)
    os.replace(pending_state, run_dir / STATE_FILE)
    os.replace(pending_last, run_dir / LAST_FILE)
    sync_folder(run_dir)


def _pending(name: str) -> str:
    """A hidden name ``remove_stale_temporaries`` clears when a killed save left it behind."""
    return f".{name}.pending{TEMP_SUFFIX}"


def has_saved_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint set: last.safetensors is renamed last in every save, so without it
    (a kill during the first save) nothing is resumable and the folder is free for a new run."""
    return (run_dir / LAST_FILE).exists()


def remove_orphan_states(run_dir: Path) -> None:
    """Delete training states that no last.safetensors belongs to (left by a first save that was killed)."""
    if not has_saved_run(run_dir):
        for name in (STATE_FILE, PREVIOUS_STATE_FILE):
            (run_dir / name).unlink(missing_ok=True)


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (corrupt or foreign: the caller tries the other state or says so)
        return None


def _matching_state(run_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The training state that belongs to last.safetensors (state.pt, or state.prev.pt when a kill landed in the
    middle of a save) and those weights."""
    last_path = run_dir / LAST_FILE
    if not last_path.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from ({LAST_FILE} is missing)")
    weights, meta = read_checkpoint(last_path)
    step = meta.get("global_step")
    found = []
    for name in (STATE_FILE, PREVIOUS_STATE_FILE):
        state = _read_state(run_dir / name)
        if state is not None and str(state["progress"]["global_step"]) == step:
            return state, weights
        found.append(f"{name}: {'step ' + str(state['progress']['global_step']) if state else 'missing or unreadable'}")
    raise CheckpointError(f"{run_dir}: no training state belongs to {LAST_FILE} (step {step}; "
                          f"{', '.join(found)}); start the run again in a new folder")


def saved_progress(run_dir: Path) -> Progress | None:
    """How far the run saved in ``run_dir`` has come (None when the folder holds no run)."""
    if not has_saved_run(run_dir):
        return None
    return Progress.from_saved(_matching_state(run_dir)[0]["progress"])


def load_run_state(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   scaler: torch.amp.GradScaler, ema: nn.Module | None, higher_is_better: bool = True
                   ) -> tuple[Progress, list[dict[str, Any]]]:
    """Restore a run saved by ``save_run_state`` (see ``_matching_state``): returns its progress (its best score
    read in the direction ``higher_is_better`` of the run's metric) and the RNG states it saved, one per process
    in rank order (for the caller to restore its own)."""
    state, weights = _matching_state(run_dir)
    last_path = run_dir / LAST_FILE
    progress = Progress.from_saved(state["progress"], higher_is_better)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        mismatch = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise CheckpointError(f"{last_path} does not fit this run's model ({mismatch}); did the model or the data's "
                              "classes change? Start a new run instead") from None
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):  # absent from runs saved before fp16 training, empty when the scaler is off
        scaler.load_state_dict(state["scaler"])
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"])
    rngs = state["rng"]
    return progress, rngs if isinstance(rngs, list) else [rngs]  # one dict: a state.pt from before per-rank RNG
