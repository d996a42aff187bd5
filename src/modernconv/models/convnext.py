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

from ..layers import (CheckpointSequential, ClassifierHead, DepthwiseConv2d, DropPath, LayerNorm2d, Mlp,
                      drop_path_rates, fold_output_affine, init_head, init_trunc_normal)
from .hierarchical import HierarchicalConvNet
from .isotropic import IsotropicConvNet
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
        self.gamma = (nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
                      if layer_scale_init_value and not deploy else None)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1)))
        if self.gamma is not None:
            y = y * self.gamma
        return self.drop_path(y.permute(0, 3, 1, 2)).add_(x)  # in place: the branch output is ours alone

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
            raise ValueError(f"depths {tuple(depths)} and dims {tuple(dims)} must have the same length")
        if kernel_size % 2 == 0 or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
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
        self.head = ClassifierHead(dim, num_classes, use_norm=True, drop_rate=drop_rate)
        init_trunc_normal(self)
        self.init_classifier(self.head.fc)

    def init_classifier(self, fc: nn.Module) -> None:
        init_head(fc, self.head_init_scale)


_V1 = dict(atto=((2, 2, 6, 2), (40, 80, 160, 320)), femto=((2, 2, 6, 2), (48, 96, 192, 384)),
           pico=((2, 2, 6, 2), (64, 128, 256, 512)), nano=((2, 2, 8, 2), (80, 160, 320, 640)),
           tiny=((3, 3, 9, 3), (96, 192, 384, 768)), small=((3, 3, 27, 3), (96, 192, 384, 768)),
           base=((3, 3, 27, 3), (128, 256, 512, 1024)), large=((3, 3, 27, 3), (192, 384, 768, 1536)),
           xlarge=((3, 3, 27, 3), (256, 512, 1024, 2048)))
_V2 = {k: v for k, v in _V1.items() if k not in ("small", "xlarge")} | dict(
    huge=((3, 3, 27, 3), (352, 704, 1408, 2816)))
_ISOTROPIC = dict(small=(18, 384), base=(18, 768), large=(36, 1024))

for _size, (_depths, _dims) in _V1.items():
    register_model(f"convnext_{_size}", "convnext", ConvNeXt, depths=_depths, dims=_dims)
for _size, (_depths, _dims) in _V2.items():
    register_model(f"convnextv2_{_size}", "convnextv2", ConvNeXt, depths=_depths, dims=_dims, use_grn=True,
                   layer_scale_init_value=None)
for _size, (_depth, _dim) in _ISOTROPIC.items():
    register_model(f"convnext_isotropic_{_size}", "convnext_isotropic", ConvNeXtIsotropic, depth=_depth, dim=_dim)
