"""Semantic-segmentation data: image + index-mask pairs in the field's layouts, and the built-in ``scenes``.

- ADE20K (ADEChallengeData2016): ``images/{training,validation}/*.jpg`` with ``annotations/{...}/*.png``; label 0
  is "other" and is ignored (mmseg's ``reduce_zero_label``: 0 -> 255, k -> k - 1); class names from
  ``objectInfo150.csv`` (its ``Name`` column, first name of each) when present.
- Pascal VOC 2012: ``JPEGImages/*.jpg``, ``SegmentationClass/*.png`` (palette PNGs whose indices are the classes,
  255 = ignore), the split's names in ``ImageSets/Segmentation/{train,val}.txt``; VOC's 21 class names.
- plain: ``{train,val}/images/*`` with ``{train,val}/masks/<same stem>.png``; class names from ``classes.txt``
  (one per line), else ``class_0`` ... up to the largest index in the training masks.

A mask must be a one-channel index PNG ("L" or "P" mode) of its image's size whose values are classes or 255.
Anything else is one line naming the file, or, with ``skip_bad``, left out and listed in ``bad_images``."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DataError, UnreadableFileError
from .images import read_image
from .scenes import SCENE_CLASSES, SceneSet

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]
ADE_SPLITS = {"train": "training", "val": "validation", "validation": "validation"}


class SegmentationFiles(Dataset):
    """(image, mask) file pairs read as (uint8 C,H,W, int64 H,W) through ``transform(image, mask)``."""

    def __init__(self, pairs: list[tuple[str, str]], num_classes: int, transform: Callable,
                 reduce_zero_label: bool = False, skip_bad: bool = False) -> None:
        self.pairs, self.num_classes, self.transform = pairs, num_classes, transform
        self.reduce_zero_label = reduce_zero_label
        self.bad_images: list[str] = []
        if skip_bad:
            good = [self._readable(pair) for pair in pairs]
            self.bad_images = [mask for (_, mask), ok in zip(pairs, good) if not ok]
            self.pairs = [pair for pair, ok in zip(pairs, good) if ok]

    def _readable(self, pair: tuple[str, str]) -> bool:
        try:
            self.read(*pair)
        except DataError:
            return False
        return True

    def read(self, image_path: str, mask_path: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair as tensors, checked (one line naming the file for a bad one)."""
        image = torch.from_numpy(np.array(read_image(image_path, 3))).permute(2, 0, 1)
        mask = read_mask(mask_path)
        if mask.shape != image.shape[1:]:
            raise UnreadableFileError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]}, its image "
                            f"{image.shape[2]}x{image.shape[1]}")
        if self.reduce_zero_label:
            mask = torch.where(mask == 0, IGNORE_INDEX, mask - 1)
        bad = mask[(mask >= self.num_classes) & (mask != IGNORE_INDEX)]
        if len(bad):
            raise UnreadableFileError(f"mask {mask_path} holds value {int(bad[0])}, not one of the {self.num_classes} classes "
                            f"or {IGNORE_INDEX} (ignore)")
        return image, mask

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(*self.read(*self.pairs[index]))


def read_mask(path: str) -> torch.Tensor:
    """A one-channel index PNG as int64 H x W."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "P"):
                raise UnreadableFileError(f"mask {path} is a {img.mode} image, not an index PNG (one channel of class "
                                "indices)")
            return torch.from_numpy(np.asarray(img, dtype=np.int64).copy())
    except (OSError, ValueError) as e:
        raise UnreadableFileError(f"cannot read mask {path} ({e})") from None


def segmentation_split(source: str, split: str, transform: Callable, skip_bad: bool = False
                       ) -> tuple[Dataset, list[str]]:
    """One split ("train", or "val" / "validation") of ``source``: "scenes" (built in) or a folder in one of the
    layouts of the module docstring. Returns the data set and the class names."""
    if source == "scenes":
        return SceneSet(split, transform), list(SCENE_CLASSES)
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder (give an ADE20K, Pascal VOC or "
                        "train|val/images + masks folder, or 'scenes')")
    if (root / "annotations").is_dir() and (root / "images").is_dir():
        pairs, names, reduce = _ade20k(root, split)
    elif (root / "SegmentationClass").is_dir():
        pairs, names, reduce = _voc(root, split), list(VOC_CLASSES), False
    else:
        pairs, names, reduce = _plain(root, split)
    if not pairs:
        raise DataError(f"{root} has no image + mask pairs for the {split} split")
    return SegmentationFiles(pairs, len(names), transform, reduce, skip_bad), names


def _pairs(images: Path, masks: Path, stems: list[str] | None = None) -> list[tuple[str, str]]:
    """(image, mask) paths matched by stem (every image with a mask of the same stem, or the listed stems)."""
    found = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES} \
        if images.is_dir() else {}
    pairs = []
    for stem in stems if stems is not None else sorted(found):
        mask = masks / f"{stem}.png"
        if stem not in found or not mask.is_file():
            if stems is not None:
                raise DataError(f"{stem} is listed but {images / stem}.* or {mask} is missing")
            continue
        pairs.append((str(found[stem]), str(mask)))
    return pairs


def _ade20k(root: Path, split: str) -> tuple[list[tuple[str, str]], list[str], bool]:
    folder = ADE_SPLITS.get(split, split)
    pairs = _pairs(root / "images" / folder, root / "annotations" / folder)
    info = root / "objectInfo150.csv"
    if info.is_file():
        with info.open(newline="") as f:
            names = [row["Name"].split(";")[0].strip() for row in csv.DictReader(f)]
    else:
        names = [f"class_{i}" for i in range(150)]
    return pairs, names, True


def _voc(root: Path, split: str) -> list[tuple[str, str]]:
    listing = root / "ImageSets" / "Segmentation" / f"{'val' if split == 'validation' else split}.txt"
    if not listing.is_file():
        raise DataError(f"{root} has SegmentationClass/ but no {listing.relative_to(root)}")
    stems = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return _pairs(root / "JPEGImages", root / "SegmentationClass", stems)


def _plain(root: Path, split: str) -> tuple[list[tuple[str, str]], list[str], bool]:
    folder = root / ("val" if split == "validation" else split)
    if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
        raise DataError(f"{root} has no {folder.name}/images and {folder.name}/masks folders (or an ADE20K or "
                        "Pascal VOC layout)")
    pairs = _pairs(folder / "images", folder / "masks")
    listed = root / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
    else:
        train = _pairs(root / "train" / "images", root / "train" / "masks")
        largest = max((int(m[m != IGNORE_INDEX].max()) for m in (read_mask(p) for _, p in train)
                       if (m != IGNORE_INDEX).any()), default=0)
        names = [f"class_{i}" for i in range(largest + 1)]
    return pairs, names, False
