"""The backbone of every dense model: a registered network cut to its four stage maps, with the authors'
per-output norms, refused when it has no pyramid."""
from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ConfigError
from ..models import create_model
from ..models.features import FeatureBackbone


def pyramid_backbone(name: str, out_norms: bool | None = None, pretrained: str | None = None,
                     **kwargs: Any) -> FeatureBackbone:
    """Registered model ``name`` (``kwargs``: its ``create_model`` options; ``pretrained``: classification
    weights in any layout ``load_checkpoint`` reads, classifier left out) as its four stage maps (strides 4 to
    32). ``out_norms``: a LayerNorm on each map (None: where the backbone normalises with LayerNorm, as the
    authors' ConvNeXt and UniRepLKNet dense backbones do; not for the BatchNorm ResNet steps, as mmdetection's and
    mmsegmentation's ResNet). Models of one resolution (ConvMixer, isotropic ConvNeXt) are a ConfigError."""
    network = create_model(name, pretrained=pretrained, **kwargs)
    reductions = [f["reduction"] for f in network.feature_info]
    if len(reductions) < 4 or len(set(reductions)) < len(reductions):
        raise ConfigError(f"{name} keeps one resolution (stride {reductions[-1]} in every block); dense heads need "
                          "a pyramid of four stages: use a hierarchical model (ConvNeXt, ConvNeXt V2, UniRepLKNet, "
                          "a roadmap step)")
    if out_norms is None:
        out_norms = any(isinstance(m, nn.LayerNorm) for m in network.modules())
    return FeatureBackbone(network, (0, 1, 2, 3), out_norms)
