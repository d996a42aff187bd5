"""``import modernconv.timm_plugin``: every model of ours that timm lacks (UniRepLKNet, the isotropic ConvNeXts,
the design roadmap's tracks, ...) registered in timm's registry under its own name, built by our code, with its
``pretrained_cfg``. Then whatever is built on timm takes them: ``timm.create_model("unireplknet_a",
features_only=True)``, timm's ``train.py`` / ``validate.py`` (a launcher that imports this module first),
transformers' ``TimmBackbone``, segmentation_models_pytorch's ``tu-`` encoders. Models timm has already
(convnext_tiny, ...) stay timm's own. Needs timm installed."""
from __future__ import annotations

from typing import Any, Callable

from timm.models import is_model, register_model

from .models import create_model, get_model_spec, list_models

default_cfgs: dict[str, dict[str, Any]] = {}  # read by timm's register_model: each model's pretrained_cfg


def _entrypoint(name: str) -> Callable[..., Any]:
    """timm's model function for ``name``: timm's arguments in, our model out."""
    def build(pretrained: bool = False, **kwargs: Any) -> Any:
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's, for its own loader
            kwargs.pop(key, None)
        return create_model(name, pretrained=pretrained or None, **kwargs)

    build.__name__, build.__qualname__, build.__module__ = name, name, __name__
    build.__doc__ = f"modernconv's {name}"
    return build


def _cfg(name: str) -> dict[str, Any]:
    """timm's cfg of ``name`` (its data config; weights come from our cache, not timm's hub)."""
    data = get_model_spec(name).data_config
    return {"input_size": tuple(data.input_size), "mean": tuple(data.mean), "std": tuple(data.std),
            "crop_pct": data.crop_pct, "interpolation": data.interpolation, "num_classes": 1000,
            "first_conv": "stem.0", "classifier": "head.fc", "license": "see modernconv weights"}


REGISTERED: list[str] = []
for _name in list_models():
    if not is_model(_name):
        default_cfgs[_name] = _cfg(_name)
        register_model(_entrypoint(_name))
        REGISTERED.append(_name)
