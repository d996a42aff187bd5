"""The model contract every modernconv network follows (timm-compatible method names)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data.preprocessing import DataConfig
from ..errors import ConfigError, InputShapeError
from ..layers import ClassifierHead, init_head, init_trunc_normal


class ModernConvNet(nn.Module):
    """Shared contract: stem -> body (feature stages) -> head.

    Subclasses set ``stem``, ``in_chans``, ``input_stride`` and ``feature_info`` (timm-style dicts: num_chs,
    reduction, module), call ``set_head`` last, and implement ``feature_stages()`` and ``body`` (which runs those
    stages for ``forward_features``). With ``trunc_normal_init`` (the ConvNeXt papers' scheme) every conv and
    linear weight is trunc-normal(0.02), biases zero and the classifier scaled by ``head_init_scale``; without
    it the layers keep PyTorch's default initialisation (ConvMixer).
    """

    stem: nn.Module
    head: ClassifierHead
    feature_info: list[dict]
    in_chans: int
    input_stride: int = 1
    data_config: DataConfig = DataConfig()
    grad_checkpointing: bool = False
    trunc_normal_init: bool = False
    head_init_scale: float = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.feature_info = []
        self.model_name = type(self).__name__

    def set_head(self, num_features: int, num_classes: int, drop_rate: float, use_norm: bool = True) -> None:
        """Attach the pooled classifier head and initialise the whole network."""
        self.head = ClassifierHead(num_features, num_classes, use_norm=use_norm, drop_rate=drop_rate)
        if self.trunc_normal_init:
            init_trunc_normal(self)
        self.init_classifier(self.head.fc)

    # ----- structure -----
    def feature_stages(self) -> Sequence[nn.Module]:
        """The modules whose outputs are the entries of ``feature_info``, in order."""
        raise NotImplementedError

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Run every feature stage (with gradient checkpointing where enabled)."""
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        return self.head.in_features

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    # ----- forward -----
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a clear error when ``x`` cannot go through this model."""
        if x.ndim != 4:
            raise InputShapeError(f"{self.model_name} expects an N,C,H,W tensor, got shape {tuple(x.shape)}")
        _, c, h, w = x.shape
        if c != self.in_chans:
            raise InputShapeError(f"{self.model_name} expects {self.in_chans} input channels, got {c} "
                                  f"(build it with in_chans={c} to change the stem)")
        s = self.input_stride
        if h < s or w < s or h % s or w % s:
            raise InputShapeError(
                f"{self.model_name} needs height and width that are positive multiples of its stride {s}, "
                f"got {h}x{w} (e.g. use {max(s, round(h / s) * s)}x{max(s, round(w / s) * s)})")
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled features of the last stage, N,C,H,W."""
        return self.body(self.stem(self.check_input(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, normalise and classify features; ``pre_logits`` stops before the classifier."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Outputs of selected feature stages (N,C,H,W).

        ``indices``: None for all stages, an int n for the last n, or a sequence of stage indices
        (negative counts from the end). Returns the list, or (final features, list).
        """
        stages = list(self.feature_stages())
        take = _take_indices(len(stages), indices)
        if stop_early or intermediates_only:
            stages = stages[: max(take) + 1]
        intermediates = []
        x = self.stem(self.check_input(x))
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    # ----- classifier -----
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier (0 removes it: the model then returns pooled features)."""
        ref = next(self.parameters())
        self.head.reset(num_classes, device=ref.device, dtype=ref.dtype)
        self.init_classifier(self.head.fc)

    def init_classifier(self, fc: nn.Module) -> None:
        """Initialise a new classifier layer (the paper's scheme with ``trunc_normal_init``)."""
        if self.trunc_normal_init:
            init_head(fc, self.head_init_scale)

    # ----- training helpers -----
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations block by block in backward to save memory."""
        for m in self.modules():
            if hasattr(m, "grad_checkpointing"):
                m.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, str | list]:
        """timm-style regexes that map parameter names to depth-ordered groups (for layer-wise lr decay)."""
        raise NotImplementedError


def _take_indices(num_stages: int, indices: int | Sequence[int] | None) -> list[int]:
    if indices is None:
        return list(range(num_stages))
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ConfigError(f"indices={indices}: can take the last 1..{num_stages} stages")
        return list(range(num_stages - indices, num_stages))
    take = []
    for i in indices:
        if not -num_stages <= i < num_stages:
            raise ConfigError(f"stage index {i} out of range for {num_stages} stages")
        take.append(i % num_stages)
    if not take:
        raise ConfigError("indices must select at least one stage")
    return take
