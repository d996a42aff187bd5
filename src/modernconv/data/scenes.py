"""The built-in segmentation set ``scenes``: generated offline, deterministic per index. Each 96 x 96 scene has a
textured background (class 0, "background": stripes or checks of two random colours plus noise) and three to six
overlapping objects of five shapes (disc, square, triangle, ring, cross) of random size and turn, each in its own
random colour with grain; later objects hide earlier ones and the mask says which object each pixel shows.
Colour does not give the class away: only shape does, so a network must look at outlines and context."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

SCENE_CLASSES = ["background", "disc", "square", "triangle", "ring", "cross"]
SCENE_SIZE = 96
SCENES = {"train": (0, 480), "val": (100_000, 120)}  # split -> (first seed, count)


def shape_mask(kind: int, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float
               ) -> np.ndarray:
    """Where shape ``kind`` (1..5 as SCENE_CLASSES) of radius ``r`` centred at (cy, cx), turned by ``angle``,
    covers the grid (yy, xx)."""
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * (xx - cx) + s * (yy - cy), -s * (xx - cx) + c * (yy - cy)  # rotated coordinates
    if kind == 1:
        return u * u + v * v <= r * r
    if kind == 2:
        return (np.abs(u) <= r * 0.8) & (np.abs(v) <= r * 0.8)
    if kind == 3:
        return (v <= r * 0.6) & (v >= -r + 1.7 * np.abs(u))
    if kind == 4:
        d = u * u + v * v
        return (d <= r * r) & (d >= (0.55 * r) ** 2)
    return ((np.abs(u) <= r) & (np.abs(v) <= r * 0.3)) | ((np.abs(v) <= r) & (np.abs(u) <= r * 0.3))


def texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """An H x W x 3 texture: stripes or checks between two random colours, plus noise, in [0, 1]."""
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    period = rng.uniform(4, 14)
    angle = rng.uniform(0, np.pi)
    phase = np.cos(angle) * xx + np.sin(angle) * yy
    pattern = np.sin(2 * np.pi * phase / period) > 0
    if rng.random() < 0.5:
        pattern ^= np.sin(2 * np.pi * (np.cos(angle) * yy - np.sin(angle) * xx) / period) > 0
    out = np.where(pattern[..., None], a, b) + rng.normal(0, 0.06, (*yy.shape, 3))
    return np.clip(out, 0, 1)


def make_instances(seed: int, size: int = SCENE_SIZE) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(uint8 H x W x 3 image, uint8 H x W map of which object each pixel shows (0: the background, k: the k-th
    object drawn), the objects' classes in drawing order) of scene ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    image = texture(rng, yy, xx)
    shown = np.zeros((size, size), np.uint8)
    kinds = []
    for k in range(1, int(rng.integers(3, 7)) + 1):
        kind = int(rng.integers(1, len(SCENE_CLASSES)))
        r = rng.uniform(0.1, 0.24) * size
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        covered = shape_mask(kind, yy, xx, cy, cx, r, rng.uniform(0, 2 * np.pi))
        fill = rng.uniform(0, 1, 3) + rng.normal(0, 0.06, (size, size, 3))  # one colour with grain
        image[covered] = np.clip(fill, 0, 1)[covered]
        shown[covered] = k
        kinds.append(kind)
    return (image * 255).round().astype(np.uint8), shown, kinds


def make_scene(seed: int, size: int = SCENE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 H x W x 3 image, uint8 H x W class mask) of scene ``seed``."""
    image, shown, kinds = make_instances(seed, size)
    return image, np.array([0, *kinds], np.uint8)[shown]


class SceneSet(Dataset):
    """One split of the built-in scenes as (image, mask) pairs through ``transform`` (image and mask jointly)."""

    def __init__(self, split: str, transform, count: int | None = None) -> None:
        self.first, full = SCENES["train" if split == "train" else "val"]
        self.count = full if count is None else min(count, full)
        self.transform = transform
        self.bad_images: list[str] = []  # every split's data set lists what it skipped; nothing generated is

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = make_scene(self.first + index)
        return self.transform(torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask).long())
