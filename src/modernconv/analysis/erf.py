"""Effective receptive field (ERF), measured as in RepLKNet (arXiv 2203.06717, its erf/ scripts) and UniRepLKNet.

For each image: take the last-stage feature map of ``forward_features`` (N, C, h, w, before the head's norm), sum
the ReLU of its central position (h // 2, w // 2) over channels, differentiate that with respect to the input,
and sum the ReLU of the input gradient over channels: an (H, W) contribution map of the input pixels. The maps
are averaged over images (an image whose map is not finite is skipped, as RepLKNet skips NaN maps). RepLKNet
feeds one image at a time; batches give the same maps, as in eval mode every image is computed on its own.
RepLKNet measures at 1024 x 1024 on 50 ImageNet validation images.

For display and for the area ratios the averaged map is log-scaled, log10(x + 1), because the scores span many
orders of magnitude; the heat map is that divided by its maximum.

A modality model (audio, video, point clouds, time series) is measured through its network: the adapter in
front of it is no ConvNet, and the network sees the adapter's maps, so its ERF is taken at their size.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2.functional import center_crop

from ..errors import ConfigError
from ..files import atomic_write, atomic_write_text
from ..modalities import ModalityModel
from ..runtime import eval_mode
from .collapse import held_out_images

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)  # RepLKNet's high-contribution thresholds
IMG_SIZE = 224  # the default input side: a 7x7 last-stage map at stride 32 (RepLKNet measured at 1024)


@dataclass
class ERFResult:
    """One model's ERF: ``scores`` the raw mean contribution map (H, W), ``ratios`` the high-contribution area
    ratio per threshold, measured over ``images`` inputs of ``input_size`` (H, W)."""

    label: str
    scores: np.ndarray
    ratios: dict[float, float]
    images: int
    input_size: tuple[int, int]

    @property
    def heat_map(self) -> np.ndarray:
        """log10(scores + 1) rescaled to [0, 1]: the map RepLKNet draws, comparable between models."""
        logged = log_scale(self.scores)
        return logged / logged.max()

    def to_dict(self) -> dict:
        """A JSON-ready summary (the map itself is saved separately)."""
        return {"label": self.label, "images": self.images, "input_size": list(self.input_size),
                "ratios": {f"{t:g}": r for t, r in self.ratios.items()},
                "max_score": float(self.scores.max()), "total_score": float(self.scores.sum())}


def log_scale(scores: np.ndarray) -> np.ndarray:
    """log10(scores + 1), RepLKNet's scaling of contribution scores."""
    return np.log10(np.asarray(scores, dtype=np.float64) + 1)


@torch.enable_grad()
def contribution_map(model: nn.Module, batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The mean contribution map (H, W, float64) of ``model``'s central last-stage output over the images of
    ``batches`` (N, C, H, W), and how many images it averages. Runs in eval mode (restored after); only the
    input gradient is computed, the parameters' ``.grad`` is left as it was."""
    device = next(model.parameters()).device
    total, count = None, 0
    with eval_mode(model):
        for images in batches:
            x = images.to(device).detach().requires_grad_(True)
            features = model.forward_features(x)  # N, C, h, w
            h, w = features.shape[-2:]
            if count == 0 and (h % 2 == 0 or w % 2 == 0):
                warnings.warn(f"the last-stage map is {h}x{w}: its central position ({h // 2}, {w // 2}) is off the "
                              "image centre; an input side that is an odd multiple of the stride centres it")
            centre = F.relu(features[:, :, h // 2, w // 2]).sum()
            (grad,) = torch.autograd.grad(centre, x)
            per_image = F.relu(grad).sum(dim=1).double()  # N, H, W
            per_image = per_image[per_image.flatten(1).isfinite().all(dim=1)]
            total = per_image.sum(dim=0) if total is None else total + per_image.sum(dim=0)
            count += per_image.shape[0]
    if count == 0:
        raise ConfigError("no images (with a finite input gradient) to measure the effective receptive field on")
    return (total / count).cpu(), count


def area_ratios(scores: np.ndarray | torch.Tensor, thresholds: Sequence[float] = THRESHOLDS) -> dict[float, float]:
    """RepLKNet's high-contribution area ratio for each threshold t: the area of the smallest square centred on
    pixel (H // 2, W // 2) whose summed score exceeds t of the whole map's, as a fraction of the image area.

    As in RepLKNet's analyze_erf.py the sums are taken over the log-scaled map, log10(scores + 1), not the raw
    scores. Unlike it, squares start at 1 x 1 (it starts at 3 x 3) and grow until they cover the image (clipped
    at its border), so every t in (0, 1) has an answer; where a square fits the image the ratios are the same.
    """
    logged = log_scale(np.asarray(scores))  # a CPU tensor converts too
    if logged.ndim != 2 or not np.isfinite(logged).all() or (logged < 0).any():
        raise ConfigError(f"a contribution map must be a finite, non-negative H x W array, got shape {logged.shape}")
    total = logged.sum()
    if total <= 0:
        raise ConfigError("the contribution map is zero everywhere: the central output does not depend on the input")
    bad = [t for t in thresholds if not 0 < t < 1]
    if bad:
        raise ConfigError(f"area-ratio thresholds must lie strictly between 0 and 1, got {bad}")
    h, w = logged.shape
    cy, cx = h // 2, w // 2
    squares = [logged[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1] for r in range(max(h, w) // 2 + 1)]
    fractions = np.array([square.sum() / total for square in squares])  # the last square is the whole map: 1
    return {float(t): squares[int(np.argmax(fractions > t))].size / (h * w) for t in thresholds}


def erf_inputs(model: nn.Module, data: str, count: int, img_size: int | None = None, batch_size: int = 8
               ) -> tuple[nn.Module, list[torch.Tensor], str]:
    """The network whose ERF is measured, its inputs (``count`` held-out images of ``data`` in the network's
    preprocessing, in batches) and a note on what they are ("" for an image network, measured at ``img_size``,
    default ``IMG_SIZE``). A modality model's network behind its adapter is measured at the adapter's output
    size, the maps it sees (the images centre-cropped when they are not square); ``img_size`` does not apply."""
    if not isinstance(model, ModalityModel):
        return model, held_out_images(data, model, count, img_size or IMG_SIZE, batch_size), ""
    if img_size:
        raise ConfigError(f"--img-size does not apply to this {model.modality} model: its network is measured at "
                          "the size of its adapter's output")
    with torch.no_grad(), eval_mode(model.adapter):
        sample = torch.zeros(1, *model.sample_shape, device=next(model.parameters()).device)
        c, h, w = model.adapter(sample).shape[1:]
    batches = held_out_images(data, model.model, count, max(h, w), batch_size)
    note = f"its network behind the {model.modality} adapter, at the adapter's {c}x{h}x{w} output ({data} images)"
    return model.model, [center_crop(b, [h, w]) for b in batches], note


def measure_erf(model: nn.Module, batches: Iterable[torch.Tensor], label: str = "",
                thresholds: Sequence[float] = THRESHOLDS) -> ERFResult:
    """The ERF of ``model`` over ``batches``: its contribution map and area ratios (see the module docstring)."""
    scores, count = contribution_map(model, batches)
    return ERFResult(label or getattr(model, "model_name", type(model).__name__), scores.numpy(),
                     area_ratios(scores, thresholds), count, tuple(scores.shape))


def write_erf(result: ERFResult, json_path: str | os.PathLike, npy_path: str | os.PathLike) -> tuple[Path, Path]:
    """The summary as JSON and the raw mean map (H, W, float64) as .npy, each written atomically."""
    def save_map(tmp: str) -> None:
        with open(tmp, "wb") as f:  # np.save to a path would append ".npy" to the temporary name
            np.save(f, result.scores)

    return (atomic_write_text(json_path, json.dumps(result.to_dict(), indent=2) + "\n"),
            atomic_write(npy_path, save_map))
