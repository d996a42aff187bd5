"""Device, precision and mode choices shared by training, evaluation and measurement."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .errors import ConfigError
from .variants import PRECISION_NAMES

# fp16 trains with a gradient scaler (for GPUs without bf16); bf16 needs none
PRECISIONS = dict(zip(PRECISION_NAMES, (torch.float32, torch.bfloat16, torch.float16)))


def resolve_device(name: str | None = None) -> torch.device:
    """``name`` or cuda when available, else cpu; asking for an absent CUDA device is a clear error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA device is available here; use cpu")
    return device


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else a ConfigError naming them."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 or fp16 autocast on ``device``, or nothing for fp32."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def to_device(x: torch.Tensor, device: torch.device, memory_format: torch.memory_format) -> torch.Tensor:
    """A batch on ``device``; an image batch (4-D) also in ``memory_format`` (a modality's raw samples have
    other ranks: their adapter makes the 4-D maps)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=memory_format) if x.ndim == 4 else x
