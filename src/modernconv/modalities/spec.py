"""What a modality is to the rest of the library: its options, the adapter that turns a batch of raw samples
into B x C' x H x W, how one file is read, and its built-in data sets; plus the model that puts the adapter in
front of any registered network (UniRepLKNet's universal perception: only the stem's input channels change)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..values import coerce
from ..models.base import ModelWrapper


@dataclass(frozen=True)
class ModalitySpec:
    """One modality: ``in_chans`` (C'), its options type (a dataclass whose defaults are the paper's), the adapter
    builder, the file reader (path, options, train) -> raw sample (train: with its random choices), the file
    suffixes it reads, and the built-in sets
    (name -> builder(options) -> (train, val, class names))."""

    name: str
    in_chans: int
    options: type
    adapter: Callable[[Any], nn.Module]
    read: Callable[[str, Any, bool], torch.Tensor]
    extensions: tuple[str, ...]
    built_in: Mapping[str, Callable[[Any], tuple]]
    sample_is_folder: bool = False  # a folder of frames is one video

    def make_options(self, given: Mapping[str, Any] | None = None) -> Any:
        """The options with ``given`` (a mapping from a recipe or a checkpoint) over the defaults; an unknown
        key or a wrongly typed value gives one line naming it and the accepted keys."""
        given = dict(given or {})
        names = [f.name for f in dataclasses.fields(self.options)]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(f"{self.name} options do not include {', '.join(unknown)}; they are: {', '.join(names)}")
        hints = typing.get_type_hints(self.options)
        for key, value in given.items():
            given[key] = coerce(f"{self.name} option {key}", value, hints[key])
        return self.options(**given)


def require(module: str, what: str) -> Any:
    """Import ``module`` (a library a modality reads or computes with), or say in one line how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the {module} package: pip install 'modernconv[modalities]'") from None


def positive(what: str, *values: float) -> None:
    """Raise one line unless every value is positive."""
    if not all(v > 0 for v in values):
        raise ConfigError(f"{what} must be positive, got {', '.join(map(str, values))}")


class GeneratedSet(torch.utils.data.Dataset):
    """A built-in set made on the fly: sample ``index`` has label ``index % classes`` and is drawn from its own
    seed by ``sample`` (subclasses), so every split and every worker sees the same data."""

    classes: int

    def __init__(self, opts: Any, indices: np.ndarray, train: bool = False) -> None:
        self.opts, self.indices, self.train = opts, indices, train
        self.labels = [int(i) % self.classes for i in indices]
        self.bad_images: list[str] = []  # nothing generated is unreadable; kept for the data sets' interface

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


class ModalityModel(ModelWrapper):
    """``model(adapter(raw))``: a registered network (``.model``, its stem taking C' channels) behind a
    modality's adapter (``.adapter``: log-mel, frame tiling, multi-view projection or step embedding).

    The adapter's training-time augmentation (SpecAugment, point-cloud rotation/scale/jitter) runs only in
    training mode; its learned parameters (the time-series embedding) train with the network."""

    def __init__(self, adapter: nn.Module, model: nn.Module, modality: str, options: Any) -> None:
        super().__init__()
        self.adapter = adapter
        self.model = model
        self.modality = modality
        self.options = options

    @property
    def model_kwargs(self) -> dict:
        return self.model.model_kwargs

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model(self.adapter(raw))

    def metadata(self) -> dict[str, Any]:
        """What a checkpoint records to rebuild the adapter: {"modality": name, "modality_options": {...}}."""
        return {"modality": self.modality, "modality_options": dataclasses.asdict(self.options)}
