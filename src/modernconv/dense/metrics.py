"""Segmentation metrics as mmsegmentation computes them: one confusion matrix accumulated over the whole data set
(pixels labelled ``ignore_index`` left out), then per-class IoU = TP / (TP + FP + FN) and accuracy = TP / labelled
pixels, mIoU and mAcc their means over the classes that occur (a class with no labelled and no predicted pixel
has no IoU and is left out of the mean, as mmseg's nanmean does), aAcc the share of labelled pixels right.
Not a mean of per-batch or per-image scores, which weighs small images as much as large ones."""
from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = 255


def confusion_matrix(prediction: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``counts[t, p]``: pixels of class t predicted as p (int64, on the inputs' device); ignored pixels and labels
    outside 0..num_classes-1 are left out."""
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    pairs = target[keep].long() * num_classes + prediction[keep].long()
    return torch.bincount(pairs, minlength=num_classes ** 2).view(num_classes, num_classes)


@dataclass
class SegmentationResult:
    """Dataset-level scores in percent; ``per_class_iou`` / ``per_class_acc`` hold None for a class that does not
    occur (no IoU to take)."""

    miou: float
    aacc: float
    macc: float
    per_class_iou: list[float | None]
    per_class_acc: list[float | None]
    count: int  # images

    @classmethod
    def from_confusion(cls, confusion: torch.Tensor, count: int) -> "SegmentationResult":
        confusion = confusion.double()
        tp = confusion.diag()
        labelled, predicted = confusion.sum(1), confusion.sum(0)
        union = labelled + predicted - tp
        iou = [100 * float(t / u) if u > 0 else None for t, u in zip(tp, union)]
        acc = [100 * float(t / n) if n > 0 else None for t, n in zip(tp, labelled)]
        total = float(labelled.sum())
        return cls(_mean(iou), 100 * float(tp.sum()) / total if total else float("nan"), _mean(acc), iou, acc,
                   count)

    def report(self, class_names: list[str]) -> dict:
        """What `modernconv eval --json` prints."""
        return {"miou": self.miou, "aacc": self.aacc, "macc": self.macc,
                "per_class_iou": dict(zip(class_names, self.per_class_iou)), "count": self.count}


def _mean(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else float("nan")
