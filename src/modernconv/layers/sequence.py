"""A Sequential whose children can be gradient-checkpointed one by one."""
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class CheckpointSequential(nn.Sequential):
    """nn.Sequential that recomputes each child in backward when ``grad_checkpointing`` is on.

    Only inputs of each child are kept, trading compute for activation memory.
    """

    grad_checkpointing: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_ckpt = self.grad_checkpointing and torch.is_grad_enabled()
        for module in self:
            x = checkpoint(module, x, use_reentrant=False) if use_ckpt else module(x)
        return x
