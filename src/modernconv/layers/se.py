"""Squeeze-and-Excitation: re-weight channels by a gate computed from their global average."""
import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 conv C -> hidden (bias) -> ReLU -> 1x1 conv hidden -> C (bias) -> sigmoid
    -> scale the input's channels."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * gate.sigmoid()
