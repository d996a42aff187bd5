"""UniRepLKNet (arXiv 2311.15599): large-kernel ConvNet with Dilated Reparam Blocks.

  stem: Conv 3x3 s2 -> LayerNorm -> GELU -> Conv 3x3 s2 -> LayerNorm
  4 stages: [Conv 3x3 s2 -> LayerNorm] (stages 2-4) -> blocks
  block: dw (Dilated Reparam Block for a large kernel, plain depthwise 3x3 for kernel 3) -> BN -> SE
         -> Linear C->4C -> GELU -> GRN -> Linear 4C->C (no bias) -> BN -> layer scale -> stochastic depth
         -> + input
  head: global average pool -> LayerNorm -> Linear
``deploy=True`` builds the re-parameterised form (``modernconv.reparameterize``): every dw layer one biased
conv, no BN, no GRN bias, no layer scale (all folded into the convs and the second Linear).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import (DILATED_BRANCHES, CheckpointSequential, DepthwiseConv2d, DilatedReparamBlock, DropPath,
                      LayerNorm2d, Mlp, SqueezeExcite, bn_scale_shift, drop_path_rates, fold_bn, fold_output_affine,
                      layer_scale)
from .hierarchical import HierarchicalConvNet
from ..variants import UNIREPLKNET
from .registry import register_model

SMALL_KERNEL = 3  # SmaK blocks: a plain depthwise conv

# depths -> kernel size of every block, stage by stage (the paper's tables)
KERNEL_SIZES: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {
    (2, 2, 6, 2): ((3, 3), (13, 13), (13,) * 6, (13, 13)),
    (2, 2, 8, 2): ((3, 3), (13, 13), (13,) * 8, (13, 13)),
    (3, 3, 18, 3): ((3, 3, 3), (13, 13, 13), (13, 3) * 9, (13, 13, 13)),
    (3, 3, 27, 3): ((3, 3, 3), (13, 13, 13), (13, 3, 3) * 9, (13, 13, 13)),
}


def spatial_mixer(dim: int, kernel_size: int, branches: Mapping[int, Sequence[Sequence[int]]],
                  norm_layer: type[nn.Module], deploy: bool) -> nn.Module:
    """The block's depthwise layer: a Dilated Reparam Block where ``branches`` has the kernel size, else a
    plain depthwise 3x3 conv (biased only in deploy form)."""
    if kernel_size in branches:
        return DilatedReparamBlock(dim, kernel_size, branches[kernel_size], norm_layer, deploy)
    if kernel_size == SMALL_KERNEL:
        return DepthwiseConv2d(dim, kernel_size, bias=deploy)
    raise ConfigError(f"kernel size {kernel_size} is not supported: use {SMALL_KERNEL} (plain depthwise conv) or "
                      f"one with a dilated branch table entry {sorted(branches)}, or add one with "
                      f"dilated_branches={{{kernel_size}: [(k, r), ...]}}")


class UniRepLKNetBlock(nn.Module):
    """LarK (Dilated Reparam Block) or SmaK (depthwise 3x3) block; the FFN runs on channels-last views."""

    def __init__(self, dim: int, kernel_size: int, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = 1e-6, mlp_ratio: float = 4.0,
                 branches: Mapping[int, Sequence[Sequence[int]]] = DILATED_BRANCHES,
                 norm_layer: type[nn.Module] = nn.BatchNorm2d, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
        self.conv_dw = spatial_mixer(dim, kernel_size, branches, norm_layer, deploy)
        self.norm = nn.Identity() if deploy else norm_layer(dim)
        self.se = SqueezeExcite(dim, dim // 4)
        self.mlp = Mlp(dim, int(mlp_ratio * dim), use_grn=True, fc2_bias=deploy, grn_bias=not deploy)
        self.norm_mlp = nn.Identity() if deploy else norm_layer(dim)
        self.gamma = layer_scale(dim, layer_scale_init_value, deploy)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.norm(self.conv_dw(x)))
        y = self.norm_mlp(self.mlp(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        if self.gamma is not None:
            y = y * self.gamma.view(-1, 1, 1)
        return x + self.drop_path(y)

    def reparameterize(self) -> None:
        """Deploy form: one biased dw conv (branches and BN merged); GRN bias, BN and layer scale folded into
        the second Linear. Exact in eval mode."""
        if self.deploy:
            return
        conv = self.conv_dw
        if isinstance(conv, DilatedReparamBlock):
            conv.reparameterize()
            conv = conv.conv
        fold_bn(conv, self.norm)
        self.mlp.reparameterize()
        scale, shift = bn_scale_shift(self.norm_mlp)
        if self.gamma is not None:
            scale, shift = scale * self.gamma, shift * self.gamma
        fold_output_affine(self.mlp.fc2, scale, shift)
        self.norm, self.norm_mlp, self.gamma = nn.Identity(), nn.Identity(), None
        self.deploy = True


class UniRepLKNetStage(nn.Module):
    """Optional downsampling (Conv 3x3 s2 -> LayerNorm) followed by one block per kernel size."""

    def __init__(self, in_dim: int, dim: int, downsample: bool, kernel_sizes: Sequence[int],
                 drop_paths: Sequence[float], **block_kwargs) -> None:
        super().__init__()
        self.downsample = (nn.Sequential(nn.Conv2d(in_dim, dim, 3, stride=2, padding=1), LayerNorm2d(dim))
                           if downsample else nn.Identity())
        self.blocks = CheckpointSequential(*(UniRepLKNetBlock(dim, k, drop_path=p, **block_kwargs)
                                             for k, p in zip(kernel_sizes, drop_paths)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class UniRepLKNet(HierarchicalConvNet):
    """UniRepLKNet; ``kernel_sizes`` (per stage, per block) and ``dilated_branches`` ({K: [(k, r), ...]},
    merged over the paper's table) are overridable data."""

    def __init__(self, depths: Sequence[int] = (3, 3, 27, 3), dims: Sequence[int] = (96, 192, 384, 768),
                 kernel_sizes: Sequence[Sequence[int]] | None = None,
                 dilated_branches: Mapping[int, Sequence[Sequence[int]]] | None = None,
                 in_chans: int = 3, num_classes: int = 1000, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 drop_rate: float = 0.0, layer_scale_init_value: float | None = 1e-6, head_init_scale: float = 1.0,
                 use_sync_bn: bool = False, deploy: bool = False) -> None:
        super().__init__()
        depths, dims = tuple(depths), tuple(dims)
        if len(depths) != len(dims):
            raise ConfigError(f"depths {depths} and dims {dims} must have the same length")
        kernel_sizes = _check_kernel_sizes(depths, kernel_sizes)
        branches = {**DILATED_BRANCHES, **{int(k): v for k, v in (dilated_branches or {}).items()}}
        self.in_chans = in_chans
        self.head_init_scale = head_init_scale
        self.deploy = deploy
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1), LayerNorm2d(dims[0] // 2), nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1), LayerNorm2d(dims[0]))
        block_kwargs = dict(layer_scale_init_value=layer_scale_init_value, mlp_ratio=mlp_ratio, branches=branches,
                            norm_layer=nn.SyncBatchNorm if use_sync_bn else nn.BatchNorm2d, deploy=deploy)
        rates = drop_path_rates(drop_path_rate, depths)
        stages = [UniRepLKNetStage(prev, dim, i > 0, kernel_sizes[i], rates[i], **block_kwargs)
                  for i, (prev, dim) in enumerate(zip((dims[0], *dims[:-1]), dims))]
        self.init_body(stages, dims, num_classes, drop_rate)


def _check_kernel_sizes(depths: tuple[int, ...], kernel_sizes: Sequence[Sequence[int]] | None
                        ) -> tuple[tuple[int, ...], ...]:
    """The per-block kernel table: the paper's for ``depths`` unless given; its shape must match ``depths``."""
    if kernel_sizes is None:
        if depths not in KERNEL_SIZES:
            raise ConfigError(f"no default kernel table for depths {depths} (known: {sorted(KERNEL_SIZES)}); "
                              f"pass kernel_sizes=[[k, ...] per stage]")
        return KERNEL_SIZES[depths]
    table = tuple(tuple(int(k) for k in stage) for stage in kernel_sizes)
    if tuple(len(stage) for stage in table) != depths:
        raise ConfigError(f"kernel_sizes has {tuple(len(s) for s in table)} entries per stage but depths are "
                          f"{depths}: give one kernel size per block")
    return table


for _name, _arch in UNIREPLKNET.items():
    register_model(_name, "unireplknet", UniRepLKNet, **_arch)
