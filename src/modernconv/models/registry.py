"""Model registry: names -> builders, ``create_model`` and ``list_models``."""
from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..errors import ModelNotFoundError, UserError
from .base import DataConfig


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant: its family, builder, fixed architecture arguments and data config."""

    name: str
    family: str
    builder: Callable[..., nn.Module]
    arch: dict[str, Any] = field(default_factory=dict)
    data_config: DataConfig = DataConfig()


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, family: str, builder: Callable[..., nn.Module],
                   data_config: DataConfig = DataConfig(), **arch: Any) -> None:
    """Register variant ``name`` built as ``builder(**arch, **user_kwargs)``."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = ModelSpec(name, family, builder, dict(arch), data_config)


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Sorted registered names matching an fnmatch ``pattern`` (and ``family`` if given)."""
    return sorted(n for n, s in _REGISTRY.items()
                  if fnmatch.fnmatchcase(n, pattern) and (family is None or s.family == family))


def get_model_spec(name: str) -> ModelSpec:
    """The spec of ``name``; unknown names raise ModelNotFoundError with close suggestions."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `modernconv models` to list them"
        raise ModelNotFoundError(f"unknown model {name!r}{hint}") from None


def create_model(name: str, pretrained: str | os.PathLike | None = None, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``; ``pretrained`` is a checkpoint path loaded with ``load_checkpoint``.

    ``kwargs`` override architecture options (``num_classes``, ``in_chans``, ``drop_path_rate``, ...).
    """
    spec = get_model_spec(name)
    try:
        model = spec.builder(**{**spec.arch, **kwargs})
    except TypeError as e:
        raise UserError(f"{name}: {e}".replace("__init__() ", "")) from None
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    model.data_config = _data_config_for(spec.data_config, model)
    if pretrained is not None:
        from ..checkpoint import load_checkpoint
        load_checkpoint(model, pretrained)
    return model


def _data_config_for(base: DataConfig, model: nn.Module) -> DataConfig:
    in_chans = getattr(model, "in_chans", base.input_size[0])
    if in_chans == base.input_size[0]:
        return base
    mean = (sum(base.mean) / len(base.mean),) * in_chans
    std = (sum(base.std) / len(base.std),) * in_chans
    return DataConfig((in_chans, *base.input_size[1:]), mean, std, base.crop_pct, base.interpolation)
