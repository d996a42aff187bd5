"""What a modality is to the rest of the library: its options, the adapter that turns a batch of raw samples
into B x C' x H x W in front of the network, how one file is read, its built-in data sets, and how a split of a
data source is opened. Images are a modality like the others (``image.py``: the identity adapter, transforms in
the data sets); each behaviour that differs is a method here that a modality's own file overrides."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..values import coerce
from .folders import FileSamples, folder_samples
from .model import ModalityModel


@dataclass(frozen=True)
class ModalitySpec:
    """One modality: ``in_chans`` (C'), its options type (a dataclass whose defaults are the paper's), the adapter
    builder, the file reader (path, options, train) -> raw sample (train: with its random choices), the file
    suffixes it reads, and the built-in sets (name -> builder(options) -> (train, val, class names))."""

    name: str
    in_chans: int
    options: type
    adapter: Callable[[Any], nn.Module]
    read: Callable[[str, Any, bool], torch.Tensor]
    extensions: tuple[str, ...]
    built_in: Mapping[str, Callable[[Any], tuple]]
    sample_is_folder: bool = False  # a folder of frames is one video
    takes_transforms: bool = False  # images: augmentation and preprocessing are transforms of the data sets
    samples: str = "images"  # what its samples are called in reports ("(40 series)")

    def make_options(self, given: Mapping[str, Any] | None = None, **run: Any) -> Any:
        """The options with ``given`` (a mapping from a recipe or a checkpoint) over the defaults; an unknown
        key or a wrongly typed value gives one line naming it and the accepted keys. ``run``: the run's own
        settings a modality may read (images: ``in_chans``, the synthetic set's size); the others ignore them."""
        given = dict(given or {})
        names = [f.name for f in dataclasses.fields(self.options)]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(f"{self.name} options do not include {', '.join(unknown)}; they are: {', '.join(names)}")
        hints = typing.get_type_hints(self.options)
        for key, value in given.items():
            given[key] = coerce(f"{self.name} option {key}", value, hints[key])
        return self.options(**given)

    def channels(self, in_chans: int | None) -> int:
        """The network's input channels in a run whose images would have ``in_chans`` (None: the default): the
        adapter's C', whatever an image run would take."""
        return self.in_chans

    def wrap(self, network: nn.Module, options: Any) -> nn.Module:
        """The model for raw samples: the adapter in front of ``network``."""
        return ModalityModel(self.adapter(options), network, self.name, options)

    def split(self, source: str, split: str, options: Any, class_names: list[str] | None = None,
              skip_bad: bool = False, classes_from: str = "train/", transform: Callable | None = None
              ) -> tuple[Dataset, list[str], Any]:
        """One split ("train" or a held-out one) of ``source`` (a built-in set's name or a folder): the data set
        (raw samples and labels; its ``bad_images`` lists the files skipped as unreadable), its class names, and
        the options as the data completes them. ``transform`` is for modalities that take transforms (images)."""
        if source in self.built_in:
            train, held_out, names = self.built_in[source](options)
            return (train if split == "train" else held_out), names, options
        samples, names = folder_samples(Path(source), split, self, class_names, classes_from)
        return FileSamples(samples, self.read, options, split == "train", skip_bad), names, options

    def file_reader(self, options: Any, transform: Callable | None = None) -> Callable[[str], torch.Tensor]:
        """How one input file becomes a model input for prediction (picklable, for loader workers)."""
        return partial(self.read, opts=options, train=False)

    def metadata(self, options: Any) -> dict[str, Any]:
        """What a checkpoint records to rebuild this modality's model."""
        return {"modality": self.name, "modality_options": dataclasses.asdict(options)}


def require(module: str, what: str) -> Any:
    """Import ``module`` (a library a modality reads or computes with), or say in one line how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module} package: pip install 'modernconv[modalities]'") from None


def at_most(what: str, value: float, limit: float) -> None:
    """Raise one line when ``value`` is above ``limit`` (sizes that would ask for absurd memory)."""
    if value > limit:
        raise ConfigError(f"{what} must be at most {limit:g}, got {value:g}")


def positive(what: str, *values: float) -> None:
    """Raise one line unless every value is positive."""
    if not all(v > 0 for v in values):
        raise ConfigError(f"{what} must be positive, got {', '.join(map(str, values))}")
