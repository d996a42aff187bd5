"""Throughput and peak memory of inference or training steps."""
from __future__ import annotations

import contextlib
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..optim import build_optimizer
from ..runtime import autocast, resolve_device


@dataclass
class BenchResult:
    """Median throughput of timed steps after warm-up, and the peak memory seen while timing."""

    model: str
    mode: str
    device: str
    dtype: str
    batch_size: int
    input_size: tuple[int, int, int]
    channels_last: bool
    images_per_s: float
    median_step_ms: float
    peak_memory_mb: float
    memory_kind: str  # "cuda allocated" or "process RSS"
    steps: int

    def to_dict(self) -> dict:
        return asdict(self)


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring the peak afresh: CUDA's allocator statistics, or the process's peak RSS (Linux)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets the process's peak RSS (Linux)


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """The peak since ``reset_peak_memory`` in MB, and what was measured ("cuda allocated" or "process RSS")."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda allocated"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024, "process RSS"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process RSS"


def make_step(model: nn.Module, x: torch.Tensor, mode: str, dtype: str):
    """A callable running one inference forward, or one training forward + backward + AdamW step."""
    device = x.device
    if mode == "infer":
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast(device, dtype):
                model(x)
        return step
    if mode != "train":
        raise ConfigError(f"mode must be 'infer' or 'train', got {mode!r}")
    model.train()
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.05)
    num_classes = getattr(model, "num_classes", 0) or 1
    target = torch.randint(0, num_classes, (x.shape[0],), device=device)

    def step() -> None:
        with autocast(device, dtype):
            out = model(x)
            loss = nn.functional.cross_entropy(out, target) if out.ndim == 2 and out.shape[1] > 1 else out.mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def time_steps(step, device: torch.device, steps: int) -> list[float]:
    """Wall-clock seconds of each of ``steps`` calls (synchronised on CUDA)."""
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def benchmark(model: nn.Module, batch_size: int = 16, input_size: tuple[int, int, int] = (3, 224, 224),
              mode: str = "infer", dtype: str = "fp32", channels_last: bool = False,
              device: str | torch.device | None = None, warmup: int = 3, steps: int = 10) -> BenchResult:
    """Images/s (median over ``steps`` timed steps after ``warmup``) and peak memory while timing."""
    device = resolve_device(str(device) if device is not None else None)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device)
    if channels_last:  # otherwise the model keeps its own layout (the fast path's is channels-last)
        model = model.to(memory_format=memory_format)
    x = torch.randn(batch_size, *input_size, device=device).contiguous(memory_format=memory_format)
    step = make_step(model, x, mode, dtype)
    time_steps(step, device, warmup)
    reset_peak_memory(device)
    times = time_steps(step, device, steps)
    peak, kind = peak_memory_mb(device)
    median = statistics.median(times)
    return BenchResult(getattr(model, "model_name", type(model).__name__), mode, str(device), dtype, batch_size,
                       tuple(input_size), channels_last, batch_size / median, median * 1e3, peak, kind, steps)
