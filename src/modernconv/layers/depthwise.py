"""The "same"-padded depthwise conv of ConvNeXt and UniRepLKNet blocks, skipping kernel taps that only meet padding."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from ..errors import ConfigError


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise conv with an odd kernel, dilation ``dilation`` and "same" zero padding.

    On a map smaller than the kernel's reach (a 7x7 kernel on the 1x1 last stage of a 32x32 image, a dilated
    branch with r = 5 on a 2x2 map) the outer taps can only ever meet padding. They are cut from the kernel for
    that call, so the output, and the gradients of the taps that matter, are unchanged and the work is smaller
    (not while exporting or tracing, by torch.jit.trace or torch.fx: a saved graph must hold for every input size);
    the cut taps get a zero gradient, as they would from the full conv. Parameters are those of ``nn.Conv2d``.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1, bias: bool = True) -> None:
        if kernel_size % 2 == 0:
            raise ConfigError(f"DepthwiseConv2d needs an odd kernel size, got {kernel_size}")
        super().__init__(channels, channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                         dilation=dilation, groups=channels, bias=bias)

    def reach(self, height: int, width: int) -> tuple[int, int]:
        """Taps on each side of the centre that can meet the input of an ``height`` x ``width`` map."""
        half, dilation = (self.kernel_size[0] - 1) // 2, self.dilation[0]
        return min(half, (height - 1) // dilation), min(half, (width - 1) // dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # (TorchScript skips this block; its graph runs the cut below as code)
            if torch.compiler.is_exporting() or torch.jit.is_tracing() or is_fx_symbolic_tracing():
                return self._conv_forward(x, self.weight, self.bias)  # a saved graph holds for every input size
        half = (self.kernel_size[0] - 1) // 2
        rows, cols = self.reach(x.shape[-2], x.shape[-1])
        if rows == half and cols == half:
            return self._conv_forward(x, self.weight, self.bias)
        weight = self.weight[:, :, half - rows:half + rows + 1, half - cols:half + cols + 1]
        dilation = self.dilation[0]
        return F.conv2d(x, weight, self.bias, 1, (dilation * rows, dilation * cols), self.dilation, self.groups)
