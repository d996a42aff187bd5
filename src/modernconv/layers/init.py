"""Weight initialisation shared by the families."""
import torch
from torch import nn


def init_trunc_normal(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal weights (std 0.02) and zero bias for every conv and linear layer in ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_head(fc: nn.Module, scale: float = 1.0) -> None:
    """Paper init for a classifier: trunc-normal 0.02, zero bias, both scaled by ``scale`` (head_init_scale)."""
    if isinstance(fc, nn.Linear):
        init_trunc_normal(fc)
        with torch.no_grad():
            fc.weight.mul_(scale)
            fc.bias.mul_(scale)
