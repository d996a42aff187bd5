"""Folders of sample files, one folder per class, for the file modalities (audio, video, point clouds).

Three layouts:
- ``root/train/<class>/...`` and ``root/val/<class>/...`` (or ``test/``), as for images;
- ``root/<class>/train/...`` and ``root/<class>/test/...`` (ModelNet as released);
- ``root/<class>/...`` alone (Speech Commands, ModelNet's class folders): the held-out split is the files named
  in ``validation_list.txt`` ("val") or ``testing_list.txt`` ("test") when present (paths relative to root,
  as Speech Commands writes them), training is every other file; without the lists a fixed stratified 20% is
  held out. Folders whose names start with "_" or "." (``_background_noise_``) are not classes.

A sample is a file with one of the modality's suffixes, or (video) a folder of frame images. The walk and the class
checks are images' own (``modernconv.data.folder``): only the layouts differ."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.folder import checked_classes, class_folders, empty_classes, files_below, labelled_files
from ..data.generated import stratified_split
from ..errors import DataError

if TYPE_CHECKING:
    from .spec import ModalitySpec

LISTS = {"val": "validation_list.txt", "validation": "validation_list.txt", "test": "testing_list.txt"}


class FileSamples(Dataset):
    """(path, label) samples read by ``read(path, options, train)``. With ``skip_bad`` every sample is read
    once up front and unreadable ones are dropped and listed in ``bad_images``."""

    def __init__(self, samples: list[tuple[str, int]], read: Callable, options: Any, train: bool,
                 skip_bad: bool = False) -> None:
        self.samples, self.read, self.options, self.train = samples, read, options, train
        self.bad_images: list[str] = []
        if skip_bad:
            readable = [self._readable(path) for path, _ in samples]
            self.bad_images = [path for (path, _), ok in zip(samples, readable) if not ok]
            self.samples = [sample for sample, ok in zip(samples, readable) if ok]
        self.labels = [label for _, label in self.samples]

    def _readable(self, path: str) -> bool:
        try:
            self.read(path, self.options, False)
        except DataError:
            return False
        return True

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.read(path, self.options, self.train), label


def folder_samples(root: Path, split: str, spec: ModalitySpec, class_names: list[str] | None = None,
                   classes_from: str = "train/") -> tuple[list[tuple[str, int]], list[str]]:
    """(path, label) pairs of one split of ``root`` and the class names (``class_names`` when given)."""
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder (give class folders of {spec.name} files, or one of the "
                        f"built-in sets: {', '.join(spec.built_in) or 'aeon:NAME'})")
    held_out = next((root / s for s in ("val", "test", "validation") if (root / s).is_dir()), None)
    if (root / "train").is_dir():
        split_dir = root / "train" if split == "train" else root / split if (root / split).is_dir() else held_out
        if split_dir is None:
            raise DataError(f"{root} has train/ but no val/ or test/ folder")
        classes = checked_classes(class_folders(split_dir), class_names, split_dir, classes_from)
        samples = labelled_files(split_dir, classes, spec.extensions, spec.sample_is_folder)
    else:
        classes = list(class_names) if class_names is not None else class_folders(root)
        if classes and all((root / c / "train").is_dir() for c in classes):  # ModelNet: <class>/train, <class>/test
            inner = "train" if split == "train" else next(
                (s for s in (split, "test", "val") if (root / classes[0] / s).is_dir()), split)
            samples = [(path, i) for i, name in enumerate(classes)
                       for path in files_below(root / name / inner, spec.extensions, spec.sample_is_folder)]
        else:
            samples = _flat_split(root, labelled_files(root, classes, spec.extensions, spec.sample_is_folder), split)
    if not samples:
        raise DataError(f"{root} has no {spec.name} files (suffixes {', '.join(spec.extensions)}) for {split}")
    if split == "train":
        empty = empty_classes(samples, classes)
        if empty:
            raise DataError(f"{root} has class folders with no {spec.name} files: {', '.join(empty)}")
    return samples, classes


def _flat_split(root: Path, samples: list[tuple[str, int]], split: str) -> list[tuple[str, int]]:
    """A split of a class-folders-only tree: by Speech Commands' lists, or a fixed stratified 20%."""
    lists = {name: root / name for name in set(LISTS.values()) if (root / name).is_file()}
    known = ("train", *LISTS) if lists else ("train", "val", "validation")
    if split not in known:
        raise DataError(f"{root} has no {split!r} split; its splits are {', '.join(known)}"
                        + ("" if lists else " (a fixed 20% of each class is held out)"))
    if lists:
        def listed(name: str) -> set[str]:
            lines = lists[name].read_text().splitlines() if name in lists else []
            return {str(root / line.strip()) for line in lines if line.strip()}

        if split == "train":
            held = set().union(*(listed(n) for n in lists))
            return [s for s in samples if s[0] not in held]
        chosen = listed(LISTS[split]) or listed("validation_list.txt") or listed("testing_list.txt")
        return [s for s in samples if s[0] in chosen]
    if not samples:
        return []
    train, val = stratified_split(np.array([label for _, label in samples]))
    return [samples[i] for i in (train if split == "train" else val)]
