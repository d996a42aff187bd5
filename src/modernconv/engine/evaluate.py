"""Evaluation: top-1 / top-5 accuracy, loss, per-class accuracy and the confusion matrix of a classifier; MSE and
MAE of a forecaster; mIoU of a segmenter (``dense.metrics``); COCO AP of a detector (``dense.coco_eval``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..data.detection import DetectionSet
from ..dense.coco_eval import coco_scores, to_coco_results
from ..dense.metrics import SegmentationResult, confusion_matrix
from ..dense.inference import SegmentMode, segment
from ..runtime import autocast, eval_mode, to_device
from .distributed import DistInfo, all_reduce_sum, gather_objects


@dataclass
class EvalResult:
    """Accuracies in percent; ``confusion[i, j]`` counts images of class i predicted as j."""

    top1: float
    top5: float
    loss: float
    count: int
    confusion: torch.Tensor = field(repr=False)
    worst: list[tuple[int, int, int, float]] = field(default_factory=list, repr=False)  # see ``evaluate``

    @property
    def per_class(self) -> list[float | None]:
        """Each class's accuracy (percent); None for a class without held-out samples (no accuracy, not 0)."""
        totals = self.confusion.sum(1)
        hits = self.confusion.diag()
        return [100.0 * h / n if n else None for h, n in zip(hits.tolist(), totals.tolist())]

    @property
    def k(self) -> int:
        """The k of ``top5``: 5, or the class count when there are fewer classes."""
        return min(5, self.confusion.shape[0])

    def summary(self) -> dict[str, float]:
        """The per-epoch metrics, the top-k named by the k it measures (``top3`` with three classes)."""
        return {"top1": self.top1, f"top{self.k}": self.top5, "loss": self.loss}

    def classification_report(self) -> tuple[list[dict[str, float]], dict[str, float]]:
        """Precision, recall and F1 (percent) of each class from the confusion matrix, and their macro average
        (scikit-learn's ``classification_report``; a class never predicted has precision 0)."""
        confusion = self.confusion.double()
        hits, truths, guesses = confusion.diag(), confusion.sum(1), confusion.sum(0)
        precision = torch.where(guesses > 0, hits / guesses.clamp(min=1), 0.0)
        recall = torch.where(truths > 0, hits / truths.clamp(min=1), 0.0)
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
        rows = [{"precision": 100 * p, "recall": 100 * r, "f1": 100 * f, "support": int(n)}
                for p, r, f, n in zip(precision.tolist(), recall.tolist(), f1.tolist(), truths.tolist())]
        macro = {"precision": 100 * precision.mean().item(), "recall": 100 * recall.mean().item(),
                 "f1": 100 * f1.mean().item()}
        return rows, macro

    def report(self, class_names: list[str]) -> dict:
        """Everything `modernconv eval --json` prints: top-1, top-k under its true k, loss, image count,
        per-class accuracy, and precision / recall / F1 per class and macro-averaged."""
        rows, macro = self.classification_report()
        return {"top1": self.top1, f"top{self.k}": self.top5, "loss": self.loss, "count": self.count,
                "per_class": dict(zip(class_names, self.per_class)),
                "per_class_report": dict(zip(class_names, rows)), "macro": macro}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device,
             precision: str = "fp32", channels_last: bool = False, dist: DistInfo = DistInfo(),
             keep_worst: int = 0) -> EvalResult:
    """Run ``model`` over ``loader`` (summed over processes when distributed). ``keep_worst``: also the samples
    given the least probability of their true class, as (index in the loader's order, true class, predicted
    class, that probability), lowest first (one process)."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    worst: list[tuple[int, int, int, float]] = []
    seen = 0
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    k = min(5, num_classes)
    with eval_mode(model):
        for images, labels in loader:
            images = to_device(images, device, memory_format)
            labels = labels.to(device, non_blocking=True)
            with autocast(device, precision):
                logits = model(images)
            logits = logits.float()
            top = logits.topk(k, dim=1).indices
            sums += torch.stack([F.cross_entropy(logits, labels, reduction="sum").double(),
                                 (top[:, 0] == labels).sum().double(),
                                 (top == labels[:, None]).any(1).sum().double(),
                                 torch.tensor(float(labels.numel()), device=device, dtype=torch.float64)])
            confusion += torch.bincount(labels * num_classes + top[:, 0],
                                        minlength=num_classes ** 2).view_as(confusion)
            if keep_worst:
                truth = logits.softmax(1).gather(1, labels[:, None])[:, 0]
                worst += [(seen + i, int(t), int(p), float(q))
                          for i, (t, p, q) in enumerate(zip(labels.tolist(), top[:, 0].tolist(), truth.tolist()))]
                worst = sorted(worst, key=lambda w: w[3])[:keep_worst]
            seen += len(labels)
    all_reduce_sum(sums, dist)
    all_reduce_sum(confusion, dist)
    count = max(1.0, sums[3].item())
    return EvalResult(100.0 * sums[1].item() / count, 100.0 * sums[2].item() / count, sums[0].item() / count,
                      int(sums[3].item()), confusion.cpu(), worst)


@dataclass
class ForecastResult:
    """Mean squared and absolute error over every predicted value of ``count`` windows."""

    mse: float
    mae: float
    count: int

    def summary(self) -> dict[str, float]:
        return {"loss": self.mse, "mse": self.mse, "mae": self.mae}


def forecasts(model: nn.Module, windows: torch.Tensor, horizon: int) -> torch.Tensor:
    """The model's (B, horizon, D) forecast for (B, length, D) windows."""
    return model(windows).view(windows.shape[0], horizon, windows.shape[-1])


@torch.no_grad()
def evaluate_forecast(model: nn.Module, loader: DataLoader, horizon: int, device: torch.device,
                      precision: str = "fp32", dist: DistInfo = DistInfo()) -> ForecastResult:
    """MSE and MAE of ``model`` over ``loader``'s windows (summed over the processes of a distributed run)."""
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # squared error, absolute error, values
    with eval_mode(model):
        for windows, targets in loader:
            windows, targets = to_device(windows, device, torch.contiguous_format), targets.to(device)
            with autocast(device, precision):
                error = forecasts(model, windows, horizon).float() - targets
            totals += torch.stack([error.pow(2).sum(), error.abs().sum(), torch.tensor(error.numel(), device=device)])
    totals = all_reduce_sum(totals, dist)
    values = max(totals[2].item(), 1)
    return ForecastResult(totals[0].item() / values, totals[1].item() / values, int(values // max(horizon, 1)))


def pairs_as_lists(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """A collate_fn for (image, mask) pairs of different sizes: two lists, nothing stacked."""
    images, masks = zip(*items)
    return list(images), list(masks)


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device,
                          precision: str = "fp32", dist: DistInfo = DistInfo(), mode: SegmentMode = SegmentMode()
                          ) -> SegmentationResult:
    """Inference over ``loader`` (``pairs_as_lists`` batches) in ``mode`` (whole images by default): each image's
    scores at its mask's size, one confusion matrix for the data set (summed over the processes of a distributed
    run). The images of a batch that share their size (and their masks') go through the model together."""
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    with eval_mode(model):
        for images, masks in loader:
            same_size: dict[tuple, list[int]] = {}
            for i, (image, mask) in enumerate(zip(images, masks)):
                same_size.setdefault((image.shape, mask.shape), []).append(i)
            for group in same_size.values():
                batch = torch.stack([images[i] for i in group]).to(device)
                target = torch.stack([masks[i] for i in group]).to(device)
                with autocast(device, precision):
                    prediction = segment(model, batch, target.shape[-2:], mode).argmax(1)
                confusion += confusion_matrix(prediction, target, num_classes)
                count += len(group)
    all_reduce_sum(confusion, dist)
    all_reduce_sum(count, dist)
    return SegmentationResult.from_confusion(confusion.cpu(), int(count))


@torch.no_grad()
def detect(model: nn.Module, loader: DataLoader, data: DetectionSet, device: torch.device, precision: str = "fp32"
           ) -> dict[int, list[dict]]:
    """A detector's findings over ``loader`` (``pairs_as_lists`` batches of images and targets), per image id in
    COCO's results format."""
    found: dict[int, list[dict]] = {}
    with eval_mode(model):
        for images, targets in loader:
            with autocast(device, precision):
                outputs = model([image.to(device) for image in images])
            for output, target in zip(outputs, targets):
                found[int(target["image_id"])] = to_coco_results([output], [target["image_id"]], data.category_id)
    return found


def evaluate_detection(model: nn.Module, loader: DataLoader, data: DetectionSet, device: torch.device,
                       precision: str = "fp32", dist: DistInfo = DistInfo(), masks: bool = False
                       ) -> tuple[dict[str, float], list[dict]]:
    """COCO AP (box, and mask with ``masks``) of a detector over ``data``, whose loader may be split over the
    processes of a distributed run (each image counted once); also the detections in COCO's results format."""
    found: dict[int, list[dict]] = {}
    for part in gather_objects(detect(model, loader, data, device, precision), dist):
        found.update(part)
    results = [r for image_id in sorted(found) for r in found[image_id]]
    return coco_scores(data.ground_truth(), results, masks), results
