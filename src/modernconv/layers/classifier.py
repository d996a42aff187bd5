"""Classifier head: global average pool -> optional LayerNorm -> dropout -> Linear."""
import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Pools N,C,H,W features to N,C and classifies them; ``num_classes=0`` keeps pooled features."""

    def __init__(self, in_features: int, num_classes: int, use_norm: bool = True, drop_rate: float = 0.0,
                 norm_eps: float = 1e-6) -> None:
        super().__init__()
        self.in_features = in_features
        self.norm = nn.LayerNorm(in_features, eps=norm_eps) if use_norm else nn.Identity()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def num_classes(self) -> int:
        return self.fc.out_features if isinstance(self.fc, nn.Linear) else 0

    def reset(self, num_classes: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` outputs (0 = none)."""
        self.fc = (nn.Linear(self.in_features, num_classes, device=device, dtype=dtype)
                   if num_classes > 0 else nn.Identity())

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.norm(x.mean(dim=(2, 3))))
        return x if pre_logits else self.fc(x)
