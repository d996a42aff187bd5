"""The classification task: the papers' supervised recipe (augmentation, MixUp/CutMix, label smoothing), evaluated
after every epoch (and its EMA), keeping the best weights."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import TrainConfig
from ..data import DataSplit, build_datasets, build_loader, build_mixing, soft_target_cross_entropy, train_transform
from ..modalities import IMAGE, create_modality_model, get_modality, modality_split
from ..modalities.weights import load_modality_checkpoint
from ..models import create_model
from .evaluate import EvalResult, evaluate
from .state import BEST_FILE, Progress
from .task import RunContext, Task, model_options


class ClassificationTask(Task):
    """Images and labels in, class logits out; the best validation top-1 (model or EMA) is kept."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.ema_decay = cfg.ema_decay
        self.layer_decay = cfg.layer_decay

    def model_options(self) -> dict[str, Any]:
        kwargs = model_options(self.cfg)
        if self.cfg.head_init_scale != 1.0:
            kwargs["head_init_scale"] = self.cfg.head_init_scale
        if self.cfg.modality != IMAGE:
            kwargs["in_chans"] = get_modality(self.cfg.modality).in_chans
        return kwargs

    def build_data(self, ctx: RunContext) -> DataSplit:
        cfg = self.cfg
        self.preprocessing = ctx.preprocessing
        if cfg.modality != IMAGE:
            return self._loaders(ctx, self._modality_data())
        self.preprocessing = pre = ctx.preprocessing.replace(crop_pct=cfg.crop_pct or ctx.preprocessing.crop_pct)
        train_tf = train_transform(pre.img_size, pre.mean, pre.std, scale=cfg.scale, hflip=cfg.hflip,
                                   randaugment_magnitude=cfg.randaugment_magnitude, randaugment_ops=cfg.randaugment_ops,
                                   color_jitter=cfg.color_jitter, random_erasing=cfg.random_erasing,
                                   interpolation=pre.interpolation, auto_augment=cfg.auto_augment)
        split = build_datasets(cfg.data, pre.img_size, cfg.in_chans, cfg.skip_bad_images, cfg.synthetic_samples,
                               cfg.synthetic_classes, train_transform=train_tf, eval_transform=pre.eval_transform())
        return self._loaders(ctx, split)

    def _modality_data(self) -> DataSplit:
        """The train and val splits of a non-image modality; its options completed by the data."""
        cfg = self.cfg
        options = get_modality(cfg.modality).make_options(cfg.modality_options)
        train, classes, options = modality_split(cfg.modality, cfg.data, "train", options,
                                                 skip_bad=cfg.skip_bad_images)
        val, _, self.modality_options = modality_split(cfg.modality, cfg.data, "val", options, class_names=classes,
                                                       skip_bad=cfg.skip_bad_images)
        return DataSplit(train, val, classes)

    def _loaders(self, ctx: RunContext, split: DataSplit) -> DataSplit:
        cfg = self.cfg
        self.split = split
        self.num_classes = len(split.class_names)
        self.mixing = build_mixing(cfg.mixup, cfg.cutmix, self.num_classes, cfg.mix_prob, cfg.mix_switch_prob,
                                   cfg.label_smoothing)
        self.val_loader = build_loader(split.val, cfg.batch_size, train=False, seed=cfg.seed,
                                       num_workers=cfg.workers, distributed=ctx.dist.enabled)
        return split

    def build_model(self) -> nn.Module:
        """The classifier for the data's classes (behind its modality's adapter), with the ``init`` weights."""
        if self.cfg.modality != IMAGE:
            model = create_modality_model(self.cfg.model, self.cfg.modality, self.modality_options,
                                          num_classes=self.num_classes, **self.model_options())
            if self.cfg.init:
                load_modality_checkpoint(model, self.cfg.init)
            return model
        model = create_model(self.cfg.model, num_classes=self.num_classes, **self.model_options())
        if self.cfg.init:
            load_checkpoint(model, self.cfg.init)
        return model

    def loss(self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.mixing is not None:
            images, labels = self.mixing(images, labels)
        logits = net(images)
        if labels.ndim == 2:
            return soft_target_cross_entropy(logits, labels)
        return F.cross_entropy(logits, labels, label_smoothing=self.cfg.label_smoothing)

    def _evaluate(self, ctx: RunContext, model: nn.Module) -> EvalResult:
        return evaluate(model, self.val_loader, self.num_classes, ctx.device, ctx.precision,
                        ctx.memory_format == torch.channels_last, ctx.dist)

    def end_epoch(self, ctx: RunContext, model: nn.Module, ema: nn.Module | None, epoch: int, row: dict,
                  progress: Progress) -> None:
        """Evaluate the model (and its EMA) into ``row`` and keep the best weights."""
        row.update({f"val_{k}": v for k, v in self._evaluate(ctx, model).summary().items()})
        top1, best_model = row["val_top1"], model
        if ema is not None:
            row.update({f"ema_val_{k}": v for k, v in self._evaluate(ctx, ema).summary().items()})
            if row["ema_val_top1"] > top1:
                top1, best_model = row["ema_val_top1"], ema
        if top1 > progress.best_top1:
            progress.best_top1, progress.best_epoch = top1, row["epoch"]
            if ctx.dist.is_main:
                save_checkpoint(best_model, ctx.run_dir / BEST_FILE, metadata={
                    **self.metadata(), "epoch": row["epoch"], "top1": top1,
                    "weights": "ema" if best_model is not model else "model"})

    def metadata(self) -> dict[str, Any]:
        meta = {"class_names": self.split.class_names, **self.preprocessing.to_metadata()}
        if self.cfg.modality != IMAGE:
            meta.update(modality=self.cfg.modality, modality_options=dataclasses.asdict(self.modality_options))
        return meta

    def summary(self, row: dict) -> str:
        return f"  val top-1 {row['val_top1']:.2f}%" + (f"  EMA {row['ema_val_top1']:.2f}%" if self.ema_decay else "")
