"""Backbones for detection and segmentation: ``create_model(..., features_only=True, out_indices=...)``.

The returned module gives the list of selected stage maps (N,C,H,W) and describes them with a ``feature_info``
that has timm's ``channels()``, ``reduction()`` and ``module_name()``, which FPNs and the detection and
segmentation frameworks read. The stages after the last selected one, the head and its norm are dropped, so
every parameter takes part in the forward (as DistributedDataParallel requires). ``out_norms=True`` adds the
channels-first LayerNorm per output (``norm0`` .. ``norm3``, eps 1e-6) that the authors' detection and
segmentation backbones of ConvNeXt, ConvNeXt V2 and UniRepLKNet put on every map they hand to the decoder.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..layers import LayerNorm2d
from .base import ModelWrapper, ModernConvNet, _take_indices


class FeatureInfo:
    """Every stage's channels, reduction and module name, and the selected ones (timm's FeatureInfo: ``info``,
    ``len`` and ``[i]`` cover every stage, an int or list ``idx`` indexes stages, no ``idx`` means the selected
    ``out_indices``)."""

    def __init__(self, info: Sequence[dict], out_indices: Sequence[int]) -> None:
        self.out_indices = tuple(out_indices)
        self.info = [dict(f, index=i) for i, f in enumerate(info)]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None) -> Any:
        """The info dicts (only ``keys``) of the selected stages, or of stage(s) ``idx``."""
        def pick(i: int) -> dict:
            return dict(self.info[i]) if keys is None else {k: self.info[i][k] for k in keys}
        if isinstance(idx, int):
            return pick(idx)
        return [pick(i) for i in (self.out_indices if idx is None else idx)]

    def _get(self, key: str, idx: int | Sequence[int] | None) -> Any:
        found = self.get_dicts([key], idx)
        return found[key] if isinstance(idx, int) else [f[key] for f in found]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self._get("module", idx)

    def __getitem__(self, item: int) -> dict:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)


class FeatureBackbone(ModelWrapper):
    """A model cut to its feature stages: ``forward(x)`` returns the maps of ``out_indices``."""

    def __init__(self, model: ModernConvNet, out_indices: int | Sequence[int] | None = None,
                 out_norms: bool = False) -> None:
        super().__init__()
        info = list(model.feature_info)
        self.out_indices = tuple(_take_indices(len(info), out_indices))
        model.prune_intermediate_layers(self.out_indices, prune_norm=True, prune_head=True)
        self.model = model
        self.feature_info = FeatureInfo(info, self.out_indices)
        self.out_norms = out_norms
        self.structure = {"backbone": {"out_indices": list(self.out_indices), "out_norms": out_norms}}
        for i in self.out_indices if out_norms else ():
            self.add_module(f"norm{i}", LayerNorm2d(info[i]["num_chs"]))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.model.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps of ``out_indices`` (through their norms), in ``x``'s memory format: the channels-first
        LayerNorm works in a channels-last view and leaves those strides behind, and the dense heads' wide convs
        train ~2% slower on such maps when the input is contiguous."""
        maps = self.model.forward_intermediates(x, self.out_indices, intermediates_only=True)
        if self.out_norms:
            maps = [getattr(self, f"norm{i}")(m) for i, m in zip(self.out_indices, maps)]
        layout = torch.contiguous_format if x.is_contiguous() else torch.channels_last
        return [m.contiguous(memory_format=layout) for m in maps]
