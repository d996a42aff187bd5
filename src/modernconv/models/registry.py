"""Model registry: names -> builders, ``create_model`` and ``list_models``."""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from torch import nn

from ..checkpoint import load_checkpoint, read_metadata
from ..data.preprocessing import DataConfig
from ..errors import ConfigError, ModelNotFoundError
from ..layers.classifier import check_pool_type
from .features import FeatureBackbone
from .released import find_released, locate, split_tag


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


# timm.create_model's framework arguments: accepted when they ask for nothing (timm's train script passes them)
_TIMM_NEUTRAL = ("scriptable", "exportable", "no_jit", "drop_block_rate", "bn_momentum", "bn_eps", "pretrained_cfg",
                 "pretrained_cfg_overlay")


def create_model(name: str, pretrained: bool | str | os.PathLike | None = None, *, features_only: bool = False,
                 out_indices: int | Sequence[int] | None = None, out_norms: bool = False,
                 global_pool: str | None = None,
                 checkpoint_path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                 **kwargs: Any) -> nn.Module:
    """Build registered model ``name``, with timm's ``create_model`` contract.

    ``pretrained``: a checkpoint path loaded with ``load_checkpoint``; True: the released weights ``name.tag`` (or
    the name's default release) from the local weights cache, hash-checked (see ``models.released``; nothing is
    downloaded; ``cache_dir`` overrides the cache folder, as in timm); False / None: no weights. A ``name.tag``
    also sets the release's preprocessing.
    ``kwargs`` override architecture options (``num_classes``, ``in_chans``, ``drop_path_rate``, ...); a value
    of None means "the default", as timm's training script passes them. ``global_pool``: "avg" (default), "max",
    "avgmax" or "" (no pooling). ``features_only=True`` returns a backbone (see ``models.features``) giving the
    maps of ``out_indices`` (default: every stage), with ``out_norms`` a LayerNorm on each as the authors' dense
    backbones have. ``checkpoint_path`` is loaded after building, like timm's.
    """
    name, tag = split_tag(name)
    spec = get_model_spec(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None and not (k in _TIMM_NEUTRAL and not v)}
    release = find_released(name, tag) if pretrained is True or tag is not None else None
    if release is not None and pretrained is True:
        pretrained = locate(release, cache_dir)
        kwargs.setdefault("num_classes", release.num_classes)
    spec.check_options(kwargs)
    model = spec.builder(**{**spec.arch, **kwargs})
    model.model_name = name
    model.model_kwargs = dict(kwargs)
    model.data_config = spec.data_config_for(kwargs.get("in_chans"))
    if release is not None and kwargs.get("in_chans", 3) == 3:
        model.data_config = release.data_config
    if global_pool is not None:
        model.head.pool_type = check_pool_type(global_pool)
        model.model_kwargs["global_pool"] = global_pool  # recorded, so a saved checkpoint rebuilds it
    paths = [p for p in (pretrained, checkpoint_path) if p not in (None, False)]
    saved_backbones = [p for p in paths if features_only and "backbone" in read_metadata(p).get("structure", "")]
    for path in paths:
        if path not in saved_backbones:
            load_checkpoint(model, path)
    if features_only:
        backbone = FeatureBackbone(model, out_indices, out_norms)
        for path in saved_backbones:  # a saved backbone (its maps' norms too) loads into the backbone
            load_checkpoint(backbone, path)
        return backbone
    if out_indices is not None or out_norms:
        raise ConfigError("out_indices and out_norms shape a backbone: pass features_only=True as well")
    return model


def model_data_config(name: str, **kwargs: Any) -> DataConfig:
    """The preprocessing ``create_model(name, **kwargs)`` would carry, without building the model."""
    name, tag = split_tag(name)
    if tag is not None and kwargs.get("in_chans", 3) == 3:
        return find_released(name, tag).data_config
    spec = get_model_spec(name)
    spec.check_options(kwargs)
    return spec.data_config_for(kwargs.get("in_chans"))
