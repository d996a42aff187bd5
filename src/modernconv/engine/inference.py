"""Evaluating and applying a trained checkpoint (what `modernconv eval` and `predict` compute; finding the input
files and writing the results is the command's business)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models import ResNet50_Weights

from ..conversion import CheckpointInfo
from ..data import build_loader, read_image
from ..data.detection import detection_split, detection_transform
from ..data.seg_transforms import SegmentationEvalTransform
from ..data.segmentation import segmentation_split
from ..dense.inference import SegmentMode, segment
from ..dense.metrics import SegmentationResult
from ..errors import DataError, UnreadableFileError, UserError
from ..modalities import get_modality
from ..modalities.forecast import forecast_splits
from ..dense.detectors import MASKED
from .evaluate import (EvalResult, ForecastResult, evaluate, evaluate_detection, evaluate_forecast,
                       evaluate_segmentation, pairs_as_lists)


def evaluate_checkpoint(model: nn.Module, info: CheckpointInfo, data: str, batch_size: int = 64,
                        workers: int = 0, split: str = "val", keep_worst: int = 0) -> tuple[EvalResult, Dataset]:
    """Accuracy of ``model`` on the held-out ``split`` of ``data`` (loaded alone, labelled with the checkpoint's
    classes; a folder of class folders is its own split), in the checkpoint's own preprocessing; and that split
    (``EvalResult.worst`` indexes it, with ``keep_worst``)."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    modality = get_modality(info.modality)
    val, classes, _ = modality.split(data, split, info.modality_options, class_names=info.class_names or None,
                                     classes_from="the checkpoint", transform=info.preprocessing.eval_transform())
    if info.class_names and classes != info.class_names:
        raise UserError(f"the checkpoint knows classes {info.class_names[:5]}..., the data set has "
                        f"{classes[:5]}...; evaluate on data with the same classes")
    loader = build_loader(val, batch_size, train=False, seed=0, num_workers=workers)
    device = next(model.parameters()).device
    return evaluate(model, loader, len(classes), device, keep_worst=keep_worst), val


def evaluate_segmenter(model: nn.Module, info: CheckpointInfo, data: str, batch_size: int = 8, workers: int = 0,
                       split: str = "val", mode: SegmentMode = SegmentMode()) -> SegmentationResult:
    """mIoU and the rest of a segmentation checkpoint on ``split`` of ``data`` (its own classes), at the
    checkpoint's evaluation size, applied in ``mode`` (whole images, sliding windows, scales, flip)."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    pre = info.preprocessing
    transform = SegmentationEvalTransform(pre.mean, pre.std, info.segmenter.get("base_size"))
    val, classes = segmentation_split(data, split, transform)
    if info.class_names and classes != info.class_names:
        raise UserError(f"the checkpoint knows classes {info.class_names[:5]}..., the data set has "
                        f"{classes[:5]}...; evaluate on data with the same classes")
    loader = build_loader(val, batch_size, train=False, seed=0, num_workers=workers, collate_fn=pairs_as_lists)
    return evaluate_segmentation(model, loader, len(classes), next(model.parameters()).device, mode=mode)


def evaluate_detector(model: nn.Module, info: CheckpointInfo, data: str, batch_size: int = 8, workers: int = 0,
                      split: str = "val") -> tuple[dict[str, float], list[dict], int]:
    """COCO AP (box, and mask for Mask R-CNN) of a detection checkpoint on ``split`` of ``data`` (its own
    classes); also its detections in COCO's results format and the number of images."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    masks = info.detector.get("kind", "mask_rcnn") in MASKED
    val = detection_split(data, split, detection_transform(False), masks, keep_empty=True)
    if info.class_names and val.class_names != info.class_names:
        raise UserError(f"the checkpoint knows classes {info.class_names[:5]}..., the data set has "
                        f"{val.class_names[:5]}...; evaluate on data with the same classes")
    loader = build_loader(val, batch_size, train=False, seed=0, num_workers=workers, collate_fn=pairs_as_lists)
    scores, results = evaluate_detection(model, loader, val, next(model.parameters()).device, masks=masks)
    return scores, results, len(val)


def evaluate_forecaster(model: nn.Module, info: CheckpointInfo, data: str, batch_size: int = 64,
                        workers: int = 0) -> ForecastResult:
    """MSE and MAE of a forecasting checkpoint on the held-out stretch of the series ``data`` (standardised by
    that series' own training stretch)."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    options = info.modality_options
    _, val, names, _, _ = forecast_splits(data, options)
    if info.class_names and names != info.class_names:
        raise UserError(f"the checkpoint forecasts {info.class_names}, {data} holds {names}")
    loader = build_loader(val, batch_size, train=False, seed=0, num_workers=workers)
    return evaluate_forecast(model, loader, options.horizon, next(model.parameters()).device)


def class_names(info: CheckpointInfo, num_classes: int) -> list[str]:
    """The checkpoint's class names; ImageNet-1k's for a 1000-class checkpoint that records none (the released
    weights); else the class indices."""
    if info.class_names:
        return info.class_names
    imagenet = ResNet50_Weights.IMAGENET1K_V1.meta["categories"]  # torchvision's table (no download)
    if num_classes == len(imagenet):
        return list(imagenet)
    return [str(i) for i in range(num_classes)]


def sample_reader(info: CheckpointInfo) -> Callable[[str], torch.Tensor]:
    """How one input file of the checkpoint's modality becomes a model input (picklable, for loader workers)."""
    return get_modality(info.modality).file_reader(info.modality_options, info.preprocessing.eval_transform())


class SampleFiles(Dataset):
    """Input files for prediction: item i is (i, the model input read from it) or (i, why it could not be
    read). Anything but a regular file (a FIFO, a device) is refused without opening it; a folder only where
    it can be one sample (video frames)."""

    def __init__(self, paths: list[str], read: Callable[[str], torch.Tensor], folders: bool = False) -> None:
        self.paths, self.read, self.folders = paths, read, folders

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        path = Path(self.paths[index])
        if not (path.is_file() or (self.folders and path.is_dir())):
            return index, "not a readable file" if path.exists() else "no such file"
        try:
            return index, self.read(str(path))
        except UnreadableFileError as e:  # predict reports the file and goes on: no remedy of a training run
            return index, e.reason
        except DataError as e:
            return index, str(e)


def _collate(items: list[tuple[int, torch.Tensor | str]]) -> tuple[list[int], torch.Tensor | None, list]:
    """(indices of the readable images, their batch, [(index, error), ...] of the others)."""
    good = [(i, x) for i, x in items if isinstance(x, torch.Tensor)]
    bad = [(i, x) for i, x in items if not isinstance(x, torch.Tensor)]
    return [i for i, _ in good], torch.stack([x for _, x in good]) if good else None, bad


@torch.no_grad()
def predict_images(model: nn.Module, info: CheckpointInfo, paths: list[str], topk: int = 5, batch_size: int = 64,
                   workers: int = 0) -> list[dict]:
    """For each image file, in order: {"image", "top": [{"class", "probability"}, ...]} with the top-k classes,
    or {"image", "error"} for a file that could not be read (the others are still classified). Images go
    through the model in batches, decoded on ``workers`` loader processes."""
    if topk < 1 or batch_size < 1:
        raise UserError(f"--topk ({topk}) and --batch-size ({batch_size}) must be at least 1")
    names = class_names(info, model.num_classes)
    files = SampleFiles([str(p) for p in paths], sample_reader(info),
                        get_modality(info.modality).sample_is_folder)
    loader = DataLoader(files, batch_size=batch_size, num_workers=workers, collate_fn=_collate)
    device = next(model.parameters()).device
    out: list[dict] = [{} for _ in paths]
    for indices, images, bad in loader:
        for i, error in bad:
            out[i] = {"image": files.paths[i], "error": error}
        if images is None:
            continue
        probs = model(images.to(device)).float().softmax(-1)
        top = probs.topk(min(topk, probs.shape[-1]))
        for i, values, classes in zip(indices, top.values.tolist(), top.indices.tolist()):
            out[i] = {"image": files.paths[i], "top": [{"class": names[c], "probability": round(v, 6)}
                                                       for v, c in zip(values, classes)]}
    return out


def read_rgb(path: str) -> torch.Tensor:
    """An image file as uint8 3 x H x W (picklable, for loader workers)."""
    return torch.from_numpy(np.array(read_image(path, 3))).permute(2, 0, 1)


def each_image(paths: list[str], workers: int, apply: Callable[[torch.Tensor], dict]) -> list[dict]:
    """For each image file, in order: {"image", "pixels" (uint8 3 x H x W), **apply(pixels)}, or {"image",
    "error"} for a file that cannot be read; decoded by ``workers`` processes, one image at a time."""
    files = SampleFiles([str(p) for p in paths], read_rgb)
    out: list[dict] = [{} for _ in paths]
    for indices, images, bad in DataLoader(files, batch_size=1, num_workers=workers, collate_fn=_collate):
        for i, error in bad:
            out[i] = {"image": files.paths[i], "error": error}
        if images is not None:
            out[indices[0]] = {"image": files.paths[indices[0]], "pixels": images[0], **apply(images[0])}
    return out


@torch.no_grad()
def segment_images(model: nn.Module, info: CheckpointInfo, paths: list[str], workers: int = 0,
                   mode: SegmentMode = SegmentMode()) -> list[dict]:
    """``each_image`` with "mask": the int64 class of every pixel at the image's own size (the logits at the
    checkpoint's evaluation size, resized back)."""
    transform = SegmentationEvalTransform(info.preprocessing.mean, info.preprocessing.std,
                                          info.segmenter.get("base_size"))
    device = next(model.parameters()).device

    def apply(image: torch.Tensor) -> dict:
        scores = segment(model, transform(image, image)[0][None].to(device), image.shape[-2:], mode)
        return {"mask": scores.argmax(1)[0].cpu()}
    return each_image(paths, workers, apply)


@torch.no_grad()
def detect_images(model: nn.Module, paths: list[str], workers: int = 0) -> list[dict]:
    """``each_image`` with "found": the detector's output (boxes, labels, scores, masks) at the image's own
    size."""
    device = next(model.parameters()).device

    def apply(image: torch.Tensor) -> dict:
        return {"found": {k: v.cpu() for k, v in model([image.to(device).float() / 255])[0].items()}}
    return each_image(paths, workers, apply)
