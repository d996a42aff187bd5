"""Layer scale (CaiT, ConvNeXt): a learnable per-channel multiplier on a residual branch, initialised small.

Kept as a plain parameter named ``gamma`` on the block (not a sub-module), so parameter names stay those of
timm and the authors' checkpoints; deploy forms fold it into the preceding Linear and drop it."""
import torch
from torch import nn


def layer_scale(dim: int, init_value: float | None, deploy: bool = False) -> nn.Parameter | None:
    """The ``(dim,)`` scale filled with ``init_value``, or None without layer scale (None or 0, or deploy form)."""
    if not init_value or deploy:
        return None
    return nn.Parameter(torch.full((dim,), float(init_value)))
