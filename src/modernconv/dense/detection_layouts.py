"""The checkpoint layouts of a detector, split into what the backbone network's own layouts cover and the rest
under torchvision's names (``backbone.fpn.*``, ``rpn.*``, ``roi_heads.*``, ``head.*``) plus our per-output norms
``backbone.body.norm{i}``:

- ours: ``backbone.body.model.*`` (the network, our names), ``backbone.body.norm{i}.*``;
- torchvision's detection models: ``backbone.body.*`` in torchvision's network layout (its ResNet's
  ``conv1``, ``layer1``... load into the roadmap's ResNet-50 step);
- the authors' mmdetection 2.x files (ConvNeXt, UniRepLKNet; Mask R-CNN, Faster R-CNN, Cascade Mask R-CNN):
  ``backbone.*`` in the authors' network layout with ``backbone.norm{i}``, ``neck.lateral_convs`` / ``fpn_convs``,
  ``rpn_head.*``, ``roi_head.bbox_head[.{stage}].*`` (background last in ``fc_cls``, no background in the
  class-wise ``fc_reg``) and ``roi_head.mask_head[.{stage}].*`` (no background channel). Their class orders are turned into torchvision's (background
  first; its unused regression rows and mask channel zero). What has no place in the detector (a cascade's
  per-stage heads in a Mask R-CNN) is listed, not loaded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ..errors import CheckpointError

BODY = "backbone.body."
HEAD_PREFIXES = ("rpn.", "roi_heads.", "head.classification_head.")  # what only a detector's checkpoint holds
MMDET_HEADS = ("neck.", "rpn_head.", "roi_head.", "bbox_head.")
MMDET_NAMES = [  # (mmdetection's name pattern, torchvision's), the module part before .weight / .bias
    (r"^neck\.lateral_convs\.(\d+)\.conv$", r"backbone.fpn.inner_blocks.\1.0"),
    (r"^neck\.fpn_convs\.(\d+)\.conv$", r"backbone.fpn.layer_blocks.\1.0"),
    (r"^rpn_head\.rpn_conv$", "rpn.head.conv.0.0"),
    (r"^rpn_head\.rpn_cls$", "rpn.head.cls_logits"),
    (r"^rpn_head\.rpn_reg$", "rpn.head.bbox_pred"),
    (r"^roi_head\.bbox_head\.shared_fcs\.0$", "roi_heads.box_head.fc6"),
    (r"^roi_head\.bbox_head\.shared_fcs\.1$", "roi_heads.box_head.fc7"),
    (r"^roi_head\.bbox_head\.fc_cls$", "roi_heads.box_predictor.cls_score"),
    (r"^roi_head\.bbox_head\.fc_reg$", "roi_heads.box_predictor.bbox_pred"),
    (r"^roi_head\.mask_head\.convs\.(\d+)\.conv$", r"roi_heads.mask_head.\1.0"),
    (r"^roi_head\.mask_head\.upsample$", "roi_heads.mask_predictor.conv5_mask"),
    (r"^roi_head\.mask_head\.conv_logits$", "roi_heads.mask_predictor.mask_fcn_logits"),
    # Cascade Mask R-CNN: a box head (4 conv-BN + 1 fc) and a mask head per stage
    (r"^roi_head\.bbox_head\.(\d)\.shared_convs\.(\d)\.conv$", r"roi_heads.stages.\1.box_head.\2.0"),
    (r"^roi_head\.bbox_head\.(\d)\.shared_convs\.(\d)\.bn$", r"roi_heads.stages.\1.box_head.\2.1"),
    (r"^roi_head\.bbox_head\.(\d)\.shared_fcs\.0$", r"roi_heads.stages.\1.box_head.5"),
    (r"^roi_head\.bbox_head\.(\d)\.fc_cls$", r"roi_heads.stages.\1.box_predictor.cls_score"),
    (r"^roi_head\.bbox_head\.(\d)\.fc_reg$", r"roi_heads.stages.\1.box_predictor.bbox_pred"),
    (r"^roi_head\.mask_head\.(\d)\.convs\.(\d)\.conv$", r"roi_heads.stages.\1.mask_head.\2.0"),
    (r"^roi_head\.mask_head\.(\d)\.upsample$", r"roi_heads.stages.\1.mask_predictor.conv5_mask"),
    (r"^roi_head\.mask_head\.(\d)\.conv_logits$", r"roi_heads.stages.\1.mask_predictor.mask_fcn_logits"),
]


@dataclass
class DetectorState:
    """A detector checkpoint split: the backbone network's tensors (in whatever layout they came), the rest under
    torchvision's names, the layout, the source's keys with no place in any detector, and each renamed key's
    name in the source (for messages)."""

    network: dict[str, torch.Tensor]
    rest: dict[str, torch.Tensor]
    layout: str
    unplaced: list[str] = field(default_factory=list)
    source_names: dict[str, str] = field(default_factory=dict)


def split_detector_state(source: dict[str, torch.Tensor]) -> DetectorState:
    """``source`` split by the layout it comes in (see the module docstring)."""
    mmdet = any(k.startswith(MMDET_HEADS) for k in source)
    if not mmdet and not any(k.startswith(HEAD_PREFIXES) for k in source):
        raise CheckpointError("not a detection checkpoint (no rpn.*, roi_heads.* or head.classification_head.* "
                              "weights): to start from a classification checkpoint give it as the backbone's "
                              "weights (--init)")
    if mmdet:
        return _from_mmdet(source)
    ours = any(k.startswith(BODY + "model.") for k in source)
    network, rest = {}, {}
    for key, value in source.items():
        name = key[len(BODY):] if key.startswith(BODY) else None
        if name is None or re.match(r"^norm\d+\.", name):
            rest[key] = value
        else:
            network[name.removeprefix("model.") if ours else name] = value
    return DetectorState(network, rest, "modernconv" if ours else "torchvision")


def _from_mmdet(source: dict[str, torch.Tensor]) -> DetectorState:
    state = DetectorState({}, {}, "mmdetection (the authors')")
    for key, value in source.items():
        if key.startswith("backbone."):
            name = key[len("backbone."):]
            if re.match(r"^norm\d+\.", name):
                state.rest[BODY + name] = value
            else:
                state.network[name] = value
            continue
        module, _, param = key.rpartition(".")
        for pattern, target in MMDET_NAMES:
            if re.match(pattern, module):
                ours = f"{re.sub(pattern, target, module)}.{param}"
                state.rest[ours], state.source_names[ours] = _background_first(module, value), key
                break
        else:
            state.unplaced.append(key)
    return state


def _background_first(module: str, value: torch.Tensor) -> torch.Tensor:
    """mmdetection's class-indexed rows in torchvision's order: the background first (mmdetection puts the
    classifier's last and has no regression rows or mask channel for it: zeros here)."""
    if module.endswith("fc_cls"):
        return torch.cat([value[-1:], value[:-1]])
    if module.endswith("fc_reg") or module.endswith("conv_logits"):
        rows = 4 if module.endswith("fc_reg") else 1
        return torch.cat([value.new_zeros(rows, *value.shape[1:]), value])
    return value
