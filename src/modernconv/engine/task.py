"""The task interface: what one kind of run (classification, FCMAE pre-training, ...) tells the training loop.

The loop (``Trainer``) owns everything runs share: the device and processes, the run folder, seeding, the
data loaders and their exact resume, the optimizer, schedule and EMA, mixed precision, gradient accumulation
and clipping, the NaN stop, checkpoints and logs. A task supplies four things:

- ``build_data(ctx)``: its data sets (the loop trains on ``train``; ``val`` is the task's own business);
- ``build_model()``: the network to optimise (on the CPU; the loop places it);
- ``loss(net, images, labels)``: the loss of one batch, where ``net`` is the model as the loop runs it
  (DDP- or compile-wrapped);
- ``end_epoch(ctx, model, ema, epoch, row, progress)``: what happens after each epoch (evaluate, keep the best
  weights, write artefacts), adding its metrics to ``row``.

Plus the small facts the loop needs: ``metadata()`` for the checkpoints, ``summary(row)`` for the epoch line,
``ema_decay`` and ``layer_decay``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from ..data import DataConfig, DataSplit
from .distributed import DistInfo
from .state import Progress


@dataclass(frozen=True)
class RunContext:
    """Where and how the run executes: what a task may use besides its own options."""

    device: torch.device
    dist: DistInfo
    run_dir: Path
    precision: str
    memory_format: torch.memory_format
    preprocessing: DataConfig  # the model's, at the run's image size


def model_options(cfg: RunConfig) -> dict[str, Any]:
    """The ``create_model`` options every task's model takes from the shared config."""
    kwargs = dict(cfg.model_kwargs, in_chans=cfg.in_chans)
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if cfg.layer_scale_init_value is not None:
        kwargs["layer_scale_init_value"] = cfg.layer_scale_init_value
    return kwargs


class Task:
    """Base of every task; subclasses implement the four methods and may set the two decays."""

    ema_decay: float | None = None  # EMA of the model's weights (None = none)
    layer_decay: float | None = None  # layer-wise lr decay over the model's group_matcher (None = none)

    def model_options(self) -> dict[str, Any]:
        """The ``create_model`` options of this task's model (also used to read its preprocessing)."""
        raise NotImplementedError

    def build_data(self, ctx: RunContext) -> DataSplit:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def end_epoch(self, ctx: RunContext, model: nn.Module, ema: nn.Module | None, epoch: int, row: dict,
                  progress: Progress) -> None:
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """What the run's checkpoints record besides the model (class names, preprocessing, task options)."""
        return {}

    def summary(self, row: dict) -> str:
        """The task's part of the one line printed after each epoch."""
        return ""

    def result_line(self, progress: Progress) -> str:
        """How the finished run did, in one line."""
        return f"best val top-1 {progress.best_top1:.2f}% at epoch {progress.best_epoch}"
