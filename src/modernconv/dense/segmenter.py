"""Semantic segmentation models: any hierarchical backbone we build, with its per-output norms, under UperNet's
decode head and the auxiliary FCN head (``dense.upernet``), as the ConvNeXt, ConvNeXt V2 and UniRepLKNet papers
train them on ADE20K.

    model = create_segmenter("convnext_tiny", num_classes=150)
    logits = model.eval()(images)           # (N, 150, H, W): the decode head's logits resized to the input

In training mode the model returns ``(logits, aux_logits)``, both at the input's size (the auxiliary head's loss
weighs 0.4). Checkpoints: ours, the authors' mmsegmentation files (``backbone.*``, ``decode_head.*``,
``auxiliary_head.*``) and Hugging Face's ``UperNetForSemanticSegmentation`` (``dense.layouts``).
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..checkpoint import LoadReport, load_tensors
from ..errors import CheckpointError, ConfigError
from ..models.features import FeatureBackbone
from .layouts import split_segmenter_state
from .pyramid import pyramid_backbone
from .upernet import FCNHead, UperNetHead, resize

AUX_INDEX = 2  # the auxiliary head reads stage 2's map (stride 16), as in the authors' configs


class Segmenter(nn.Module):
    """``backbone`` maps -> UperNet decode head (+ auxiliary FCN head on map ``AUX_INDEX``), logits at the input's
    size: see the module docstring."""

    def __init__(self, backbone: FeatureBackbone, num_classes: int, channels: int = 512, aux_channels: int = 256,
                 dropout: float = 0.1, auxiliary: bool = True) -> None:
        super().__init__()
        in_channels = backbone.feature_info.channels()
        self.backbone = backbone
        self.decode_head = UperNetHead(in_channels, num_classes, channels, dropout=dropout)
        self.auxiliary_head = (FCNHead(in_channels[AUX_INDEX], num_classes, aux_channels, dropout=dropout)
                               if auxiliary else None)
        self.num_classes = num_classes
        self.model_name = backbone.model_name  # the backbone's, with its options: what rebuilds the network
        self.model_kwargs = dict(backbone.model.model_kwargs)
        self.data_config = backbone.data_config
        self.in_chans = backbone.in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        maps = self.backbone(x)  # in the input's memory format
        logits = resize(self.decode_head(maps), x.shape[2:])
        if not (self.training and self.auxiliary_head is not None):
            return logits
        return logits, resize(self.auxiliary_head(maps[AUX_INDEX]), x.shape[2:])

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    def load_tensors(self, source: dict[str, torch.Tensor], metadata: dict[str, str], path: str | os.PathLike,
                     strict: bool = True, require_head: bool = False) -> LoadReport:
        """``load_checkpoint``'s work for a segmenter: the backbone part through the backbone layouts we read
        (the authors', timm's, Hugging Face's), the heads by mmsegmentation's names."""
        network, rest, layout = split_segmenter_state(source)
        target = {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.model.")}
        differs = sorted(set(rest) ^ set(target))
        differs += sorted(k for k in set(rest) & set(target) if rest[k].shape != target[k].shape)
        if strict and differs:
            raise CheckpointError(f"{path} ({layout} layout) does not fit this segmenter (heads of other classes or "
                                  f"widths, or per-output norms on one side only): {', '.join(differs[:6])}")
        report = load_tensors(self.backbone.model, network, metadata, path, strict)
        self.load_state_dict({k: v for k, v in rest.items() if k in target and v.shape == target[k].shape},
                             strict=False)
        report.source_format = f"{layout}; backbone {report.source_format}"
        return report


def create_segmenter(backbone: str, num_classes: int, *, out_norms: bool | None = None, channels: int = 512,
                     aux_channels: int = 256, auxiliary: bool = True, pretrained_backbone: str | None = None,
                     **kwargs: Any) -> Segmenter:
    """UperNet over registered model ``backbone`` (``kwargs``: its ``create_model`` options, e.g.
    ``drop_path_rate``); ``out_norms`` and ``pretrained_backbone`` as ``dense.pyramid.pyramid_backbone``'s."""
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    features = pyramid_backbone(backbone, out_norms, pretrained_backbone, **kwargs)
    return Segmenter(features, num_classes, channels, aux_channels, auxiliary=auxiliary)
