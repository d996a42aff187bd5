"""Universal perception (UniRepLKNet): audio, video, point clouds and time series as B x C' x H x W for any
registered model, whose stem alone changes (``in_chans`` = C'); images are the modality with the identity
adapter.

    model = create_modality_model("unireplknet_a", "audio", num_classes=35)
    logits = model(waveforms)            # (B, 16000) at 16 kHz -> log-mel 1 x 128 x 128 -> the network

Each modality has an adapter (``model.adapter``), options with the paper's defaults, readers for the field's
file layouts and a built-in offline data set; see the modules for each."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from ..errors import ConfigError
from ..models import create_model
from .audio import AUDIO
from .image import IMAGE_MODALITY
from .model import ModalityModel
from .pointcloud import POINTCLOUD
from .spec import ModalitySpec
from .timeseries import AEON_PREFIX, TIMESERIES
from .video import VIDEO

IMAGE = IMAGE_MODALITY.name  # what a run or a checkpoint that names no modality holds
MODALITIES: dict[str, ModalitySpec] = {m.name: m for m in (IMAGE_MODALITY, AUDIO, VIDEO, POINTCLOUD, TIMESERIES)}


def get_modality(name: str) -> ModalitySpec:
    """The modality called ``name`` (one clear line for an unknown one)."""
    if name not in MODALITIES:
        raise ConfigError(f"unknown modality {name!r}; choose one of {', '.join(MODALITIES)}")
    return MODALITIES[name]


def create_modality_model(name: str, modality: str, options: Mapping[str, Any] | Any | None = None,
                          **kwargs: Any) -> nn.Module:
    """Registered model ``name`` (``create_model`` options in ``kwargs``; ``in_chans`` is the modality's) behind
    the adapter of ``modality`` built with ``options`` (a mapping over the defaults, or the options object). An
    image model is the network itself."""
    spec = get_modality(modality)
    opts = options if isinstance(options, spec.options) else spec.make_options(options)
    in_chans = spec.channels(kwargs.get("in_chans"))
    if kwargs.get("in_chans", in_chans) != in_chans:
        raise ConfigError(f"{modality} gives {in_chans}-channel maps; in_chans {kwargs['in_chans']} does not fit")
    network = create_model(name, **{**kwargs, "in_chans": in_chans})
    return spec.wrap(network, opts)


__all__ = ["AEON_PREFIX", "IMAGE", "MODALITIES", "ModalityModel", "ModalitySpec", "create_modality_model",
           "get_modality"]
