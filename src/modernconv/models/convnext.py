"""ConvNeXt V1 (arXiv 2201.03545), ConvNeXt V2 (arXiv 2301.00808) and isotropic ConvNeXt.

Hierarchical model, top to bottom:
  stem: Conv 4x4 s4 -> LayerNorm
  4 stages: [LayerNorm -> Conv 2x2 s2] (stages 2-4) -> blocks
  block: dwconv KxK -> LayerNorm -> Linear C->4C -> GELU -> [GRN, V2] -> Linear 4C->C -> [layer scale, V1]
         -> stochastic depth -> + input
  head: global average pool -> LayerNorm -> Linear
Parameter names follow timm's layout so its weights need no renaming. ``deploy=True`` builds the form that
``modernconv.reparameterize`` produces: layer scale folded into the second Linear, GRN without its bias.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import (CheckpointSequential, DepthwiseConv2d, DropPath, LayerNorm2d, Mlp, drop_path_rates,
                      fold_output_affine, layer_scale)
from .hierarchical import HierarchicalConvNet
from .isotropic import IsotropicConvNet
from ..variants import CONVNEXT_ISOTROPIC, CONVNEXT_V1, CONVNEXT_V2
from .registry import register_model


class ConvNeXtBlock(nn.Module):
    """One ConvNeXt (V1) or ConvNeXt V2 block; the MLP runs on channels-last views."""

    def __init__(self, dim: int, kernel_size: int = 7, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = 1e-6, use_grn: bool = False,
                 act_layer: type[nn.Module] = nn.GELU, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
        self.conv_dw = DepthwiseConv2d(dim, kernel_size)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(mlp_ratio * dim), act_layer=act_layer, use_grn=use_grn, grn_bias=not deploy)
        self.gamma = layer_scale(dim, layer_scale_init_value, deploy)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_dw(x).permute(0, 2, 3, 1)  # N, H, W, C
        y = self.mix_channels(y)
        # out of place, x first: the sum takes x's memory format (the permuted branch would leave channels-last
        # strides on a contiguous input, which makes the next blocks' training ~5% slower)
        return x + self.drop_path(y.permute(0, 3, 1, 2))

    def mix_channels(self, y: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The block after its depthwise conv, on channels-last (..., C): LayerNorm -> MLP -> layer scale.

        FCMAE's two encoders call this seam too: the sparse one on the visible rows alone, the masked reference
        on the dense map with ``keep`` (1 = the position exists, 0 = masked), which zeroes the masked positions
        before GRN's statistics and in the output."""
        y = self.mlp(self.norm(y), keep)
        if self.gamma is not None:
            y = y * self.gamma
        return y if keep is None else y * keep

    def reparameterize(self) -> None:
        """Deploy form: GRN bias and layer scale folded into the second Linear."""
        self.mlp.reparameterize()
        if self.gamma is not None:
            fold_output_affine(self.mlp.fc2, self.gamma)
            self.gamma = None
        self.deploy = True


class ConvNeXtStage(nn.Module):
    """Optional downsampling (LayerNorm -> Conv 2x2 s2) followed by one block per drop-path rate."""

    def __init__(self, in_dim: int, dim: int, downsample: bool, drop_paths: Sequence[float], **block_kwargs) -> None:
        super().__init__()
        self.downsample = (nn.Sequential(LayerNorm2d(in_dim), nn.Conv2d(in_dim, dim, 2, stride=2))
                           if downsample else nn.Identity())
        self.blocks = CheckpointSequential(*(ConvNeXtBlock(dim, drop_path=p, **block_kwargs) for p in drop_paths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXt(HierarchicalConvNet):
    """Hierarchical ConvNeXt; ``use_grn=True, layer_scale_init_value=None`` gives ConvNeXt V2."""

    def __init__(self, depths: Sequence[int] = (3, 3, 9, 3), dims: Sequence[int] = (96, 192, 384, 768),
                 in_chans: int = 3, num_classes: int = 1000, kernel_size: int = 7, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0, drop_rate: float = 0.0,
                 layer_scale_init_value: float | None = 1e-6, use_grn: bool = False,
                 head_init_scale: float = 1.0, deploy: bool = False) -> None:
        super().__init__()
        if len(depths) != len(dims):
            raise ConfigError(f"depths {tuple(depths)} and dims {tuple(dims)} must have the same length")
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ConfigError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.in_chans = in_chans
        self.head_init_scale = head_init_scale
        self.deploy = deploy
        self.input_stride = 4 * 2 ** (len(dims) - 1)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        rates = drop_path_rates(drop_path_rate, depths)
        stages = [ConvNeXtStage(prev, dim, downsample=i > 0, drop_paths=rates[i], kernel_size=kernel_size,
                                mlp_ratio=mlp_ratio, use_grn=use_grn, layer_scale_init_value=layer_scale_init_value,
                                deploy=deploy)
                  for i, (prev, dim) in enumerate(zip((dims[0], *dims[:-1]), dims))]
        self.init_body(stages, dims, num_classes, drop_rate)


class ConvNeXtIsotropic(IsotropicConvNet):
    """Isotropic ConvNeXt: Conv 16x16 s16 patch stem (no norm), ``depth`` blocks at one width, pool + LN + head."""

    trunc_normal_init = True

    def __init__(self, depth: int = 18, dim: int = 384, in_chans: int = 3, num_classes: int = 1000,
                 patch_size: int = 16, kernel_size: int = 7, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 drop_rate: float = 0.0, layer_scale_init_value: float | None = None,
                 head_init_scale: float = 1.0, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
        self.in_chans = in_chans
        self.head_init_scale = head_init_scale
        self.stem = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        rates = drop_path_rates(drop_path_rate, [depth])[0]
        self.init_blocks([ConvNeXtBlock(dim, kernel_size, mlp_ratio, p, layer_scale_init_value, deploy=deploy)
                          for p in rates], dim, patch_size)
        self.set_head(dim, num_classes, drop_rate)


for _name, _arch in CONVNEXT_V1.items():
    register_model(_name, "convnext", ConvNeXt, **_arch)
for _name, _arch in CONVNEXT_V2.items():
    register_model(_name, "convnextv2", ConvNeXt, **_arch, use_grn=True, layer_scale_init_value=None)
for _name, _arch in CONVNEXT_ISOTROPIC.items():
    register_model(_name, "convnext_isotropic", ConvNeXtIsotropic, **_arch)
