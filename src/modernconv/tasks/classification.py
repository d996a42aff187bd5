"""The classification task: the papers' supervised recipe (augmentation, MixUp/CutMix, label smoothing), judged by
held-out top-1 accuracy (higher is better), for images and every other modality."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint
from ..config import TrainConfig
from ..data import build_loader, build_mixing, soft_target_cross_entropy, train_transform
from ..engine.distributed import all_reduce_sum
from ..engine.evaluate import evaluate
from ..engine.task import RunContext, Task, TaskData, model_options
from ..modalities import ModalitySpec, create_modality_model, get_modality


def balanced_weights(dataset: Any, num_classes: int) -> torch.Tensor:
    """sklearn's "balanced" class weights of a classification data set: n / (classes x count of the class)."""
    labels = getattr(dataset, "targets", None)
    labels = dataset.labels if labels is None else labels  # ImageFolder's targets; our sets' labels
    counts = torch.bincount(torch.as_tensor([int(label) for label in labels]), minlength=num_classes).double()
    return (counts.sum() / (num_classes * counts.clamp(min=1))).float()


class ClassificationTask(Task):
    """Samples and labels in, class logits out; the best validation top-1 (model or EMA) is kept."""

    name = "classification"
    metric = "top1"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.ema_decay = cfg.ema_decay
        self.layer_decay = cfg.layer_decay
        self.train_hits: torch.Tensor | None = None  # correct training samples of the epoch so far (on the device)
        self.train_seen = 0

    def model_options(self) -> dict[str, Any]:
        kwargs = model_options(self.cfg)
        if self.cfg.head_init_scale != 1.0:
            kwargs["head_init_scale"] = self.cfg.head_init_scale
        kwargs["in_chans"] = self.modality.channels(kwargs["in_chans"])
        return kwargs

    @property
    def modality(self) -> ModalitySpec:
        return get_modality(self.cfg.modality)

    def build_data(self, ctx: RunContext) -> TaskData:
        """Both splits in the modality's reading (images: through the recipe's train and eval transforms), its
        options completed by the data."""
        cfg = self.cfg
        pre = ctx.preprocessing.replace(crop_pct=cfg.crop_pct or ctx.preprocessing.crop_pct)
        train_tf = train_transform(pre.img_size, pre.mean, pre.std, scale=cfg.scale, hflip=cfg.hflip,
                                   randaugment_magnitude=cfg.randaugment_magnitude, randaugment_ops=cfg.randaugment_ops,
                                   color_jitter=cfg.color_jitter, random_erasing=cfg.random_erasing,
                                   interpolation=pre.interpolation, auto_augment=cfg.auto_augment)
        options = self.modality.make_options(cfg.modality_options, in_chans=cfg.in_chans,
                                             synthetic_samples=cfg.synthetic_samples,
                                             synthetic_classes=cfg.synthetic_classes, val_split=cfg.val_split,
                                             split_seed=cfg.seed)
        train, classes, options = self.modality.split(cfg.data, "train", options, skip_bad=cfg.skip_bad_images,
                                                      transform=train_tf)
        val, _, options = self.modality.split(cfg.data, "val", options, class_names=classes,
                                              skip_bad=cfg.skip_bad_images, transform=pre.eval_transform())
        self.num_classes = len(classes)
        self.class_weights = balanced_weights(train, self.num_classes) if cfg.balance else None
        self.mixing = build_mixing(cfg.mixup, cfg.cutmix, self.num_classes, cfg.mix_prob, cfg.mix_switch_prob,
                                   cfg.label_smoothing)
        self.val_loader = build_loader(val, cfg.batch_size, train=False, seed=cfg.seed, num_workers=cfg.workers,
                                       distributed=ctx.dist.enabled)
        return TaskData(train, val, classes, pre, options, train.bad_images + val.bad_images)

    def build_model(self, data: TaskData) -> nn.Module:
        """The classifier for the data's classes (behind its modality's adapter), with the ``init`` weights."""
        model = create_modality_model(self.cfg.model, self.cfg.modality, data.modality_options,
                                      num_classes=len(data.class_names), **self.model_options())
        if self.cfg.init:
            load_checkpoint(model, self.cfg.init_file())
        return model

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        images, labels = batch
        if self.mixing is not None:
            images, labels = self.mixing(images, labels)
        logits = net(images)
        target = labels.argmax(1) if labels.ndim == 2 else labels  # mixed: the label with the larger share
        hits = (logits.detach().argmax(1) == target).sum()  # summed on the device: no host sync a step
        self.train_hits = hits if self.train_hits is None else self.train_hits + hits
        self.train_seen += len(target)
        if self.class_weights is not None:  # (a mixed batch's soft targets already hold the smoothing)
            return F.cross_entropy(logits, labels, weight=self.class_weights.to(logits.device),
                                   label_smoothing=0.0 if labels.ndim == 2 else self.cfg.label_smoothing)
        if labels.ndim == 2:
            return soft_target_cross_entropy(logits, labels)
        return F.cross_entropy(logits, labels, label_smoothing=self.cfg.label_smoothing)

    def train_metrics(self, ctx: RunContext) -> dict[str, float]:
        """Top-1 over the epoch's training batches, as they were trained (augmented; mixed batches count the
        label with the larger share)."""
        if self.train_hits is None:
            return {}
        seen = self.train_hits.new_tensor(self.train_seen, dtype=torch.float64)
        counts = torch.stack([self.train_hits.double(), seen])
        hits, seen = all_reduce_sum(counts, ctx.dist).tolist()
        self.train_hits, self.train_seen = None, 0
        return {"train_top1": 100.0 * hits / max(seen, 1.0)}

    def evaluate(self, ctx: RunContext, model: nn.Module) -> dict[str, float]:
        return evaluate(model, self.val_loader, self.num_classes, ctx.device, ctx.precision,
                        ctx.memory_format == torch.channels_last, ctx.dist).summary()

    def metadata(self, data: TaskData) -> dict[str, Any]:
        return {**super().metadata(data), "class_names": data.class_names, **data.preprocessing.to_metadata(),
                **self.modality.metadata(data.modality_options)}

    def summary(self, row: dict) -> str:
        train = f"  train top-1 {row['train_top1']:.2f}%" if "train_top1" in row else ""
        return (f"{train}  val loss {row['val_loss']:.4f}  val top-1 {row['val_top1']:.2f}%"
                + (f"  EMA {row['ema_val_top1']:.2f}%" if self.ema_decay else ""))

    def result_line(self, best_score: float | None, best_epoch: int, last: dict, run_dir) -> str:
        return f"best val top-1 {best_score:.2f}% at epoch {best_epoch}"

