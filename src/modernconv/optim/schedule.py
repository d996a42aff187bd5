"""Learning-rate schedules stepped once per optimizer step: linear warm-up then cosine decay (ConvNeXt,
UniRepLKNet), ConvMixer's one-cycle (linear up to the peak, linear down to zero), ResNet's step decay (or
mmdetection's, at given epochs), or the dense tasks' poly decay (mmsegmentation's, as the authors' UperNet
configs use it)."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..errors import ConfigError


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Multiplier of each group's base lr: rises linearly to 1 over ``warmup_steps`` (from 1/warmup),
    then follows a half cosine down to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def one_cycle_factor(step: int, total_steps: int, peak_step: int) -> float:
    """Rises linearly to 1 at ``peak_step``, then falls linearly to 0 at ``total_steps``."""
    if step < peak_step:
        return (step + 1) / peak_step
    return max(0.0, (total_steps - step) / max(1, total_steps - peak_step))


def step_decay_factor(step: int, total_steps: int, warmup_steps: int,
                      milestones: Sequence[int] | None = None) -> float:
    """Linear warm-up, then x0.1 at each of ``milestones`` (steps; mmdetection's 3x schedule: epochs 27 and 33 of
    36), by default 1, 0.1 and 0.01 over the three thirds of the rest: the classic ResNet schedule (x0.1 at epochs
    30 and 60 of 90) at any length."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if milestones is not None:
        return 0.1 ** sum(step >= m for m in milestones)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.1 ** min(2, int(3 * progress))


def warmup_poly_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float, power: float = 1.0,
                       warmup_ratio: float = 1e-6) -> float:
    """mmcv's ``poly`` policy with ``linear`` warm-up, as the authors' segmentation configs set it (power 1.0,
    warm-up ratio 1e-6, 1500 iterations): the poly curve ``(1 - step / total) ** power`` from 1 down to
    ``min_ratio`` over the whole run, scaled during the warm-up by a factor rising linearly from
    ``warmup_ratio`` to 1."""
    regular = (1 - min_ratio) * (1 - min(step, total_steps) / max(1, total_steps)) ** power + min_ratio
    if step < warmup_steps:
        return regular * (1 - (1 - step / warmup_steps) * (1 - warmup_ratio))
    return regular


def _warmup_poly(total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> Callable[[int], float]:
    min_ratio = min_lr / lr if lr > 0 else 0.0
    return lambda step: warmup_poly_factor(step, total_steps, warmup_steps, min_ratio)


def _step_decay(total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> Callable[[int], float]:
    return lambda step: step_decay_factor(step, total_steps, warmup_steps)


def _one_cycle(total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> Callable[[int], float]:
    return lambda step: one_cycle_factor(step, total_steps, max(1, warmup_steps))


def _warmup_cosine(total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> Callable[[int], float]:
    min_ratio = min_lr / lr if lr > 0 else 0.0
    return lambda step: warmup_cosine_factor(step, total_steps, warmup_steps, min_ratio)


# schedule name -> (total steps, warm-up steps, lr, min lr) -> lr multiplier per step
SCHEDULES: dict[str, Callable[[int, int, float, float], Callable[[int], float]]] = {
    "cosine": _warmup_cosine, "onecycle": _one_cycle, "step": _step_decay, "poly": _warmup_poly}


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, lr: float,
                    min_lr: float, kind: str = "cosine", milestones: Sequence[int] | None = None
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR (its state saves and resumes with the run): ``warmup_cosine_factor``, for "onecycle"
    ``one_cycle_factor`` peaking after the warm-up steps, for "step" ``step_decay_factor``, for "poly"
    ``warmup_poly_factor``; ``milestones`` (steps) place the step schedule's decays. An unknown ``kind`` is a
    ConfigError."""
    if kind not in SCHEDULES:
        raise ConfigError(f"sched must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if kind == "step" and milestones is not None:
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: step_decay_factor(step, total_steps, warmup_steps, milestones))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, SCHEDULES[kind](total_steps, warmup_steps, lr, min_lr))
