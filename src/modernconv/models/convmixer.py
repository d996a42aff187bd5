"""ConvMixer (Patches Are All You Need?, arXiv 2201.09792).

  stem: Conv p x p stride p -> activation -> BatchNorm
  block (x depth): x = x + BN(act(depthwise Conv k x k, "same")(x)); x = BN(act(Conv 1x1(x)))
  head: global average pool -> Linear
"""
from __future__ import annotations

import torch
from torch import nn

from ..data.preprocessing import DataConfig
from ..errors import ConfigError
from .isotropic import IsotropicConvNet
from ..variants import CONVMIXER
from .registry import register_model


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class ConvMixerBlock(nn.Module):
    """Depthwise mixing with a residual, then pointwise mixing without one."""

    def __init__(self, dim: int, kernel_size: int, act_layer: type[nn.Module]) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same")
        self.act_dw = act_layer()
        self.norm_dw = nn.BatchNorm2d(dim)
        self.conv_pw = nn.Conv2d(dim, dim, 1)
        self.act_pw = act_layer()
        self.norm_pw = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_dw(self.act_dw(self.conv_dw(x))).add_(x)  # in place: the branch output is ours alone
        return self.norm_pw(self.act_pw(self.conv_pw(x)))


class ConvMixer(IsotropicConvNet):
    """ConvMixer-h/d with kernel ``kernel_size`` and patch ``patch_size``."""

    def __init__(self, dim: int = 768, depth: int = 32, kernel_size: int = 7, patch_size: int = 7,
                 in_chans: int = 3, num_classes: int = 1000, act: str = "gelu", drop_rate: float = 0.0) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ConfigError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        act_layer = ACTIVATIONS[act]
        self.in_chans = in_chans
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dim, patch_size, stride=patch_size), act_layer(),
                                  nn.BatchNorm2d(dim))
        self.init_blocks([ConvMixerBlock(dim, kernel_size, act_layer) for _ in range(depth)], dim, patch_size)
        self.set_head(dim, num_classes, drop_rate, use_norm=False)


_IMAGENET = DataConfig(crop_pct=0.96)
_CIFAR = DataConfig(input_size=(3, 32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2471, 0.2435, 0.2616),
                    crop_pct=1.0)

_DATA = {"convmixer_256_8": _CIFAR}  # the rest are ImageNet models

for _name, _arch in CONVMIXER.items():
    register_model(_name, "convmixer", ConvMixer, _DATA.get(_name, _IMAGENET), **_arch)
