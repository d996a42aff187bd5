"""Weight initialisation shared by the families."""
from torch import nn


def init_trunc_normal(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal weights (std 0.02) and zero bias for every conv and linear layer in ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
