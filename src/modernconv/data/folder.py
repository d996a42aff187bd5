"""Class folders: the one walker and class checks every modality's folders use (``files_below``, ``class_folders``,
``checked_classes``), and the image-folder data sets: ``root/train/<class>/*`` and ``root/val/<class>/*``
(torchvision's ImageFolder layout; ``root`` itself may be a held-out split of class folders, ImageNet's val).

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

import numpy as np
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..errors import DataError
from .generated import stratified_split
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
        """(path, class index) of every image below each class folder (``labelled_files``)."""
        return labelled_files(Path(directory), list(class_to_idx), IMG_EXTENSIONS)

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


def class_folders(folder: Path) -> list[str]:
    """The class folders of ``folder``, sorted: its sub-folders except those named ``_*`` or ``.*`` (Speech
    Commands' ``_background_noise_``, hidden folders such as ``.ipynb_checkpoints``)."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def files_below(folder: Path, extensions: tuple[str, ...], sample_folders: bool = False) -> list[str]:
    """Every file with one of ``extensions`` below ``folder``, sorted by folder, then name. Symlinked folders are
    followed, but never one that leads back to a folder above (a loop such as ``a/loop -> ..``) nor a real folder
    twice: a link loop neither hangs nor repeats files. With ``sample_folders`` a sub-folder holding images is
    itself one sample (a video's frames) and is not entered."""
    root = os.path.realpath(folder)
    seen, found = {root}, []
    for here, subfolders, files in os.walk(folder, followlinks=True):
        if sample_folders and Path(here) != folder and any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
            found.append((os.path.dirname(here), [os.path.basename(here)]))
            subfolders[:] = []
            continue
        keep = []
        for sub in sorted(subfolders):
            real = os.path.realpath(os.path.join(here, sub))
            if real not in seen and not root.startswith(real + os.sep):
                seen.add(real)
                keep.append(sub)
        subfolders[:] = keep
        found.append((here, [f for f in files if f.lower().endswith(extensions)]))
    return [os.path.join(here, f) for here, names in sorted(found) for f in sorted(names)]


def labelled_files(split_dir: Path, classes: list[str], extensions: tuple[str, ...], sample_folders: bool = False
                   ) -> list[tuple[str, int]]:
    """(path, class index) of every sample below each class folder of ``split_dir``, class by class."""
    return [(path, index) for index, name in enumerate(classes)
            for path in files_below(split_dir / name, extensions, sample_folders)]


def checked_classes(found: list[str], class_names: list[str] | None, where: Path, classes_from: str) -> list[str]:
    """``class_names`` when given (``where`` may lack some of them but add none; they come from
    ``classes_from``), else the ``found`` class folders."""
    classes = list(class_names) if class_names is not None else found
    extra = sorted(set(found) - set(classes))
    if extra:
        raise DataError(f"{where} has classes that {classes_from} lacks: {', '.join(extra)}")
    return classes


def empty_classes(samples: list[tuple[str, int]], classes: list[str]) -> list[str]:
    """The classes without a sample (a training split needs one in each)."""
    present = {label for _, label in samples}
    return [c for i, c in enumerate(classes) if i not in present]


def _check_root(root: Path) -> None:
    if not root.exists():
        raise DataError(f"data path {root} does not exist (give a folder with train/ and val/, or 'digits' "
                        f"or 'synthetic')")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder; {LAYOUT_HINT}")


def folder_split(root: Path, split: str, in_chans: int, transform: Callable, class_names: list[str] | None = None,
                 skip_bad_images: bool = False, classes_from: str = "train/", val_split: float | None = None,
                 split_seed: int = 0) -> tuple[ImageFolderSplit, list[str]]:
    """One split (``root/split/<class>/*``) and its class names: ``class_names`` (named ``classes_from`` in
    errors) when given (the split may lack some but not add any), else its own folders. A held-out split may
    also be ``root`` itself when it holds class folders and no train/ (ImageNet's validation layout). A training
    split needs an image in every class. With ``val_split``, ``root`` is one folder of class folders: a
    stratified ``val_split`` of each class (chosen by ``split_seed``) is held out and the rest trains."""
    _check_root(root)
    if val_split is not None:
        return _fraction_split(root, split, in_chans, transform, class_names, skip_bad_images, val_split,
                               split_seed)
    split_dir = root / split
    if not split_dir.is_dir():
        if split == "train" or (root / "train").is_dir() or not class_folders(root):
            raise DataError(f"{root} has no {split}/ folder; {LAYOUT_HINT}")
        split_dir = root
    found = class_folders(split_dir)
    if not found:
        raise DataError(f"{split_dir} has no class folders; {LAYOUT_HINT}")
    classes = checked_classes(found, class_names, split_dir, classes_from)
    dataset = ImageFolderSplit(split_dir, {c: i for i, c in enumerate(classes)}, in_chans, transform,
                               skip_bad_images)
    if split == "train":
        empty = empty_classes(dataset.samples, classes)
        if empty:
            raise DataError(f"{dataset.root} has class folders with no {NO_IMAGES_HINT}: {', '.join(empty)}")
    elif not dataset.samples:
        raise DataError(f"{dataset.root} has no {NO_IMAGES_HINT}")
    return dataset, classes


def _fraction_split(root: Path, split: str, in_chans: int, transform: Callable, class_names: list[str] | None,
                    skip_bad_images: bool, val_split: float, split_seed: int) -> tuple[ImageFolderSplit, list[str]]:
    """``folder_split``'s split of one folder of class folders by a stratified, seeded fraction."""
    if (root / "train").is_dir():
        raise DataError(f"{root} has a train/ folder: --val-split divides one folder of class folders (give "
                        f"{root / 'train'} to split it, or leave --val-split out to use val/)")
    found = class_folders(root)
    if not found:
        raise DataError(f"{root} has no class folders to split")
    classes = checked_classes(found, class_names, root, "the run's classes")
    dataset = ImageFolderSplit(root, {c: i for i, c in enumerate(classes)}, in_chans, transform)
    train, val = stratified_split(np.array(dataset.targets), val_split, split_seed)  # over every file: the
    dataset.samples = [dataset.samples[i] for i in (train if split == "train" else val)]  # same with or without
    dataset.imgs, dataset.targets = dataset.samples, [target for _, target in dataset.samples]  # skipping
    if skip_bad_images:
        dataset._drop_unreadable()
    if split == "train" and empty_classes(dataset.samples, classes):
        raise DataError(f"{root}: classes {', '.join(empty_classes(dataset.samples, classes))} have no image to "
                        f"train on after holding out {val_split:g}")
    return dataset, classes


def unlabelled_folder(root: Path, in_chans: int, transform: Callable, skip_bad_images: bool = False
                      ) -> ImageFolderSplit:
    """Every image below ``root`` (any depth, sorted), yielded as ``(image, 0)``: the folder itself is the one
    "class" (the label slot keeps the loaders' (image, label) batches; unlabelled tasks ignore it)."""
    return ImageFolderSplit(root, {".": 0}, in_chans, transform, skip_bad_images)
