"""Device and precision choices shared by training, evaluation and benchmarking."""
from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def resolve_device(name: str | None = None) -> torch.device:
    """``name`` or cuda when available, else cpu; asking for an absent CUDA device is a clear error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA device is available here; use cpu")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device``, or nothing for fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])
