"""How a segmenter is applied to one image, as mmsegmentation's test modes do it:

- whole: the image in one pass;
- slide (``crop``, ``stride``): crop x crop windows every ``stride`` pixels (the last window of a row or column
  moved back inside the image), each window's logits added where it lies, then divided by how many windows
  covered each pixel;
- with several ``scales`` and/or ``flip`` (test-time augmentation): the image resized by each scale (and
  flipped), every pass's logits resized to the output size, turned into softmax probabilities (flipped back)
  and averaged.

The result is per-class scores at ``size`` (the label's resolution): logits for one plain pass, probabilities
when passes were averaged; either way the argmax is the prediction."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .upernet import resize


@dataclass(frozen=True)
class SegmentMode:
    """How to apply a segmenter to an image: whole (no ``crop``) or sliding windows, at ``scales``, with ``flip``."""

    crop: int | None = None
    stride: int | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    def __post_init__(self) -> None:
        if self.crop is not None and self.crop < 1 or any(not s > 0 for s in self.scales) or not self.scales:
            raise ConfigError(f"--crop must be positive and --scales positive numbers, got {self.crop}, "
                              f"{list(self.scales)}")


def slide_logits(model: nn.Module, image: torch.Tensor, crop: int, stride: int) -> torch.Tensor:
    """Logits of an N x C x H x W ``image`` batch from overlapping crop x crop windows (see the module
    docstring)."""
    if not 0 < stride <= crop:
        raise ConfigError(f"stride ({stride}) must be positive and at most the crop ({crop})")
    n, _, h, w = image.shape
    rows = max(h - crop + stride - 1, 0) // stride + 1
    cols = max(w - crop + stride - 1, 0) // stride + 1
    total, count = None, image.new_zeros(1, 1, h, w)
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * stride + crop, h), min(c * stride + crop, w)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            logits = model(image[:, :, y1:y2, x1:x2]).float()
            if total is None:
                total = logits.new_zeros(n, logits.shape[1], h, w)
            total[:, :, y1:y2, x1:x2] += logits
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


def segment(model: nn.Module, image: torch.Tensor, size: Sequence[int], mode: SegmentMode = SegmentMode()
            ) -> torch.Tensor:
    """Per-class scores (N x K x size) of an N x C x H x W normalised ``image`` batch (see the module
    docstring)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        return slide_logits(model, x, mode.crop, mode.stride or mode.crop) if mode.crop else model(x).float()

    if mode.scales == (1.0,) and not mode.flip:
        return resize(run(image), size)
    h, w = image.shape[-2:]
    probs = []
    for scale in mode.scales:
        x = resize(image, (max(1, round(h * scale)), max(1, round(w * scale)))) if scale != 1.0 else image
        probs.append(resize(run(x), size).softmax(1))
        if mode.flip:
            probs.append(resize(run(x.flip(-1)), size).softmax(1).flip(-1))
    return torch.stack(probs).mean(0)
