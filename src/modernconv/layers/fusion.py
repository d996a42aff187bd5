"""Exact folding of affine maps into the conv or linear layer before or after them (re-parameterisation).

The helpers compute in whatever dtype the tensors have; ``modernconv.reparameterize`` runs them in float64.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import ConfigError

Layer = nn.Conv2d | nn.Linear


def bn_scale_shift(bn: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (scale, shift) with ``bn(x) == x * scale + shift`` in eval mode."""
    if bn.running_var is None or bn.running_mean is None:
        raise ConfigError(f"cannot fold {bn}: it keeps no running statistics")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    return scale, shift if bn.bias is None else shift + bn.bias


def weight_and_bias(layer: Layer) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's weight and bias (zeros when it has none)."""
    weight = layer.weight
    bias = layer.bias if layer.bias is not None else weight.new_zeros(weight.shape[0])
    return weight, bias


def set_weight_and_bias(layer: Layer, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Give ``layer`` new parameters (creating its bias if it had none)."""
    layer.weight = nn.Parameter(weight.detach())
    layer.bias = nn.Parameter(bias.detach())


def fold_output_affine(layer: Layer, scale: torch.Tensor, shift: torch.Tensor | None = None) -> None:
    """Make ``layer`` compute ``layer(x) * scale + shift`` (per output channel)."""
    weight, bias = weight_and_bias(layer)
    bias = bias * scale if shift is None else bias * scale + shift
    set_weight_and_bias(layer, weight * scale.reshape(-1, *(1,) * (weight.ndim - 1)), bias)


def fold_bn(layer: Layer, bn: _BatchNorm) -> None:
    """Make ``layer`` compute ``bn(layer(x))`` (eval-mode BatchNorm)."""
    fold_output_affine(layer, *bn_scale_shift(bn))


def fold_input_shift(linear: nn.Linear, shift: torch.Tensor) -> None:
    """Make ``linear`` compute ``linear(x + shift)``."""
    weight, bias = weight_and_bias(linear)
    set_weight_and_bias(linear, weight, bias + weight @ shift)


def dilate_kernel(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """The dense kernel, ``(k - 1) * dilation + 1`` wide, of a kxk conv with ``dilation`` (zeros between taps)."""
    if dilation == 1:
        return kernel
    kh, kw = kernel.shape[-2:]
    dense = kernel.new_zeros(*kernel.shape[:-2], (kh - 1) * dilation + 1, (kw - 1) * dilation + 1)
    dense[..., ::dilation, ::dilation] = kernel
    return dense


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square odd kernel on all sides to ``size`` x ``size`` (same centre)."""
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, (pad,) * 4)
