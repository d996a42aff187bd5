"""Parameter and multiply-accumulate counts (the papers' "FLOPs" convention: conv and matmul MACs)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..runtime import eval_mode


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def count_macs(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224)) -> int:
    """Multiply-accumulates of one forward pass on a single image: FlopCounterMode's total / 2.

    Runs on the model's device (build the model on the ``meta`` device to count without computing).
    """
    ref = next(model.parameters())
    x = torch.zeros((1, *input_size), device=ref.device, dtype=ref.dtype)
    with eval_mode(model), torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


@dataclass
class ModelProfile:
    """What ``modernconv info`` reports about a model at one input size."""

    model: str
    input_size: tuple[int, int, int]
    params: int
    trainable_params: int
    gmacs: float
    features: list[dict] = field(default_factory=list)
    data_config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def profile_model(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> ModelProfile:
    """Parameters, GMACs, feature channels/strides and data config of ``model``."""
    config = getattr(model, "data_config", None)
    input_size = tuple(input_size or config.input_size)
    total, trainable = count_params(model)
    features = [dict(channels=f["num_chs"], reduction=f["reduction"], module=f["module"])
                for f in getattr(model, "feature_info", [])]
    return ModelProfile(getattr(model, "model_name", type(model).__name__), input_size, total, trainable,
                        round(count_macs(model, input_size) / 1e9, 4), features,
                        asdict(config) if config is not None else {})
