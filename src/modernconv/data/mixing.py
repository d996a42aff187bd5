"""Batch-level MixUp / CutMix with label smoothing, producing soft targets, and the matching loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..errors import ConfigError


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(N,) class indices -> (N, K) targets ``(1 - s) * one_hot + s / K`` (timm's convention)."""
    return F.one_hot(labels, num_classes).float() * (1.0 - smoothing) + smoothing / num_classes


class BatchMixer:
    """Smooth the labels, then with probability ``prob`` mix the batch with MixUp or CutMix
    (CutMix chosen with ``switch_prob`` when both are enabled). Returns (images, (N, K) soft targets)."""

    def __init__(self, mix: v2.Transform, num_classes: int, label_smoothing: float) -> None:
        self.mix = mix
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mix(images, smooth_one_hot(labels, self.num_classes, self.label_smoothing))


def build_mixing(mixup_alpha: float, cutmix_alpha: float, num_classes: int, prob: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.0) -> BatchMixer | None:
    """A ``BatchMixer``, or None when both alphas are 0 (then use cross-entropy with ``label_smoothing``)."""
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ConfigError(f"mixup alpha ({mixup_alpha}) and cutmix alpha ({cutmix_alpha}) must be >= 0")
    for name, value in (("mixing prob", prob), ("switch prob", switch_prob)):
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} {value} must be in [0, 1]")
    if not 0 <= label_smoothing < 1:
        raise ConfigError(f"label smoothing {label_smoothing} must be in [0, 1)")
    if num_classes < 2:
        raise ConfigError(f"mixing needs at least 2 classes, got {num_classes}")
    mixup = v2.MixUp(alpha=mixup_alpha, num_classes=num_classes) if mixup_alpha > 0 else None
    cutmix = v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes) if cutmix_alpha > 0 else None
    if mixup and cutmix:
        chosen = v2.RandomChoice([mixup, cutmix], p=[1 - switch_prob, switch_prob])
    else:
        chosen = mixup or cutmix
    if chosen is None:
        return None
    return BatchMixer(v2.RandomApply([chosen], p=prob), num_classes, label_smoothing)


def soft_target_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(targets * log_softmax(logits))``."""
    return torch.sum(-soft_targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
