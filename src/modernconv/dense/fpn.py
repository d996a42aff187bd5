"""A feature pyramid over our backbones, as the detectors take it: the backbone's four stage maps (with the
authors' per-output norms) -> torchvision's ``FeaturePyramidNetwork`` at 256 channels, plus a fifth level (P6 by
max-pooling P5 for the two-stage detectors, P6/P7 by strided convs for the one-stage ones), returned as the
ordered dict torchvision's detection heads read."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import (ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool,
                                                     LastLevelP6P7)

from ..models.features import FeatureBackbone


class FPNBackbone(nn.Module):
    """``body`` (a ``FeatureBackbone`` of four maps) under an FPN of ``out_channels``: ``forward`` gives
    ``{"0": P2, "1": P3, "2": P4, "3": P5, "pool" or "p6", "p7": ...}`` (names as torchvision's, so its weights
    load). ``levels``: ``"pool"`` (P2-P6, P6 = max-pool of P5: Mask / Cascade / Faster R-CNN) or ``"p6p7"``
    (P3-P7 from P5 by 3x3 stride-2 convs: RetinaNet, FCOS)."""

    def __init__(self, body: FeatureBackbone, out_channels: int = 256, levels: str = "pool") -> None:
        super().__init__()
        channels = list(body.feature_info.channels())
        self.first = 0 if levels == "pool" else 1  # the one-stage heads start at P3
        extra: ExtraFPNBlock = LastLevelMaxPool() if levels == "pool" else LastLevelP6P7(out_channels, out_channels)
        self.body = body
        self.fpn = FeaturePyramidNetwork(channels[self.first:], out_channels, extra_blocks=extra)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(x)[self.first:]  # in the input's memory format
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(maps)))
