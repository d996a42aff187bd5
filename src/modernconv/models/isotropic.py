"""Isotropic networks (isotropic ConvNeXt, ConvMixer): a patch stem, then blocks at one width and
resolution, each of which is a feature stage."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..layers import CheckpointSequential
from .base import ModernConvNet


class IsotropicConvNet(ModernConvNet):
    """Shared structure: ``stem`` (stride ``patch_size``), ``blocks``, ``head``."""

    # blocks: a CheckpointSequential (set by init_blocks)
    stages_attr = "blocks"

    def init_blocks(self, blocks: Sequence[nn.Module], dim: int, patch_size: int) -> None:
        """Attach ``blocks`` and describe each one's output as a feature stage."""
        self.input_stride = patch_size
        self.blocks = CheckpointSequential(*blocks)
        self.feature_info = [dict(num_chs=dim, reduction=patch_size, module=f"blocks.{i}")
                             for i in range(len(blocks))]

    def feature_stages(self) -> Sequence[nn.Module]:
        return list(self.blocks)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def group_matcher(self, coarse: bool = False) -> dict[str, str | list]:
        return dict(stem=r"^stem", blocks=r"^blocks\.(\d+)")
