"""Classifier head: global pool -> optional LayerNorm -> dropout -> Linear (timm's ``global_pool`` choices)."""
import torch
from torch import nn

from ..errors import ConfigError

POOL_TYPES = ("avg", "max", "avgmax", "")  # "": no pooling, the head runs at every position (timm's meaning)


def check_pool_type(pool_type: str) -> str:
    if pool_type not in POOL_TYPES:
        raise ConfigError(f"global_pool must be one of {', '.join(map(repr, POOL_TYPES))}, got {pool_type!r}")
    return pool_type


class ClassifierHead(nn.Module):
    """Pools N,C,H,W features to N,C and classifies them; ``num_classes=0`` keeps pooled features.

    ``pool_type``: "avg" (the papers'), "max", "avgmax" (their mean) or "" (no pooling: norm and classifier act
    at every position, giving N,classes,H,W, or N,C,H,W without a classifier).
    """

    def __init__(self, in_features: int, num_classes: int, use_norm: bool = True, drop_rate: float = 0.0,
                 norm_eps: float = 1e-6, pool_type: str = "avg") -> None:
        super().__init__()
        self.in_features = in_features
        self.pool_type = check_pool_type(pool_type)
        self.norm = nn.LayerNorm(in_features, eps=norm_eps) if use_norm else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def num_classes(self) -> int:
        return self.fc.out_features if isinstance(self.fc, nn.Linear) else 0

    def reset(self, num_classes: int, pool_type: str | None = None, device: torch.device | None = None,
              dtype: torch.dtype | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` outputs (0 = none); ``pool_type`` too when
        given."""
        if pool_type is not None:
            self.pool_type = check_pool_type(pool_type)
        self.fc = (nn.Linear(self.in_features, num_classes, device=device, dtype=dtype)
                   if num_classes > 0 else nn.Identity())

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "avg":
            return x.mean(dim=(2, 3))
        if self.pool_type == "max":
            return x.amax(dim=(2, 3))
        return 0.5 * (x.mean(dim=(2, 3)) + x.amax(dim=(2, 3)))

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.pool_type:  # per position, channels last for the norm and the classifier
            x = self.drop(self.norm(x.permute(0, 2, 3, 1)))
            return (x if pre_logits else self.fc(x)).permute(0, 3, 1, 2)
        x = self.drop(self.norm(self.pool(x)))
        return x if pre_logits else self.fc(x)
