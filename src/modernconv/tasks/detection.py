"""The detection task: a detector (``dense.create_detector``: Mask R-CNN by default) over the run's backbone and an
FPN, trained on the sum of its losses with the authors' layer-wise lr decay, and judged by the held-out COCO box
AP (higher is better; mask AP beside it for Mask R-CNN), scored with pycocotools over the whole split."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_checkpoint, read_checkpoint
from ..config import TrainConfig
from ..data import build_loader
from ..data.coco import pycocotools_mask
from ..data.detection import DetectionSet, detection_split, detection_transform
from ..dense import create_detector
from ..dense.detection_layouts import HEAD_PREFIXES
from ..dense.detectors import MASKED
from ..engine.evaluate import evaluate_detection, pairs_as_lists
from ..engine.task import RunContext, Task, TaskData, model_options
from ..optim import default_num_layers, dense_lr_scales


class DetectionTask(Task):
    """Images with boxes (and masks) in, detections out; the best held-out box AP (model or EMA) is kept."""

    name = "detection"
    metric = "bbox_ap"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.ema_decay = cfg.ema_decay
        self.masks = cfg.detector in MASKED

    def model_options(self) -> dict[str, Any]:
        return model_options(self.cfg)

    def build_data(self, ctx: RunContext) -> TaskData:
        cfg = self.cfg
        pycocotools_mask()  # masks and the evaluation need it: say so before anything runs
        transform = detection_transform(True, cfg.hflip, cfg.scale_jitter, max(cfg.min_size))
        train = detection_split(cfg.data, "train", transform, self.masks, cfg.keep_empty, cfg.skip_bad_images)
        self.val: DetectionSet = detection_split(cfg.data, "val", detection_transform(False), self.masks, True,
                                                 cfg.skip_bad_images)
        self.val_loader = build_loader(self.val, cfg.batch_size, train=False, seed=cfg.seed, num_workers=cfg.workers,
                                       distributed=ctx.dist.enabled, collate_fn=pairs_as_lists)
        pre = ctx.preprocessing.replace(img_size=max(cfg.min_size))  # the detector resizes to min_size itself
        return TaskData(train, self.val, list(train.class_names), pre, None, train.bad_images + self.val.bad_images)

    def build_model(self, data: TaskData) -> nn.Module:
        """The detector for the data's classes; ``init`` is a detector's checkpoint (whatever fits loads: another
        data set's class-specific predictors keep their fresh initialisation, with a warning listing them) or a
        classifier's (the backbone's weights)."""
        cfg, init = self.cfg, self.cfg.init_file()
        whole = init is not None and any(k.startswith(HEAD_PREFIXES) for k in read_checkpoint(init)[0])
        model = create_detector(cfg.detector, cfg.model, len(data.class_names), min_size=tuple(cfg.min_size),
                                max_size=cfg.max_size, fpn_channels=cfg.fpn_channels,
                                pretrained_backbone=None if whole else init, detector_options=cfg.detector_options,
                                **self.model_options())
        if whole:
            load_checkpoint(model, init, strict=False)
        return model

    def collate_fn(self):
        return pairs_as_lists

    def to_device(self, batch: Any, ctx: RunContext) -> Any:
        images, targets = batch
        return ([image.to(ctx.device, non_blocking=True) for image in images],
                [{k: v.to(ctx.device) if isinstance(v, torch.Tensor) else v for k, v in t.items()} for t in targets])

    def batch_size(self, batch: Any) -> int:
        return len(batch[0])

    def lr_scales(self, model: nn.Module) -> dict[str, float] | None:
        """The authors' dense decay (``cfg.decay_type``) at rate ``cfg.layer_decay``; none without a rate."""
        cfg = self.cfg
        if cfg.layer_decay is None:
            return None
        network = model.backbone.body.model
        depth = len(getattr(network, network.stages_attr)[2].blocks)
        return dense_lr_scales([n for n, _ in model.named_parameters()], cfg.layer_decay, cfg.decay_type,
                               cfg.num_layers or default_num_layers(depth))

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        losses = net(*batch)
        return sum(losses.values())

    def evaluate(self, ctx: RunContext, model: nn.Module) -> dict[str, float]:
        scores, _ = evaluate_detection(model, self.val_loader, self.val, ctx.device, ctx.precision, ctx.dist,
                                       self.masks)
        return scores

    def metadata(self, data: TaskData) -> dict[str, Any]:
        cfg = self.cfg
        return {**super().metadata(data), "class_names": data.class_names, **data.preprocessing.to_metadata(),
                "detector": {"kind": cfg.detector, "min_size": list(cfg.min_size), "max_size": cfg.max_size,
                             "fpn_channels": cfg.fpn_channels, "options": cfg.detector_options}}

    def summary(self, row: dict) -> str:
        masks = f"  mask AP {row['val_segm_ap']:.2f}" if self.masks else ""
        ema = f"  EMA box AP {row['ema_val_bbox_ap']:.2f}" if self.ema_decay else ""
        return f"  val box AP {row['val_bbox_ap']:.2f} (AP50 {row['val_bbox_ap50']:.2f}){masks}{ema}"

    def result_line(self, best_score: float | None, best_epoch: int, last: dict, run_dir: Path) -> str:
        return f"best val box AP {best_score:.2f} at epoch {best_epoch}"
