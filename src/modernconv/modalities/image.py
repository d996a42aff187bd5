"""Images: the modality the networks were made for. The adapter is the identity (the network takes the images
themselves, with any number of channels), augmentation and preprocessing are transforms applied in the data
sets, and the data are ``digits``, ``synthetic`` or a folder of class folders (``modernconv.data``). Image
checkpoints record no modality (a plain network's file)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..data import build_split, read_image
from ..errors import ConfigError
from .spec import ModalitySpec


@dataclass(frozen=True)
class ImageOptions:
    """What reading images needs from the run (not ``modality_options``: these are the run's own settings)."""

    in_chans: int = 3
    synthetic_samples: int = 512
    synthetic_classes: int = 10
    val_split: float | None = None  # the held-out fraction of one folder of class folders, and its seed
    split_seed: int = 0


def read_image_file(path: str, opts: ImageOptions, train: bool = False) -> Image.Image:
    """One image file decoded in the mode ``opts.in_chans`` asks for (L or RGB)."""
    return read_image(path, opts.in_chans)


def read_transformed(path: str, in_chans: int, transform: Callable) -> torch.Tensor:
    """An image file through the evaluation transform (picklable for loader workers)."""
    return transform(read_image(path, in_chans))


class ImageSpec(ModalitySpec):
    """The image modality's behaviour where it differs from the others' (see ``ModalitySpec``)."""

    def make_options(self, given: Mapping[str, Any] | None = None, **run: Any) -> ImageOptions:
        if given:
            raise ConfigError("modality_options are for a modality other than image")
        return ImageOptions(**run)

    def channels(self, in_chans: int | None) -> int:
        return self.in_chans if in_chans is None else in_chans

    def wrap(self, network: nn.Module, options: Any) -> nn.Module:
        return network

    def split(self, source: str, split: str, options: ImageOptions, class_names: list[str] | None = None,
              skip_bad: bool = False, classes_from: str = "train/", transform: Callable | None = None
              ) -> tuple[Dataset, list[str], ImageOptions]:
        dataset, names = build_split(source, split, options.in_chans, transform, class_names, skip_bad,
                                     options.synthetic_samples, options.synthetic_classes, classes_from,
                                     options.val_split, options.split_seed)
        return dataset, names, options

    def file_reader(self, options: ImageOptions, transform: Callable | None = None) -> Callable[[str], torch.Tensor]:
        return partial(read_transformed, in_chans=options.in_chans, transform=transform)

    def metadata(self, options: Any) -> dict[str, Any]:
        """A split by fraction, so that ``eval`` of the checkpoint holds out the same images."""
        if options.val_split is None:
            return {}
        return {"val_split": {"fraction": options.val_split, "seed": options.split_seed}}


IMAGE_MODALITY = ImageSpec("image", 3, ImageOptions, nn.Identity, read_image_file, IMG_EXTENSIONS, {},
                           takes_transforms=True)
