"""Object detectors and instance segmenters on any hierarchical backbone we build: torchvision's Mask R-CNN,
Faster R-CNN, RetinaNet and FCOS (its RPN, RoIAlign, box coder, losses and NMS), and Cascade Mask R-CNN (ours,
from the same pieces: ``dense.cascade``), over our backbone with the authors' per-output norms and an FPN
(``dense.fpn``).

    model = create_detector("mask_rcnn", "convnext_tiny", num_classes=80)
    losses = model.train()(images, targets)   # a dict of losses (lists of [3, H, W] images in [0, 1])
    found = model.eval()(images)              # per image: boxes (x1, y1, x2, y2), labels, scores (+ masks)

Labels are 1..num_classes (0 is the background, as torchvision's detectors count); the detector resizes each
image to ``min_size`` on its short side (at most ``max_size`` on the long one; a tuple of sizes picks one at
random per image in training: multi-scale training) and normalises it with the backbone's mean and std.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, MaskRCNN, RetinaNet
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from ..checkpoint import LoadReport, load_tensors
from ..errors import CheckpointError, ConfigError
from .cascade import CascadeRoIHeads
from .detection_layouts import split_detector_state
from .fpn import FPNBackbone
from .pyramid import pyramid_backbone


class Detector:
    """What our detectors add to torchvision's: the backbone's name and options (what rebuilds the network from
    a checkpoint), its preprocessing, gradient checkpointing, and checkpoint loading in several layouts."""

    kind: ClassVar[str]
    levels: ClassVar[str] = "pool"  # the FPN's fifth level (``FPNBackbone``)
    backbone: FPNBackbone

    def describe(self, network: nn.Module, num_classes: int) -> None:
        self.num_classes = num_classes  # object classes, without the background
        self.model_name = network.model_name
        self.model_kwargs = dict(network.model_kwargs)
        self.data_config = network.data_config
        self.in_chans = network.in_chans

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.body.set_grad_checkpointing(enable)

    def load_tensors(self, source: dict[str, torch.Tensor], metadata: dict[str, str], path: str | os.PathLike,
                     strict: bool = True, require_head: bool = False) -> LoadReport:
        """``load_checkpoint``'s work for a detector: the backbone network through the layouts its own
        checkpoints come in (ours, torchvision's, the authors', timm's), the neck and heads by torchvision's
        names (``dense.detection_layouts``). Not strict: what fits loads, and what did not is listed in a
        warning (e.g. another data set's class-specific predictors, which keep their fresh initialisation)."""
        state = split_detector_state(source)
        rest, layout = state.rest, state.layout
        target = {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.body.model.")}
        differs = state.unplaced + sorted(state.source_names.get(k, k) for k in set(rest) - set(target))
        differs += sorted(set(target) - set(rest))
        differs += sorted(k for k in set(rest) & set(target) if rest[k].shape != target[k].shape)
        if strict and differs:
            raise CheckpointError(f"{path} ({layout} layout) does not fit this {self.kind} detector (another "
                                  f"detector, other classes, or per-output norms on one side only): "
                                  f"{', '.join(differs[:6])}{' ...' if len(differs) > 6 else ''}")
        report = load_tensors(self.backbone.body.model, state.network, metadata, path, strict)
        self.load_state_dict({k: v for k, v in rest.items() if k in target and v.shape == target[k].shape},
                             strict=False)
        if differs:
            warnings.warn(f"{os.fspath(path)}: not loaded ({len(differs)}: the detector keeps its own): "
                          f"{', '.join(differs[:12])}{' ...' if len(differs) > 12 else ''}", stacklevel=2)
        report.source_format = f"{layout}; backbone {report.source_format}"
        return report


class MaskRCNNDetector(Detector, MaskRCNN):
    """Mask R-CNN (boxes and instance masks)."""

    kind = "mask_rcnn"


class CascadeMaskRCNNDetector(Detector, MaskRCNN):
    """Cascade Mask R-CNN: torchvision's Mask R-CNN (transform, RPN) with our three-stage RoI heads
    (``dense.cascade``); torchvision's box options (``box_batch_size_per_image``, ``box_positive_fraction``,
    ``box_score_thresh``, ``box_nms_thresh``, ``box_detections_per_img``) apply to every stage."""

    kind = "cascade_mask_rcnn"

    def __init__(self, backbone: FPNBackbone, num_classes: int, **kwargs: Any) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        options = {name: kwargs[f"box_{name}"] for name in ("batch_size_per_image", "positive_fraction",
                                                             "score_thresh", "nms_thresh", "detections_per_img")
                   if f"box_{name}" in kwargs}
        self.roi_heads = CascadeRoIHeads(backbone.out_channels, num_classes, **options)


class FasterRCNNDetector(Detector, FasterRCNN):
    """Faster R-CNN (boxes)."""

    kind = "faster_rcnn"


class RetinaNetDetector(Detector, RetinaNet):
    """RetinaNet (one stage, focal loss; P3-P7)."""

    kind = "retinanet"
    levels = "p6p7"


class FCOSDetector(Detector, FCOS):
    """FCOS (one stage, anchor free; P3-P7)."""

    kind = "fcos"
    levels = "p6p7"


DETECTORS: dict[str, type[Detector]] = {d.kind: d for d in (MaskRCNNDetector, CascadeMaskRCNNDetector,
                                                            FasterRCNNDetector, RetinaNetDetector, FCOSDetector)}
MASKED = ("mask_rcnn", "cascade_mask_rcnn")  # the detectors that also segment instances


def create_detector(kind: str, backbone: str, num_classes: int, *, out_norms: bool | None = None,
                    pretrained_backbone: str | None = None, min_size: int | tuple[int, ...] = 800,
                    max_size: int = 1333, fpn_channels: int = 256, detector_options: dict[str, Any] | None = None,
                    **kwargs: Any) -> nn.Module:
    """Detector ``kind`` (``DETECTORS``) over registered model ``backbone`` for ``num_classes`` object classes.
    ``kwargs``: the backbone's ``create_model`` options (e.g. ``drop_path_rate``); ``out_norms`` and
    ``pretrained_backbone`` as ``dense.pyramid.pyramid_backbone``'s; ``fpn_channels``: the FPN's width (the
    papers' 256), also the mask head's; ``detector_options``: torchvision's own options of that detector (e.g.
    ``box_batch_size_per_image``, ``rpn_post_nms_top_n_train``, ``box_score_thresh``)."""
    if kind not in DETECTORS:
        raise ConfigError(f"unknown detector {kind!r}; choose from {', '.join(DETECTORS)}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be at least 1, got {num_classes}")
    detector = DETECTORS[kind]
    body = pyramid_backbone(backbone, out_norms, pretrained_backbone, **kwargs)
    network = body.model
    config = network.data_config
    model = detector(FPNBackbone(body, fpn_channels, detector.levels), num_classes=num_classes + 1,
                     min_size=min_size, max_size=max_size, image_mean=list(config.mean), image_std=list(config.std),
                     **(detector_options or {}))
    if kind == "mask_rcnn" and fpn_channels != 256:  # torchvision builds its mask head 256 wide: the FPN's here
        model.roi_heads.mask_head = MaskRCNNHeads(fpn_channels, [fpn_channels] * 4, 1)
        model.roi_heads.mask_predictor = MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes + 1)
    model.describe(network, num_classes)
    return model
