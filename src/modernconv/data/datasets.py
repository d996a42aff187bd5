"""``build_datasets``: one entry point for the built-in digits, the synthetic set and image-folder trees."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from ..errors import ConfigError
from .folder import folder_datasets
from .generated import digits_images, split_tensor_dataset, synthetic_images
from .transforms import eval_transform as make_eval_transform

DIGIT_CLASSES = [str(d) for d in range(10)]


@dataclass
class DataSplit:
    """Train and validation data sets (each yields ``(float32 image (C, H, W), int label)``) and class names.

    Each data set has ``bad_images``: the paths skipped as unreadable (empty unless ``skip_bad_images``)."""

    train: Dataset
    val: Dataset
    class_names: list[str]


def build_datasets(source: str, img_size: int, in_chans: int = 3, skip_bad_images: bool = False,
                   synthetic_samples: int = 512, synthetic_classes: int = 10, train_transform: Callable | None = None,
                   eval_transform: Callable | None = None) -> DataSplit:
    """The data set named by ``source``: "digits" (sklearn's bundled 8x8 digits, fixed stratified 80/20 split),
    "synthetic" (generated, deterministic) or a folder with train/ and val/ class folders.

    Images reach the transforms as "L" (``in_chans`` 1) or RGB (any other count); the transforms from
    ``modernconv.data.transforms`` output ``len(mean)`` channels. A missing transform defaults to a plain
    resize and centre-crop to ``img_size`` with values in [0, 1] (no augmentation, no normalisation)."""
    if img_size < 1 or in_chans < 1:
        raise ConfigError(f"img_size ({img_size}) and in_chans ({in_chans}) must be positive")
    plain = make_eval_transform(img_size, mean=(0.0,) * in_chans, std=(1.0,) * in_chans, crop_pct=1.0)
    train_t, eval_t = train_transform or plain, eval_transform or plain
    if source == "digits":
        images, labels = digits_images(in_chans)
        return DataSplit(*split_tensor_dataset(images, labels, train_t, eval_t), DIGIT_CLASSES)
    if source == "synthetic":
        images, labels = synthetic_images(synthetic_samples, synthetic_classes, in_chans)
        return DataSplit(*split_tensor_dataset(images, labels, train_t, eval_t),
                         [f"class_{k}" for k in range(synthetic_classes)])
    return DataSplit(*folder_datasets(Path(source), in_chans, train_t, eval_t, skip_bad_images))
