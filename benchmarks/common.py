"""Interleaved timing of several step functions in one process, so machine noise hits all of them alike; and the
machine line every benchmark prints first, so each recorded figure names the CPU that produced it."""
from __future__ import annotations

import platform
import statistics
from pathlib import Path
from typing import Callable

import torch

from modernconv.analysis.benchmark import time_steps


# the CPU features that change which kernels run: vector width, int8 dot products, native bf16 / fp16, AMX tiles
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
             "amx_int8")


def machine_line() -> str:
    """CPU model, its kernel-relevant features, the kernels torch picks here, threads and library versions."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if model and flags:
                break
    features = [f for f in ISA_FLAGS if f in flags] or ["(flags unknown)"]
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"machine: {model}; {' '.join(features)}; torch kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"oneDNN bf16 {'native' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'not native'}; "
            f"{torch.get_num_threads()} threads; torch {torch.__version__}{gpu}")


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
