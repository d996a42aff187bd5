"""UperNet (Xiao et al., 2018), the decoder every paper we implement reports on ADE20K, as the authors configure it
in mmsegmentation (``upernet_*.py`` of ConvNeXt, ConvNeXt V2 and UniRepLKNet):

    decode head (on the four stage maps C1..C4, strides 4, 8, 16, 32):
      1. PPM on C4: adaptive average pools to 1x1, 2x2, 3x3, 6x6, each a 1x1 conv-BN-ReLU to 512 channels,
         upsampled back (bilinear) and concatenated with C4; a 3x3 conv-BN-ReLU ("bottleneck") -> 512: P4
      2. FPN: 1x1 conv-BN-ReLU laterals of C1..C3 -> 512; top-down, each level += the upsampled level above
      3. a 3x3 conv-BN-ReLU on each of P1..P3; P2..P4 upsampled to P1's size; concatenated (4 x 512)
      4. a 3x3 conv-BN-ReLU ("fpn_bottleneck") -> 512, dropout 0.1, a 1x1 conv to the classes ("conv_seg")
    auxiliary head (training only; loss weight 0.4): on C3 (stage 2), one 3x3 conv-BN-ReLU -> 256, dropout 0.1,
      a 1x1 conv to the classes.

Every interpolation is bilinear with ``align_corners=False``. Module names are mmsegmentation's (``conv``/``bn``,
``psp_modules``, ``lateral_convs``, ``fpn_convs``, ``conv_seg``), so the authors' checkpoints load by name;
Hugging Face's ``UperNetForSemanticSegmentation`` differs only in ``batch_norm`` and ``classifier``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

POOL_SCALES = (1, 2, 3, 6)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W), as mmsegmentation and Hugging Face do (``align_corners=False``)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ConvModule(nn.Sequential):
    """conv (no bias) -> BatchNorm -> ReLU: mmsegmentation's ConvModule with its default norm and activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)


class UperNetHead(nn.Module):
    """UperNet's decode head over the maps of ``in_channels`` (finest first): see the module docstring."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, channels: int = 512,
                 pool_scales: Sequence[int] = POOL_SCALES, dropout: float = 0.1) -> None:
        super().__init__()
        *lower, top = in_channels
        self.psp_modules = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvModule(top, channels, 1))
                                         for s in pool_scales)
        self.bottleneck = ConvModule(top + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvModule(c, channels, 1) for c in lower)
        self.fpn_convs = nn.ModuleList(ConvModule(channels, channels, 3) for _ in lower)
        self.fpn_bottleneck = ConvModule(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        *lower, top = maps
        pooled = [resize(ppm(top), top.shape[2:]) for ppm in self.psp_modules]  # 1. PPM
        levels = [conv(x) for conv, x in zip(self.lateral_convs, lower)]
        levels.append(self.bottleneck(torch.cat([top, *pooled], 1)))
        for i in range(len(levels) - 1, 0, -1):  # 2. top-down
            levels[i - 1] = levels[i - 1] + resize(levels[i], levels[i - 1].shape[2:])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, levels[:-1])] + [levels[-1]]  # 3.
        size = outs[0].shape[2:]
        fused = self.fpn_bottleneck(torch.cat([outs[0], *(resize(x, size) for x in outs[1:])], 1))  # 4.
        return self.conv_seg(self.dropout(fused))


class FCNHead(nn.Module):
    """The auxiliary head: ``num_convs`` 3x3 conv-BN-ReLU on one map, dropout, a 1x1 conv to the classes."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, num_convs: int = 1,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(ConvModule(in_channels if i == 0 else channels, channels, 3)
                                     for i in range(num_convs)))
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels if num_convs else in_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.convs(x)))
