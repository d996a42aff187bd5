"""A built-in set generated on the fly, the base of the modalities' offline sets."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


class GeneratedSet(torch.utils.data.Dataset):
    """A built-in set made on the fly: sample ``index`` has label ``index % classes`` and is drawn from its own
    seed by ``sample`` (subclasses), so every split and every worker sees the same data."""

    classes: int

    def __init__(self, opts: Any, indices: np.ndarray, train: bool = False) -> None:
        self.opts, self.indices, self.train = opts, indices, train
        self.labels = [int(i) % self.classes for i in indices]
        self.bad_images: list[str] = []  # every split's data set lists what it skipped; nothing generated is

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        return self.sample(int(self.indices[item]), self.labels[item]), self.labels[item]

    def sample(self, index: int, label: int) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def stratified(cls, opts: Any, per_class: int) -> tuple["GeneratedSet", "GeneratedSet"]:
        """Train (80%) and val (20%) of ``per_class`` samples per class (data.generated's fixed split)."""
        from ..data.generated import stratified_split

        train, val = stratified_split(np.arange(per_class * cls.classes) % cls.classes)
        return cls(opts, train, True), cls(opts, val, False)
