"""Data sets that need no files: scikit-learn's bundled 8x8 digits and a generated, learnable synthetic set.

Both are held in memory as uint8 images at their native size (digits 8x8, synthetic ``SYNTHETIC_SIDE``); the
transform pipeline resizes them to the model's input. Their train/val splits are fixed (seed 0, stratified)
and independent of any training seed."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from ..errors import ConfigError

VAL_FRACTION = 0.2
SPLIT_SEED = 0
SYNTHETIC_SEED = 0
SYNTHETIC_SIDE = 32
DIGITS_MAX = 16  # sklearn's digits hold counts 0..16 per 4x4 block


class TensorImageDataset(Dataset):
    """uint8 images (N, C, H, W) and integer labels; yields ``(transform(PIL image), label)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.images = images
        self.labels = labels
        self.transform = transform
        self.bad_images: list[str] = []  # every split's data set lists what it skipped; nothing generated is

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(F.to_pil_image(self.images[index])), int(self.labels[index])


def stratified_split(labels: np.ndarray, val_fraction: float = VAL_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and val indices holding ``round(val_fraction * n)`` of each class's n samples (at least one
    when n >= 2) in val, chosen by a fixed ``RandomState(seed)`` permutation per class."""
    rng = np.random.RandomState(seed)
    train, val = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = max(1, round(val_fraction * len(members))) if len(members) >= 2 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def digits_images(in_chans: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 bundled digits as uint8 (N, C, 8, 8) scaled to 0..255 (C = 1, else 3 replicated) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = np.rint(digits.images * (255 / DIGITS_MAX)).astype(np.uint8)
    images = torch.from_numpy(gray).unsqueeze(1)
    if in_chans != 1:
        images = images.expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(digits.target).long()


def synthetic_images(num_samples: int, num_classes: int, in_chans: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable labelled set: class k is a sine grating with its own colour, orientation and frequency;
    each sample has a random phase and pixel noise. Labels cycle 0..K-1; everything is seeded (deterministic).

    Returns uint8 images (N, C, SYNTHETIC_SIDE, SYNTHETIC_SIDE) (C = 1, else 3) and labels."""
    if num_classes < 2 or num_samples < 2 * num_classes:
        raise ConfigError(f"synthetic data needs at least 2 classes and 2 samples per class, "
                          f"got {num_samples} samples in {num_classes} classes")
    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    labels = torch.arange(num_samples) % num_classes
    k = labels.double()
    hue = k / num_classes
    colour = 0.5 + 0.5 * torch.stack([torch.cos(2 * math.pi * (hue + s / 3)) for s in range(3)], 1)  # (N, 3)
    angle = k * math.pi * (math.sqrt(5) - 1) / 2  # golden-angle steps keep orientations apart
    freq = 1.0 + (k % 4)
    phase = 2 * math.pi * torch.rand(num_samples, generator=g, dtype=torch.float64)

    pos = torch.linspace(0, 1, SYNTHETIC_SIDE, dtype=torch.float64)
    y, x = torch.meshgrid(pos, pos, indexing="ij")
    along = x * torch.cos(angle)[:, None, None] + y * torch.sin(angle)[:, None, None]  # (N, H, W)
    wave = torch.sin(2 * math.pi * freq[:, None, None] * along + phase[:, None, None])
    rgb = 0.25 + 0.5 * colour[:, :, None, None] * (0.6 + 0.4 * wave[:, None])
    rgb = rgb + 0.08 * torch.randn(rgb.shape, generator=g, dtype=torch.float64)
    images = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
    if in_chans == 1:
        images = F.rgb_to_grayscale(images)
    return images, labels


def split_tensor_dataset(images: torch.Tensor, labels: torch.Tensor, train_transform: Callable,
                         eval_transform: Callable) -> tuple[TensorImageDataset, TensorImageDataset]:
    """The fixed stratified train/val datasets of an in-memory image set."""
    train_idx, val_idx = (torch.from_numpy(i) for i in stratified_split(labels.numpy()))
    return (TensorImageDataset(images[train_idx], labels[train_idx], train_transform),
            TensorImageDataset(images[val_idx], labels[val_idx], eval_transform))
