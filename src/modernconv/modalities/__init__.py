"""Universal perception (UniRepLKNet): audio, video, point clouds and time series as B x C' x H x W for any
registered model, whose stem alone changes (``in_chans`` = C').

    model = create_modality_model("unireplknet_a", "audio", num_classes=35)
    logits = model(waveforms)            # (B, 16000) at 16 kHz -> log-mel 1 x 128 x 128 -> the network

Each modality has an adapter (``model.adapter``), options with the paper's defaults, readers for the field's
file layouts and a built-in offline data set; see the modules for each."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch.utils.data import Dataset

from ..errors import ConfigError
from ..models import create_model
from .audio import AUDIO
from .folders import FileSamples, folder_samples
from .pointcloud import POINTCLOUD
from .spec import ModalityModel, ModalitySpec
from .timeseries import AEON_PREFIX, TIMESERIES, series_splits
from .video import VIDEO

IMAGE = "image"
MODALITIES: dict[str, ModalitySpec] = {m.name: m for m in (AUDIO, VIDEO, POINTCLOUD, TIMESERIES)}


def get_modality(name: str) -> ModalitySpec:
    """The modality called ``name`` (one clear line for an unknown one)."""
    if name not in MODALITIES:
        raise ConfigError(f"unknown modality {name!r}; choose image or one of {', '.join(MODALITIES)}")
    return MODALITIES[name]


def create_modality_model(name: str, modality: str, options: Mapping[str, Any] | Any | None = None,
                          **kwargs: Any) -> ModalityModel:
    """Registered model ``name`` (``create_model`` options in ``kwargs``; ``in_chans`` is the modality's) behind
    the adapter of ``modality`` built with ``options`` (a mapping over the defaults, or the options object)."""
    spec = get_modality(modality)
    opts = options if isinstance(options, spec.options) else spec.make_options(options)
    if kwargs.get("in_chans", spec.in_chans) != spec.in_chans:
        raise ConfigError(f"{modality} gives {spec.in_chans}-channel maps; in_chans {kwargs['in_chans']} does not fit")
    network = create_model(name, **{**kwargs, "in_chans": spec.in_chans})
    return ModalityModel(spec.adapter(opts), network, modality, opts)


def modality_split(modality: str, source: str, split: str, options: Any, class_names: list[str] | None = None,
                   skip_bad: bool = False, classes_from: str = "train/") -> tuple[Dataset, list[str], Any]:
    """One split ("train" or a held-out one) of ``source`` for ``modality``: a built-in set's name, ``aeon:NAME``
    or a folder. Returns the data set (raw samples and labels), its class names, and the options completed by
    the data (time series: the window's length and variables)."""
    spec = get_modality(modality)
    if spec is TIMESERIES:
        train, held_out, names, options = series_splits(source, options, class_names)
        return (train if split == "train" else held_out), names, options
    if source in spec.built_in:
        train, held_out, names = spec.built_in[source](options)
        return (train if split == "train" else held_out), names, options
    samples, names = folder_samples(Path(source), split, spec, class_names, classes_from)
    return FileSamples(samples, spec.read, options, split == "train", skip_bad), names, options


__all__ = ["AEON_PREFIX", "IMAGE", "MODALITIES", "ModalityModel", "ModalitySpec", "create_modality_model",
           "get_modality", "modality_split"]
