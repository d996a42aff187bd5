"""The semantic-segmentation task: UperNet over the run's backbone (``dense.create_segmenter``), trained with
per-pixel cross-entropy (ignore index 255) plus 0.4 x the auxiliary head's, the authors' stage- or layer-wise lr
decay, and judged by the held-out mIoU (higher is better) from one confusion matrix over the whole split."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint, read_checkpoint
from ..config import TrainConfig
from ..data import build_loader
from ..data.seg_transforms import SegmentationEvalTransform, SegmentationTrainTransform
from ..data.segmentation import IGNORE_INDEX, segmentation_split
from ..dense import Segmenter, create_segmenter
from ..engine.evaluate import evaluate_segmentation, pairs_as_lists
from ..engine.task import RunContext, Task, TaskData, model_options
from ..optim import default_num_layers, dense_lr_scales


class SegmentationTask(Task):
    """Images and index masks in, per-pixel class logits out; the best held-out mIoU (model or EMA) is kept."""

    name = "segmentation"
    metric = "miou"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.ema_decay = cfg.ema_decay

    def model_options(self) -> dict[str, Any]:
        return model_options(self.cfg)

    def build_data(self, ctx: RunContext) -> TaskData:
        cfg, pre = self.cfg, ctx.preprocessing
        train_tf = SegmentationTrainTransform(pre.img_size, pre.mean, pre.std, cfg.base_size, cfg.ratio_range,
                                              cfg.cat_max_ratio, cfg.hflip)
        train, classes = segmentation_split(cfg.data, "train", train_tf, cfg.skip_bad_images)
        val, _ = segmentation_split(cfg.data, "val", SegmentationEvalTransform(pre.mean, pre.std, cfg.base_size),
                                    cfg.skip_bad_images)
        self.num_classes = len(classes)
        self.val_loader = build_loader(val, cfg.batch_size, train=False, seed=cfg.seed, num_workers=cfg.workers,
                                       distributed=ctx.dist.enabled, collate_fn=pairs_as_lists)
        return TaskData(train, val, classes, pre, None, train.bad_images + val.bad_images)

    def build_model(self, data: TaskData) -> Segmenter:
        """UperNet for the data's classes; ``init`` is a segmenter's checkpoint (whole) or a classifier's (the
        backbone's weights)."""
        cfg = self.cfg
        init = cfg.init_file()
        whole = init is not None and any(k.startswith("decode_head.") for k in read_checkpoint(init)[0])
        model = create_segmenter(cfg.model, len(data.class_names), channels=cfg.decode_channels,
                                 aux_channels=max(cfg.aux_channels, 1), auxiliary=cfg.aux_channels > 0,
                                 pretrained_backbone=None if whole else init, **self.model_options())
        if whole:
            load_checkpoint(model, init)
        return model

    def lr_scales(self, model: nn.Module) -> dict[str, float] | None:
        """The authors' dense decay (``cfg.decay_type``) at rate ``cfg.layer_decay``; none without a rate."""
        cfg = self.cfg
        if cfg.layer_decay is None:
            return None
        network = model.backbone.model
        depth = len(getattr(network, network.stages_attr)[2].blocks)
        return dense_lr_scales([n for n, _ in model.named_parameters()], cfg.layer_decay, cfg.decay_type,
                               cfg.num_layers or default_num_layers(depth))

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        images, masks = batch
        out = net(images)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE_INDEX)
        if aux is not None:
            loss = loss + self.cfg.aux_weight * F.cross_entropy(aux.float(), masks, ignore_index=IGNORE_INDEX)
        return loss

    def evaluate(self, ctx: RunContext, model: nn.Module) -> dict[str, float]:
        result = evaluate_segmentation(model, self.val_loader, self.num_classes, ctx.device, ctx.precision, ctx.dist)
        return {"miou": result.miou, "aacc": result.aacc, "macc": result.macc}

    def metadata(self, data: TaskData) -> dict[str, Any]:
        cfg = self.cfg
        return {**super().metadata(data), "class_names": data.class_names, **data.preprocessing.to_metadata(),
                "segmenter": {"decode_channels": cfg.decode_channels, "aux_channels": cfg.aux_channels,
                              "base_size": cfg.base_size}}

    def summary(self, row: dict) -> str:
        ema = f"  EMA {row['ema_val_miou']:.2f}%" if self.ema_decay else ""
        return f"  val mIoU {row['val_miou']:.2f}%  aAcc {row['val_aacc']:.2f}%{ema}"

    def result_line(self, best_score: float | None, best_epoch: int, last: dict, run_dir: Path) -> str:
        return f"best val mIoU {best_score:.2f}% at epoch {best_epoch}"
