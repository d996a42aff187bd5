"""The task interface: what one kind of run (classification, forecasting, FCMAE pre-training, ...) tells the
training loop. The tasks themselves live in ``modernconv.tasks``, one file each; the loop imports none of them.

The loop (``Trainer``) owns everything runs share: the device and processes, the run folder, seeding, the
data loaders and their exact resume, the optimizer, schedule and EMA, mixed precision, gradient accumulation
and clipping, the NaN stop, evaluating the model and its EMA, keeping the best weights, checkpoints and logs.
A task supplies, in the order the loop calls them:

- ``build_data(ctx)`` -> ``TaskData``: its data sets and what they determine (classes, preprocessing, the
  modality's options completed by the data, skipped files);
- ``build_model(data)``: the network to optimise, built from that data (on the CPU; the loop places it);
- ``collate_fn()``, ``to_device(batch, ctx)`` and ``batch_size(batch)``: what a batch is (a tensor pair by default;
  lists of images and target dicts for detection);
- ``loss(net, batch)``: the loss of one batch, where ``net`` is the model as the loop runs it (DDP- or
  compile-wrapped); a model that returns a dict of losses is summed by its task;
- ``evaluate(ctx, model)``: held-out metrics as a dict; ``metric`` names the one that decides "best" and
  ``higher_is_better`` its direction (top-1 up, MSE down; None: the task keeps no best weights);
- ``end_epoch(ctx, model, row)``: artefacts of its own after each epoch (FCMAE's encoder and previews).

Plus the small facts the loop needs: ``metadata(data)`` for the checkpoints, ``summary(row)`` for the epoch
line, ``result_line(...)``, ``ema_decay``, and ``layer_decay`` or ``lr_scales(model)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import RunConfig
from ..data import DataConfig
from ..runtime import to_device
from .distributed import DistInfo


@dataclass(frozen=True)
class RunContext:
    """Where and how the run executes: what a task may use besides its own options."""

    device: torch.device
    dist: DistInfo
    run_dir: Path
    precision: str
    memory_format: torch.memory_format
    preprocessing: DataConfig  # the model's, at the run's image size


@dataclass
class TaskData:
    """What ``build_data`` hands to ``build_model`` and the loop: the data sets and what they determine."""

    train: Dataset
    val: Dataset | None
    class_names: list[str]
    preprocessing: DataConfig
    modality_options: Any = None  # the modality's typed options, completed by the data (None for images)
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (with skip_bad_images)


def model_options(cfg: RunConfig) -> dict[str, Any]:
    """The ``create_model`` options every task's model takes from the shared config."""
    kwargs = dict(cfg.model_kwargs, in_chans=cfg.in_chans)
    if cfg.drop_path_rate:
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if cfg.layer_scale_init_value is not None:
        kwargs["layer_scale_init_value"] = cfg.layer_scale_init_value
    return kwargs


class Task:
    """Base of every task; subclasses implement ``build_data``, ``build_model`` and ``loss`` at least."""

    name: ClassVar[str]  # the config's ``task`` value and the checkpoints' record
    metric: ClassVar[str | None] = None  # the key of ``evaluate``'s result that decides the best weights
    higher_is_better: ClassVar[bool] = True
    ema_decay: float | None = None  # EMA of the model's weights (None = none)
    layer_decay: float | None = None  # layer-wise lr decay over the model's group_matcher (None = none)

    def model_options(self) -> dict[str, Any]:
        """The ``create_model`` options of this task's model (also used to read its preprocessing)."""
        raise NotImplementedError

    def lr_scales(self, model: nn.Module) -> dict[str, float] | None:
        """Every parameter's lr scale by the task's own rule (the dense tasks' decay), or None: ``layer_decay``
        over the model's group_matcher, or none."""
        return None

    def build_data(self, ctx: RunContext) -> TaskData:
        raise NotImplementedError

    def build_model(self, data: TaskData) -> nn.Module:
        raise NotImplementedError

    def collate_fn(self) -> Callable | None:
        """The loaders' collate_fn, a module-level function (picklable for loader workers); None stacks
        tensors."""
        return None

    def to_device(self, batch: Any, ctx: RunContext) -> Any:
        """A batch on the run's device: (inputs, targets) tensors by default, image batches in the run's memory
        format."""
        inputs, targets = batch
        return to_device(inputs, ctx.device, ctx.memory_format), targets.to(ctx.device, non_blocking=True)

    def batch_size(self, batch: Any) -> int:
        """How many samples ``batch`` holds (for averages and images/s)."""
        return len(batch[0])

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def train_metrics(self, ctx: RunContext) -> dict[str, float]:
        """Metrics the task gathered over the epoch's training batches, summed over the processes, then reset
        (after a mid-epoch resume: over the batches since); none by default."""
        return {}

    def evaluate(self, ctx: RunContext, model: nn.Module) -> dict[str, float]:
        """Held-out metrics of ``model`` (summed over the processes of a distributed run); none by default."""
        return {}

    def end_epoch(self, ctx: RunContext, model: nn.Module, row: dict) -> None:
        """Artefacts of the task's own after each epoch (none by default)."""

    def metadata(self, data: TaskData) -> dict[str, Any]:
        """What the run's checkpoints record besides the model (the task, class names, preprocessing...)."""
        return {"task": self.name}

    def summary(self, row: dict) -> str:
        """The task's part of the one line printed after each epoch."""
        return ""

    def result_line(self, best_score: float | None, best_epoch: int, last: dict, run_dir: Path) -> str:
        """How the finished run did, in one line."""
        if self.metric is None or best_score is None:
            return f"final loss {last.get('train_loss', float('nan')):.4f}"
        return f"best val {self.metric} {best_score:.4g} at epoch {best_epoch}"
