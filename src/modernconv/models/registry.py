"""Model registry: names -> builders, ``create_model`` and ``list_models``."""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..checkpoint import load_checkpoint
from ..data.preprocessing import DataConfig
from ..errors import ConfigError, ModelNotFoundError


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant: its family, builder, fixed architecture arguments and data config."""

    name: str
    family: str
    builder: Callable[..., nn.Module]
    arch: dict[str, Any] = field(default_factory=dict)
    data_config: DataConfig = DataConfig()

    def options(self) -> dict[str, Any]:
        """Every option the builder takes, with this variant's value (its own or the builder's default)."""
        params = inspect.signature(self.builder).parameters
        return {k: self.arch.get(k, p.default) for k, p in params.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def check_options(self, kwargs: dict[str, Any]) -> None:
        """Refuse, in one line, options the builder does not take."""
        accepted = self.options()
        unknown = sorted(k for k in kwargs if k not in accepted)
        if unknown:
            close = {k: difflib.get_close_matches(k, list(accepted), n=1) for k in unknown}
            hints = "".join(f" (did you mean {c[0]}?)" for c in close.values() if c)
            raise ConfigError(f"{self.name} does not take {', '.join(map(repr, unknown))}{hints}; it takes: "
                              f"{', '.join(sorted(accepted))}")

    def data_config_for(self, in_chans: int | None = None) -> DataConfig:
        """The variant's preprocessing for ``in_chans`` input channels (its own when None), without building it."""
        return self.data_config.replace(in_chans=in_chans) if in_chans is not None else self.data_config


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
    spec.check_options(kwargs)
    model = spec.builder(**{**spec.arch, **kwargs})
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    model.data_config = spec.data_config_for(kwargs.get("in_chans"))
    if pretrained is not None:
        load_checkpoint(model, pretrained)
    return model


def model_data_config(name: str, **kwargs: Any) -> DataConfig:
    """The preprocessing ``create_model(name, **kwargs)`` would carry, without building the model."""
    spec = get_model_spec(name)
    spec.check_options(kwargs)
    return spec.data_config_for(kwargs.get("in_chans"))
