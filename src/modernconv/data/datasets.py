"""One entry point per kind of data set: labelled splits (digits, synthetic, image folders) and unlabelled
images (pre-training, feature measurements). Every split can be loaded alone."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .folder import NO_IMAGES_HINT, folder_split, unlabelled_folder
from .generated import digits_images, split_tensor_dataset, synthetic_images
from .transforms import eval_transform as make_eval_transform

HELD_OUT = ("val", "test", "validation")  # what a folder may call its evaluation split
BUILT_IN = ("digits", "synthetic")
DIGIT_CLASSES = [str(d) for d in range(10)]


@dataclass
class DataSplit:
    """Train and validation data sets (each yields ``(float32 image (C, H, W), int label)``) and class names.

    Each data set has ``bad_images``: the paths skipped as unreadable (empty unless ``skip_bad_images``)."""

    train: Dataset
    val: Dataset
    class_names: list[str]


def _check_split(split: str) -> None:
    if split not in ("train", *HELD_OUT):
        raise ConfigError(f"split must be one of train, {', '.join(HELD_OUT)}, got {split!r}")


def build_split(source: str, split: str, in_chans: int, transform: Callable, class_names: list[str] | None = None,
                skip_bad_images: bool = False, synthetic_samples: int = 512, synthetic_classes: int = 10,
                classes_from: str = "train/", val_split: float | None = None, split_seed: int = 0
                ) -> tuple[Dataset, list[str]]:
    """One split ("train", or a held-out one: "val", "test", "validation") of the data set named by ``source``,
    and its class names: "digits"
    (sklearn's bundled 8x8 digits, fixed stratified 80/20 split), "synthetic" (generated, deterministic) or a
    folder with ``split/<class>/`` folders (labelled with ``class_names`` when given, which errors call
    ``classes_from``, else its own folders), or with ``val_split`` one folder of class folders divided by a
    stratified fraction (seeded by ``split_seed``).

    Images reach ``transform`` as "L" (``in_chans`` 1) or RGB (any other count)."""
    _check_split(split)
    if in_chans < 1:
        raise ConfigError(f"in_chans ({in_chans}) must be positive")
    if source in BUILT_IN:
        if val_split is not None:
            raise ConfigError(f"val_split divides a folder of class folders; {source} has its own fixed split")
        if source == "digits":
            images, labels = digits_images(in_chans)
            names = DIGIT_CLASSES
        else:
            images, labels = synthetic_images(synthetic_samples, synthetic_classes, in_chans)
            names = [f"class_{k}" for k in range(synthetic_classes)]
        train, held_out = split_tensor_dataset(images, labels, transform, transform)
        return (train if split == "train" else held_out), names
    return folder_split(Path(source), split, in_chans, transform, class_names, skip_bad_images, classes_from,
                        val_split, split_seed)


def build_datasets(source: str, img_size: int, in_chans: int = 3, skip_bad_images: bool = False,
                   synthetic_samples: int = 512, synthetic_classes: int = 10, train_transform: Callable | None = None,
                   eval_transform: Callable | None = None) -> DataSplit:
    """Both splits of ``source`` (see ``build_split``); val is labelled with train's classes. A missing
    transform defaults to a plain resize and centre-crop to ``img_size`` with values in [0, 1]."""
    if img_size < 1:
        raise ConfigError(f"img_size ({img_size}) must be positive")
    plain = make_eval_transform(img_size, mean=(0.0,) * in_chans, std=(1.0,) * in_chans, crop_pct=1.0)
    options = dict(skip_bad_images=skip_bad_images, synthetic_samples=synthetic_samples,
                   synthetic_classes=synthetic_classes)
    train, classes = build_split(source, "train", in_chans, train_transform or plain, **options)
    val, _ = build_split(source, "val", in_chans, eval_transform or plain, class_names=classes, **options)
    return DataSplit(train, val, classes)


def build_unlabelled(source: str, split: str, in_chans: int, transform: Callable, skip_bad_images: bool = False,
                     synthetic_samples: int = 512, synthetic_classes: int = 10) -> Dataset:
    """Images without labels (yielded with a placeholder label 0 for folders): "digits" or "synthetic" (that
    split; labels unused), or a folder: for "train" every image below its ``train/`` (class sub-folders or none,
    any depth), or below the folder itself when it has none; for "val" those below ``val/`` when it holds any,
    else the training images."""
    _check_split(split)
    if source in BUILT_IN:
        return build_split(source, split, in_chans, transform, synthetic_samples=synthetic_samples,
                           synthetic_classes=synthetic_classes)[0]
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder of images (or 'digits' or 'synthetic')")
    train_dir = root / "train" if (root / "train").is_dir() else root
    if split == "val" and (root / "val").is_dir():
        held_out = unlabelled_folder(root / "val", in_chans, transform, skip_bad_images)
        if len(held_out):
            return held_out
    images = unlabelled_folder(train_dir, in_chans, transform, skip_bad_images)
    if not len(images):
        raise DataError(f"{train_dir} holds no {NO_IMAGES_HINT}")
    return images
