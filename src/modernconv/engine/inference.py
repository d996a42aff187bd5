"""Evaluating and applying a trained checkpoint (what `modernconv eval` and `predict` do)."""
from __future__ import annotations

import csv
import glob
import io
import json
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.models._meta import _IMAGENET_CATEGORIES

from ..conversion import CheckpointInfo
from ..data import build_loader, build_split, read_image
from ..errors import DataError, UserError
from ..files import atomic_write_text
from .evaluate import EvalResult, evaluate


def evaluate_checkpoint(model: nn.Module, info: CheckpointInfo, data: str, batch_size: int = 64,
                        workers: int = 0, split: str = "val") -> EvalResult:
    """Accuracy of ``model`` on the held-out ``split`` of ``data`` (loaded alone, labelled with the checkpoint's
    classes; a folder of class folders is its own split), in the checkpoint's own preprocessing."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    val, classes = build_split(data, split, model.in_chans, info.preprocessing.eval_transform(),
                               class_names=info.class_names or None, classes_from="the checkpoint")
    if info.class_names and classes != info.class_names:
        raise UserError(f"the checkpoint knows classes {info.class_names[:5]}..., the data set has "
                        f"{classes[:5]}...; evaluate on data with the same classes")
    loader = build_loader(val, batch_size, train=False, seed=0, num_workers=workers)
    device = next(model.parameters()).device
    return evaluate(model, loader, len(classes), device)


def class_names(info: CheckpointInfo, num_classes: int) -> list[str]:
    """The checkpoint's class names; ImageNet-1k's for a 1000-class checkpoint that records none (the released
    weights); else the class indices."""
    if info.class_names:
        return info.class_names
    if num_classes == len(_IMAGENET_CATEGORIES):
        return list(_IMAGENET_CATEGORIES)
    return [str(i) for i in range(num_classes)]


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files as given, every image below a folder (sorted), and the matches of glob patterns (``**`` too)."""
    paths: list[str] = []
    for item in inputs:
        if Path(item).is_dir():
            paths += sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise UserError(f"no file matches {item!r}")
            paths += matches
        else:
            paths.append(item)
    return paths


class ImageFiles(Dataset):
    """Image files for prediction: item i is (i, the transformed image) or (i, why it could not be read).
    Anything but a regular file (a folder, a FIFO, a device) is refused without opening it."""

    def __init__(self, paths: list[str], in_chans: int, transform: Callable) -> None:
        self.paths, self.in_chans, self.transform = paths, in_chans, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        path = self.paths[index]
        if not Path(path).is_file():
            return index, "not a readable image file" if Path(path).exists() else "no such file"
        try:
            return index, self.transform(read_image(path, self.in_chans))
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
    files = ImageFiles([str(p) for p in paths], model.in_chans, info.preprocessing.eval_transform())
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


def write_predictions(predictions: list[dict], path: Path) -> None:
    """``predict_images``' results as JSON, or as CSV: image, rank, class, probability (and error) rows."""
    if path.suffix == ".json":
        atomic_write_text(path, json.dumps(predictions, indent=1))
        return
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["image", "rank", "class", "probability", "error"])
    for item in predictions:
        if "error" in item:
            writer.writerow([item["image"], "", "", "", item["error"]])
        for rank, top in enumerate(item.get("top", []), start=1):
            writer.writerow([item["image"], rank, top["class"], top["probability"], ""])
    atomic_write_text(path, text.getvalue())
