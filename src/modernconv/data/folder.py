"""Image-folder data sets: ``root/train/<class>/*`` and ``root/val/<class>/*`` (torchvision's ImageFolder layout).

The layout is checked up front so every mistake gives one line naming what is wrong. With
``skip_bad_images`` every image is decoded once when the data set is built and unreadable files are dropped
and listed in ``bad_images``: exact counts even with loader workers, and a fixed data set length, at the
cost of one decoding pass at start-up."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from ..errors import DataError
from .images import read_image

LAYOUT_HINT = "expected train/<class>/<image> and val/<class>/<image>"
NO_IMAGES_HINT = f"readable images (files ending in {', '.join(IMG_EXTENSIONS)})"


class ImageFolderSplit(ImageFolder):
    """One split of an image-folder tree, labelled with the train split's ``class_to_idx``."""

    def __init__(self, root: Path, class_to_idx: dict[str, int], in_chans: int, transform: Callable,
                 skip_bad_images: bool = False) -> None:
        self.fixed_class_to_idx = class_to_idx
        super().__init__(str(root), transform=transform, loader=partial(read_image, in_chans=in_chans),
                         allow_empty=True)
        self.bad_images: list[str] = []
        if skip_bad_images:
            self._drop_unreadable()

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """Every split uses the train split's classes (a val split may lack some)."""
        return list(self.fixed_class_to_idx), self.fixed_class_to_idx

    @staticmethod
    def make_dataset(directory: str, class_to_idx: dict[str, int], extensions: tuple[str, ...] | None = None,
                     is_valid_file: Callable | None = None, allow_empty: bool = False) -> list[tuple[str, int]]:
        """(path, class index) of every image below each class folder, in torchvision's order. Symlinked folders
        are followed, but never one that leads back to a folder above (a loop such as ``a/loop -> ..``) nor a
        real folder twice: a link loop neither hangs nor repeats or mislabels images."""
        samples = []
        for name, index in sorted(class_to_idx.items(), key=lambda item: item[1]):
            root = os.path.realpath(os.path.join(directory, name))
            seen, found = {root}, []
            for folder, subfolders, files in os.walk(os.path.join(directory, name), followlinks=True):
                keep = []
                for sub in subfolders:
                    real = os.path.realpath(os.path.join(folder, sub))
                    if real not in seen and not root.startswith(real + os.sep):
                        seen.add(real)
                        keep.append(sub)
                subfolders[:] = keep
                found.append((folder, [f for f in files if f.lower().endswith(IMG_EXTENSIONS)]))
            samples += [(os.path.join(folder, f), index) for folder, files in sorted(found) for f in sorted(files)]
        return samples

    def _drop_unreadable(self) -> None:
        """Decode every image (in threads; PIL releases the GIL) and keep only the readable ones."""
        with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
            readable = list(pool.map(self._is_readable, (path for path, _ in self.samples)))
        self.bad_images = [path for (path, _), ok in zip(self.samples, readable) if not ok]
        self.samples = [sample for sample, ok in zip(self.samples, readable) if ok]
        self.imgs = self.samples
        self.targets = [target for _, target in self.samples]

    def _is_readable(self, path: str) -> bool:
        try:
            self.loader(path)
        except DataError:
            return False
        return True


def _class_folders(split_dir: Path) -> list[str]:
    try:
        return find_classes(str(split_dir))[0]
    except FileNotFoundError:
        raise DataError(f"{split_dir} has no class folders; {LAYOUT_HINT}") from None


def _class_folders_or_none(folder: Path) -> list[str]:
    try:
        return find_classes(str(folder))[0]
    except FileNotFoundError:
        return []


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DataError(f"data path {root} does not exist (give a folder with train/ and val/, or 'digits' "
                        f"or 'synthetic')")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder; {LAYOUT_HINT}")


def folder_split(root: Path, split: str, in_chans: int, transform: Callable, class_names: list[str] | None = None,
                 skip_bad_images: bool = False, classes_from: str = "train/") -> tuple[ImageFolderSplit, list[str]]:
    """One split (``root/split/<class>/*``) and its class names: ``class_names`` (named ``classes_from`` in
    errors) when given (the split may lack some but not add any), else its own folders. A held-out split may
    also be ``root`` itself when it holds class folders and no train/ (ImageNet's validation layout). A training
    split needs an image in every class."""
    _check_root(root)
    split_dir = root / split
    if not split_dir.is_dir():
        if split == "train" or (root / "train").is_dir() or not _class_folders_or_none(root):
            raise DataError(f"{root} has no {split}/ folder; {LAYOUT_HINT}")
        split_dir = root
    found = _class_folders(split_dir)
    classes = list(class_names) if class_names is not None else found
    extra = sorted(set(found) - set(classes))
    if extra:
        raise DataError(f"{split_dir} has classes that {classes_from} lacks: {', '.join(extra)}")
    dataset = ImageFolderSplit(split_dir, {c: i for i, c in enumerate(classes)}, in_chans, transform,
                               skip_bad_images)
    if split == "train":
        present = set(dataset.targets)
        empty = [c for i, c in enumerate(classes) if i not in present]
        if empty:
            raise DataError(f"{dataset.root} has class folders with no {NO_IMAGES_HINT}: {', '.join(empty)}")
    elif not dataset.samples:
        raise DataError(f"{dataset.root} has no {NO_IMAGES_HINT}")
    return dataset, classes


def unlabelled_folder(root: Path, in_chans: int, transform: Callable, skip_bad_images: bool = False
                      ) -> ImageFolderSplit:
    """Every image below ``root`` (any depth, sorted), yielded as ``(image, 0)``: the folder itself is the one
    "class" (the label slot keeps the loaders' (image, label) batches; unlabelled tasks ignore it)."""
    return ImageFolderSplit(root, {".": 0}, in_chans, transform, skip_bad_images)
