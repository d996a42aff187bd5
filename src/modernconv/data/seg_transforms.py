"""Joint image + mask transforms for semantic segmentation, on torchvision's ``transforms.v2`` functionals with
``tv_tensors.Mask`` (so masks are only ever resized with nearest neighbours and never normalised).

Training is mmsegmentation's ADE20K pipeline as the authors' UperNet configs set it: random resize (the base size
times a ratio in ``ratio_range``, aspect kept; no base size: the image's own), random crop of ``crop`` x ``crop``
where no class covers more than ``cat_max_ratio`` of the crop (up to ten tries), horizontal flip, photometric
distortion (torchvision's ColorJitter with mmseg's ranges: brightness, contrast, saturation, hue), normalisation,
and padding to the crop (image 0, mask ``ignore_index``). Evaluation resizes the image to the base size (aspect
kept) and normalises it; the mask keeps its own size (predictions are scored at the label's resolution)."""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from ..errors import ConfigError

CAT_MAX_TRIES = 10


def keep_ratio_size(height: int, width: int, base: Sequence[int] | None, ratio: float = 1.0) -> tuple[int, int]:
    """The size that fits (long, short) = ``base`` x ``ratio`` with the aspect kept (mmcv's ``keep_ratio``); no
    ``base``: the image's own size x ``ratio``."""
    if base is None:
        scale = ratio
    else:
        long_side, short_side = max(base) * ratio, min(base) * ratio
        scale = min(long_side / max(height, width), short_side / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


class SegmentationTrainTransform:
    """(uint8 image C,H,W, int64 mask H,W) -> (normalised float image, mask), both ``crop`` x ``crop``."""

    def __init__(self, crop: int, mean: Sequence[float], std: Sequence[float], base_size: Sequence[int] | None = None,
                 ratio_range: tuple[float, float] = (0.5, 2.0), cat_max_ratio: float = 0.75, hflip: float = 0.5,
                 photometric: bool = True, ignore_index: int = 255) -> None:
        if crop < 1 or not 0 < ratio_range[0] <= ratio_range[1]:
            raise ConfigError(f"crop ({crop}) must be positive and the ratio range {ratio_range} 0 < min <= max")
        self.crop, self.mean, self.std, self.base_size = crop, list(mean), list(std), base_size
        self.ratio_range, self.cat_max_ratio, self.hflip = ratio_range, cat_max_ratio, hflip
        self.jitter = v2.ColorJitter(brightness=32 / 255, contrast=0.5, saturation=0.5, hue=18 / 360) \
            if photometric else None
        self.ignore_index = ignore_index

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask[None])
        low, high = self.ratio_range
        ratio = low + (high - low) * torch.rand(()).item()
        size = keep_ratio_size(*image.shape[-2:], self.base_size, ratio)
        image, mask = F.resize(image, list(size), antialias=True), F.resize(mask, list(size))
        image, mask = self._crop(image, mask)
        if torch.rand(()).item() < self.hflip:
            image, mask = F.horizontal_flip(image), F.horizontal_flip(mask)
        if self.jitter is not None:
            image = self.jitter(image)
        image = F.normalize(F.to_dtype(image, torch.float32, scale=True), self.mean, self.std)
        pad = [0, 0, self.crop - image.shape[-1], self.crop - image.shape[-2]]  # left, top, right, bottom
        image = F.pad(image, pad, fill=0.0)
        mask = F.pad(mask, pad, fill=self.ignore_index)
        return image.as_subclass(torch.Tensor), mask[0].as_subclass(torch.Tensor).long()

    def _crop(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A random crop (smaller sides stay whole) in which no class covers more than ``cat_max_ratio``."""
        h, w = image.shape[-2:]
        ch, cw = min(self.crop, h), min(self.crop, w)
        for _ in range(CAT_MAX_TRIES):
            top = int(torch.randint(0, h - ch + 1, ()).item())
            left = int(torch.randint(0, w - cw + 1, ()).item())
            window = mask[..., top:top + ch, left:left + cw]
            counts = torch.bincount(window[window != self.ignore_index].flatten())
            counts = counts[counts > 0]
            if self.cat_max_ratio >= 1 or (len(counts) > 1 and counts.max() < self.cat_max_ratio * counts.sum()):
                break
        return F.crop(image, top, left, ch, cw), F.crop(mask, top, left, ch, cw)


class SegmentationEvalTransform:
    """(uint8 image, mask) -> (normalised float image at the base size, aspect kept; the mask as it was)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], base_size: Sequence[int] | None = None) -> None:
        self.mean, self.std, self.base_size = list(mean), list(std), base_size

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = keep_ratio_size(*image.shape[-2:], self.base_size)
        image = F.resize(tv_tensors.Image(image), list(size), antialias=True)
        image = F.normalize(F.to_dtype(image, torch.float32, scale=True), self.mean, self.std)
        return image.as_subclass(torch.Tensor), mask
