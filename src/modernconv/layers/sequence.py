"""A Sequential whose children can be gradient-checkpointed one by one."""
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class CheckpointSequential(nn.Sequential):
    """nn.Sequential that recomputes each child in backward when ``grad_checkpointing`` is on.

    Only inputs of each child are kept, trading compute for activation memory (not in TorchScript, which has no
    checkpointing: a scripted model runs its children plainly).
    """

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__(*modules)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if self.grad_checkpointing and torch.is_grad_enabled():
                for module in self:
                    x = checkpoint(module, x, use_reentrant=False)
                return x
        for module in self:
            x = module(x)
        return x
