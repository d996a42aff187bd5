"""Dilated Reparam Block (UniRepLKNet): a large depthwise kernel trained beside dilated small kernels, merged
into the one large kernel for deployment."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .depthwise import DepthwiseConv2d
from .fusion import dilate_kernel, fold_bn, pad_kernel, set_weight_and_bias, weight_and_bias

# large kernel K -> parallel branches (k, r): a depthwise k x k conv with dilation r (paper / authors' table)
DILATED_BRANCHES: dict[int, tuple[tuple[int, int], ...]] = {
    5: ((3, 1), (3, 2)),
    7: ((5, 1), (3, 2), (3, 3)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
    15: ((5, 1), (7, 2), (3, 3), (3, 5), (3, 7)),
    17: ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7)),
}


def check_branches(kernel_size: int, branches: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """Validated (k, r) pairs: odd k, r >= 1, no duplicates, each dense size (k - 1) * r + 1 <= kernel_size."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"Dilated Reparam Block kernel size must be a positive odd number, got {kernel_size}")
    pairs = tuple((int(k), int(r)) for k, r in branches)
    for k, r in pairs:
        if k < 1 or k % 2 == 0 or r < 1 or (k - 1) * r + 1 > kernel_size:
            raise ConfigError(f"dilated branch (k={k}, r={r}) does not fit a {kernel_size}x{kernel_size} kernel: "
                              f"k must be odd, r >= 1 and (k - 1) * r + 1 <= {kernel_size}")
    if len(set(pairs)) != len(pairs):
        raise ConfigError(f"dilated branches for kernel {kernel_size} repeat a (k, r) pair: {pairs}")
    return pairs


class DilatedReparamBlock(nn.Module):
    """Depthwise KxK conv + BN, plus depthwise dilated k x k convs each with its own BN, all summed.

    ``reparameterize()`` (eval-mode statistics) turns it into its deploy form: the KxK conv alone, with a bias.
    """

    def __init__(self, channels: int, kernel_size: int, branches: Sequence[Sequence[int]],
                 norm_layer: type[nn.Module] = nn.BatchNorm2d, deploy: bool = False) -> None:
        super().__init__()
        pairs = check_branches(kernel_size, branches)
        self.kernel_size = kernel_size
        self.deploy = deploy
        self.conv = DepthwiseConv2d(channels, kernel_size, bias=deploy)
        self.bn = nn.Identity() if deploy else norm_layer(channels)
        self.branches = nn.ModuleDict() if deploy else nn.ModuleDict({
            f"k{k}_r{r}": nn.Sequential(OrderedDict(conv=DepthwiseConv2d(channels, k, r, bias=False),
                                                    bn=norm_layer(channels)))
            for k, r in pairs})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(x))
        for branch in self.branches.values():
            out = out + branch(x)
        return out

    def reparameterize(self) -> None:
        """Fold every BN into its conv, expand dilated kernels, pad to KxK and sum into ``conv``."""
        if self.deploy:
            return
        fold_bn(self.conv, self.bn)
        kernel, bias = weight_and_bias(self.conv)
        for branch in self.branches.values():
            fold_bn(branch.conv, branch.bn)
            weight, branch_bias = weight_and_bias(branch.conv)
            kernel = kernel + pad_kernel(dilate_kernel(weight, branch.conv.dilation[0]), self.kernel_size)
            bias = bias + branch_bias
        set_weight_and_bias(self.conv, kernel, bias)
        self.bn = nn.Identity()
        self.branches = nn.ModuleDict()
        self.deploy = True
