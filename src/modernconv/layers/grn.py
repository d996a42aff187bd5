"""Global Response Normalization (ConvNeXt V2)."""
import torch
from torch import nn


class GlobalResponseNorm(nn.Module):
    """GRN on channels-last input (N, H, W, C).

    G = per-sample, per-channel L2 norm over H and W; Nx = G / (mean_C G + eps);
    out = gamma * (x * Nx) + beta + x, with gamma (``weight``) and beta (``bias``) zero-initialised.
    ``use_bias=False`` drops beta (deploy forms fold it into the next Linear).
    """

    def __init__(self, channels: int, eps: float = 1e-6, use_bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if use_bias else None

    def response(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised response Nx, shape (N, 1, 1, C)."""
        # the L2 norm as sqrt(sum of squares), faster on CPU than linalg.vector_norm; an all-zero channel (GELU
        # underflow on a 1x1 map) gets vector_norm's zero gradient instead of sqrt's 0 * inf = NaN. (Masked by
        # where, not by multiplying with the mask: int8 quantizers take a product of two maps for int8 work.)
        squares = x.square().sum(dim=(1, 2), keepdim=True)
        nonzero = squares > 0
        g = torch.where(nonzero, torch.where(nonzero, squares, 1).sqrt(), 0)
        return g / (g.mean(dim=-1, keepdim=True) + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x + gamma * (x * Nx) + beta == x * (1 + gamma * Nx) + beta: one pass over x after the norm
        scale = 1 + self.weight * self.response(x)
        return x * scale if self.bias is None else torch.addcmul(self.bias, x, scale)
