"""Feature collapse (ConvNeXt V2 paper): how alike the channels of each block's expansion-MLP activation are.

For one image and one activation (H, W, C), each channel is an HW-vector X_i; the score is the mean over all
C * C ordered channel pairs (i = j included) of (1 - cos(X_i, X_j)) / 2, averaged over images. Low = collapsed
(channels redundant), high = diverse. Measured on the 4C hidden activation of every block's MLP right after
GELU, i.e. before GRN in ConvNeXt V2 blocks, the same point as in V1 blocks (which have no GRN). An all-zero
channel counts as orthogonal to every channel, itself included.

The mean of the C x C cosine matrix is |sum_i X_i / |X_i||^2 / C^2, so the score costs O(HWC), not O(HWC^2).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data import build_unlabelled
from ..errors import ConfigError
from ..layers import Mlp
from ..models import create_model
from ..runtime import eval_mode


@dataclass
class CollapseCurve:
    """Per-block scores of one model: ``layers`` (block names), normalised ``depth`` (0 first, 1 last)."""

    label: str
    layers: list[str]
    depth: list[float]
    score: list[float]

    @property
    def mean(self) -> float:
        return sum(self.score) / len(self.score)


def collapse_score(activation: torch.Tensor) -> torch.Tensor:
    """The score of each image of a channels-last activation (N, H, W, C) -> (N,)."""
    x = activation.float().flatten(1, -2)  # (N, HW, C)
    channels = F.normalize(x, dim=1).sum(dim=2)  # sum over channels of the unit HW-vectors, (N, HW)
    mean_cos = channels.pow(2).sum(dim=1) / x.shape[-1] ** 2
    return (1 - mean_cos) / 2


def expansion_activations(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(block name, the MLP's activation module) for every block, in forward order."""
    found = [(name.removesuffix(".mlp"), module.act) for name, module in model.named_modules()
             if isinstance(module, Mlp)]
    if not found:
        raise ConfigError(f"{getattr(model, 'model_name', type(model).__name__)} has no expansion MLP blocks to "
                          "measure (ConvNeXt, ConvNeXt V2 and UniRepLKNet have)")
    return found


@torch.no_grad()
def collapse_curve(model: nn.Module, batches: Iterable[torch.Tensor], label: str = "") -> CollapseCurve:
    """Mean per-block collapse score of ``model`` (eval mode) over the images of ``batches`` (N, C, H, W)."""
    blocks = expansion_activations(model)
    totals = torch.zeros(len(blocks), dtype=torch.float64)
    count = 0

    def recorder(index: int):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            totals[index] += collapse_score(output).double().sum().cpu()
        return hook

    handles = [act.register_forward_hook(recorder(i)) for i, (_, act) in enumerate(blocks)]
    device = next(model.parameters()).device
    try:
        with eval_mode(model):
            for images in batches:
                model.forward_features(images.to(device))
                count += images.shape[0]
    finally:
        for handle in handles:
            handle.remove()
    if count == 0:
        raise ConfigError("no images to measure feature collapse on")
    last = max(1, len(blocks) - 1)
    return CollapseCurve(label, [name for name, _ in blocks], [i / last for i in range(len(blocks))],
                         (totals / count).tolist())


def held_out_images(data: str, model: nn.Module, count: int, img_size: int | None = None,
                    batch_size: int = 32) -> list[torch.Tensor]:
    """The first ``count`` held-out images of ``data`` (digits, synthetic, or a folder: its val/ when it holds
    images, else its training images) in ``model``'s evaluation preprocessing, in batches."""
    for name, value in (("--images", count), ("--batch-size", batch_size)):  # each named alone: export has no
        if value < 1:                                                     # --batch-size to blame
            raise ConfigError(f"{name} must be at least 1, got {value}")
    pre = model.data_config.replace(img_size=img_size) if img_size else model.data_config
    images = build_unlabelled(data, "val", pre.input_size[0], pre.eval_transform())
    picked = [images[i][0] for i in range(min(count, len(images)))]
    return [torch.stack(picked[i:i + batch_size]) for i in range(0, len(picked), batch_size)]


def checkpoint_curves(model_name: str, checkpoints: Sequence[str | os.PathLike], data: str, count: int = 256,
                      img_size: int | None = None, batch_size: int = 32,
                      device: str | torch.device = "cpu") -> list[CollapseCurve]:
    """One curve per checkpoint (any format ``create_model(pretrained=...)`` loads, encoder-only files
    included), all measured on the same held-out images of ``data``."""
    curves, batches = [], None
    for path in checkpoints:
        model = create_model(model_name, pretrained=path).to(device)
        batches = batches or held_out_images(data, model, count, img_size, batch_size)
        curves.append(collapse_curve(model, batches, label=str(path)))
    return curves


def write_collapse_csv(curves: Sequence[CollapseCurve], path: str | os.PathLike) -> Path:
    """One row per (curve, block): label, layer index, block name, normalised depth, score."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "layer", "block", "depth", "score"])
        for curve in curves:
            for i, (name, depth, score) in enumerate(zip(curve.layers, curve.depth, curve.score)):
                writer.writerow([curve.label, i, name, f"{depth:.6f}", f"{score:.6f}"])
    return path
