"""Saving and restoring everything a run needs to continue exactly where it stopped."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import read_checkpoint, save_checkpoint
from ..errors import CheckpointError
from ..files import atomic_write

STATE_FILE = "state.pt"
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"


@dataclass
class Progress:
    """Where the run is: ``batches_done`` batches of epoch ``epoch`` are behind it."""

    epoch: int = 0
    batches_done: int = 0
    global_step: int = 0  # optimizer steps
    best_top1: float = -1.0
    best_epoch: int = -1
    extra: dict[str, Any] = field(default_factory=dict)


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
                   ema: nn.Module | None, progress: Progress, metadata: dict[str, Any],
                   rng_states: list[dict[str, Any]]) -> None:
    """Write state.pt (optimizer, scheduler, EMA, every process's RNG ``rng_states`` in rank order, progress)
    then last.safetensors, each atomically; both carry the step so a resume can tell they belong together."""
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "ema": ema.state_dict() if ema is not None else None, "rng": rng_states,
             "progress": asdict(progress)}
    atomic_write(run_dir / STATE_FILE, lambda tmp: torch.save(state, tmp))
    save_checkpoint(model, run_dir / LAST_FILE, metadata={**metadata, "global_step": progress.global_step})


def load_run_state(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                   ema: nn.Module | None) -> tuple[Progress, list[dict[str, Any]]]:
    """Restore a run saved by ``save_run_state``: returns its progress and the RNG states it saved, one per
    process in rank order (for the caller to restore its own)."""
    state_path, last_path = run_dir / STATE_FILE, run_dir / LAST_FILE
    if not state_path.is_file() or not last_path.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from ({STATE_FILE} and {LAST_FILE})")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file: say which and stop
        raise CheckpointError(f"{state_path}: unreadable training state ({str(e).splitlines()[0]})") from None
    weights, meta = read_checkpoint(last_path)
    progress = Progress(**state["progress"])
    if int(meta.get("global_step", -1)) != progress.global_step:
        raise CheckpointError(f"{run_dir}: {LAST_FILE} (step {meta.get('global_step')}) and {STATE_FILE} "
                              f"(step {progress.global_step}) do not belong together")
    model.load_state_dict(weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"])
    rngs = state["rng"]
    return progress, rngs if isinstance(rngs, list) else [rngs]  # one dict: a state.pt from before per-rank RNG
