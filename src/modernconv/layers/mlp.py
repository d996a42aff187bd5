"""The channel MLP of ConvNeXt-style blocks, on channels-last tensors."""
import torch
from torch import nn

from .fusion import fold_input_shift
from .grn import GlobalResponseNorm


class Mlp(nn.Module):
    """Linear(C -> hidden) -> activation -> [GRN(hidden)] -> Linear(hidden -> C).

    Equivalent to a pair of 1x1 convs; works on the last dimension of (N, H, W, C) tensors.
    """

    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        act_layer: type[nn.Module] = nn.GELU,
        use_grn: bool = False,
        fc2_bias: bool = True,
        grn_bias: bool = True,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = act_layer()
        self.grn = GlobalResponseNorm(hidden_dim, use_bias=grn_bias) if use_grn else nn.Identity()
        self.fc2 = nn.Linear(hidden_dim, dim, bias=fc2_bias)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``keep`` (broadcast to the hidden activation, 0 = a position that does not exist) zeroes those
        positions before GRN, whose per-sample statistics then cover the existing ones only."""
        hidden = self.act(self.fc1(x))
        if keep is not None:
            hidden = hidden * keep
        return self.fc2(self.grn(hidden))

    def reparameterize(self) -> None:
        """Fold GRN's bias through fc2 (exact: fc2(y + beta) = fc2(y) + W2 @ beta)."""
        if isinstance(self.grn, GlobalResponseNorm) and self.grn.bias is not None:
            fold_input_shift(self.fc2, self.grn.bias)
            self.grn.bias = None
