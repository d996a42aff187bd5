"""Pre-training data: images without labels.

``data`` is "digits" or "synthetic" (their training split; labels unused), or a folder:
- with ``train/``: every image below ``train/`` (class sub-folders or none, any depth);
- without: every image below the folder itself.
The reconstruction preview uses the held-out split (``val/`` of a folder, when it holds images), else the
first training images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..data import DataSplit, build_datasets
from ..data.folder import NO_IMAGES_HINT, ImageFolderSplit
from ..errors import DataError


def unlabelled_images(root: Path, in_chans: int, transform: Callable, skip_bad_images: bool = False
                      ) -> ImageFolderSplit:
    """Every image below ``root`` (any depth, sorted), yielded as ``(image, 0)``: the folder itself is the one
    "class" (the label slot keeps the loaders' (image, label) batches; pre-training ignores it)."""
    return ImageFolderSplit(root, {".": 0}, in_chans, transform, skip_bad_images)


def pretrain_datasets(source: str, img_size: int, in_chans: int, train_transform: Callable,
                      preview_transform: Callable, synthetic_samples: int = 512, synthetic_classes: int = 10,
                      skip_bad_images: bool = False) -> DataSplit:
    """The pre-training images (``train``) and the preview images (``val``); ``class_names`` is empty."""
    if source in ("digits", "synthetic"):
        split = build_datasets(source, img_size, in_chans, synthetic_samples=synthetic_samples,
                               synthetic_classes=synthetic_classes, train_transform=train_transform,
                               eval_transform=preview_transform)
        return DataSplit(split.train, split.val, [])
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder of images (or 'digits' or 'synthetic')")
    train_dir = root / "train" if (root / "train").is_dir() else root
    train = unlabelled_images(train_dir, in_chans, train_transform, skip_bad_images)
    if not len(train):
        raise DataError(f"{train_dir} holds no {NO_IMAGES_HINT}")
    val_dir = root / "val" if (root / "val").is_dir() else train_dir
    preview = unlabelled_images(val_dir, in_chans, preview_transform, skip_bad_images)
    if not len(preview):
        preview = unlabelled_images(train_dir, in_chans, preview_transform, skip_bad_images)
    return DataSplit(train, preview, [])
