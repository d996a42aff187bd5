"""Interleaved timing of several step functions in one process, so machine noise hits all of them alike."""
from __future__ import annotations

import statistics
from typing import Callable

import torch

from modernconv.analysis.benchmark import time_steps


def interleaved(steps: dict[str, Callable[[], None]], rounds: int, per_round: int, warmup: int = 2,
                device: torch.device = torch.device("cpu")) -> dict[str, list[float]]:
    """Median step seconds of each function for every round; the functions take turns within a round (in
    alternating order). Timing synchronises ``device`` when it is a GPU."""
    for step in steps.values():
        time_steps(step, device, warmup)
    out: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(rounds):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            out[name].append(statistics.median(time_steps(steps[name], device, per_round)))
    return out


def ratio_row(label: str, batch: int, ours: list[float], ref: list[float]) -> str:
    """A markdown table row: median images/s of both and the median of per-round ratios ours/ref."""
    ratios = [r / o for o, r in zip(ours, ref)]
    return (f"| {label} | {batch / statistics.median(ours):.1f} | {batch / statistics.median(ref):.1f} | "
            f"{statistics.median(ratios):.3f} | {min(ratios):.3f}-{max(ratios):.3f} |")
