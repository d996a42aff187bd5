"""Hierarchical networks (ConvNeXt, UniRepLKNet): stem (stride 4) -> stages, each halving the resolution
after the first -> pooled LayerNorm classifier head."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import ModernConvNet


class HierarchicalConvNet(ModernConvNet):
    """Shared structure: ``stem``, ``stages`` (stage i: optional ``downsample`` then ``blocks``), ``head``."""

    # stages: an nn.Sequential of the feature stages (set by init_body)
    stages_attr = "stages"
    trunc_normal_init = True

    def init_body(self, stages: Sequence[nn.Module], dims: Sequence[int], num_classes: int,
                  drop_rate: float, use_norm: bool = True) -> None:
        """Attach ``stages`` and the head, describe the stage features and initialise every weight."""
        self.stages = nn.Sequential(*stages)
        self.feature_info = [dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}")
                             for i, dim in enumerate(dims)]
        self.set_head(dims[-1], num_classes, drop_rate, use_norm)

    def feature_stages(self) -> Sequence[nn.Module]:
        return list(self.stages)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def group_matcher(self, coarse: bool = False) -> dict[str, str | list]:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)" if coarse else [
            (r"^stages\.(\d+)\.downsample", (0,)),
            (r"^stages\.(\d+)\.blocks\.(\d+)", None),
        ])
