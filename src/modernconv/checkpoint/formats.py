"""Known checkpoint key layouts and their renaming into ours.

Our names follow timm's where timm has the model, so timm files need renaming only for ConvMixer; shape
differences (timm's 1x1-conv MLPs, the authors' (1,1,1,C) GRN tensors) are reshaped when loading.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class KeyFormat:
    """A key layout: how to recognise it and how its names map onto ours (first matching rule wins)."""

    name: str
    signature: str
    rules: tuple[tuple[str, Any], ...] = ()  # (pattern, replacement string or function)
    target: str | None = None  # a layout meant for one kind of model only: a key its models have

    def matches(self, keys: list[str], target_keys: list[str] | None = None) -> bool:
        """Whether ``keys`` are in this layout (and, for a model-specific one, ``target_keys`` are its model's)."""
        if self.target is not None and not _any_match(self.target, target_keys or []):
            return False
        return _any_match(self.signature, keys)

    def rename(self, key: str) -> str:
        for pattern, repl in self.rules:
            new, n = re.subn(pattern, repl, key)
            if n:
                return new
        return key


_CONVNEXT_BLOCK = (
    (r"\.dwconv\.", ".conv_dw."),
    (r"\.pwconv1\.", ".mlp.fc1."),
    (r"\.pwconv2\.", ".mlp.fc2."),
    (r"\.grn\.gamma$", ".mlp.grn.weight"),
    (r"\.grn\.beta$", ".mlp.grn.bias"),
)
_HEAD = ((r"^norm\.", "head.norm."), (r"^head\.(?P<param>weight|bias)$", r"head.fc.\g<param>"))


_KEEP_NORM_AND_LAYER_SCALE = (r"\.(?P<name>norm\.|gamma$)", r".\g<name>")  # same name, under blocks.

# the authors' UniRepLKNet block (train and deploy forms) -> ours
_UNIREPLKNET_BLOCK = (
    (r"\.dwconv\.lk_origin\.", ".conv_dw.conv."),
    (r"\.dwconv\.origin_bn\.", ".conv_dw.bn."),
    (r"\.dwconv\.dil_conv_k(?P<k>\d+)_(?P<r>\d+)\.", r".conv_dw.branches.k\g<k>_r\g<r>.conv."),
    (r"\.dwconv\.dil_bn_k(?P<k>\d+)_(?P<r>\d+)\.", r".conv_dw.branches.k\g<k>_r\g<r>.bn."),
    (r"\.dwconv\.", ".conv_dw."),
    (r"\.se\.down\.", ".se.fc1."),
    (r"\.se\.up\.", ".se.fc2."),
    (r"\.pwconv1\.1\.", ".mlp.fc1."),
    (r"\.act\.1\.gamma$", ".mlp.grn.weight"),
    (r"\.act\.1\.beta$", ".mlp.grn.bias"),
    (r"\.pwconv2\.0\.", ".mlp.fc2."),
    (r"\.pwconv2\.2\.", ".norm_mlp."),
    _KEEP_NORM_AND_LAYER_SCALE,
)


def _any_match(pattern: str, keys: list[str]) -> bool:
    compiled = re.compile(pattern)
    return any(compiled.search(k) for k in keys)


def _torchvision_resnet_rules() -> tuple[tuple[str, Any], ...]:
    """torchvision's ResNet (conv1, bn1, layerN.j, fc) -> the roadmap models' first steps."""
    def block(part: str) -> Callable[[re.Match], str]:
        return lambda m: f"stages.{int(m['stage']) - 1}.blocks.{m['block']}.{part}"
    layer = r"^layer(?P<stage>\d)\.(?P<block>\d+)\."
    return ((r"^conv1\.", "stem.0."), (r"^bn1\.", "stem.1."), (r"^fc\.", "head.fc."),
            (layer + r"bn(?P<k>\d)\.", lambda m: block(f"norm{m['k']}.")(m)), (layer, block("")))


def _torchvision_convnext_rules() -> tuple[tuple[str, Any], ...]:
    """torchvision's ConvNeXt (features.0 stem, odd features.i stages of CNBlocks, even ones downsampling,
    classifier) -> ours."""
    parts = {"layer_scale": "gamma", "block.0": "conv_dw", "block.2": "norm", "block.3": "mlp.fc1",
             "block.5": "mlp.fc2"}

    def block(m: re.Match) -> str:
        return f"stages.{int(m['i']) // 2}.blocks.{m['j']}.{parts[m['part']]}{m['rest']}"
    return ((r"^features\.0\.", "stem."),
            (r"^features\.(?P<i>[1357])\.(?P<j>\d+)\.(?P<part>layer_scale|block\.\d)(?P<rest>.*)$", block),
            (r"^features\.(?P<i>[246])\.", lambda m: f"stages.{int(m['i']) // 2}.downsample."),
            (r"^classifier\.0\.", "head.norm."), (r"^classifier\.2\.", "head.fc."))


def _hf_convnext_rules() -> tuple[tuple[str, Any], ...]:
    """Hugging Face transformers' ConvNext / ConvNextV2 (with or without the task model's prefix) -> ours."""
    prefix = r"^(?:convnext(?:v2)?\.)?"
    layer = prefix + r"encoder\.stages\.(?P<i>\d+)\.layers\.(?P<j>\d+)\."
    parts = (("dwconv.", "conv_dw."), ("layernorm.", "norm."), ("pwconv1.", "mlp.fc1."), ("pwconv2.", "mlp.fc2."),
             ("layer_scale_parameter", "gamma"), ("grn.weight", "mlp.grn.weight"), ("grn.bias", "mlp.grn.bias"))
    return ((prefix + r"embeddings\.patch_embeddings\.", "stem.0."), (prefix + r"embeddings\.layernorm\.", "stem.1."),
            (prefix + r"encoder\.stages\.(?P<i>\d+)\.downsampling_layer\.", r"stages.\g<i>.downsample."),
            *((layer + re.escape(old), rf"stages.\g<i>.blocks.\g<j>.{new}") for old, new in parts),
            (prefix + r"layernorm\.", "head.norm."), (r"^classifier\.", "head.fc."))


# a ConvNeXt block (ours/timm's) -> the roadmap's last step, whose blocks name their layers conv1..3, norm1
_CONVNEXT_AS_ROADMAP = ((r"\.conv_dw\.", ".conv1."), (r"(?P<block>\.blocks\.\d+)\.norm\.", r"\g<block>.norm1."),
                        (r"\.mlp\.fc1\.", ".conv2."), (r"\.mlp\.fc2\.", ".conv3."))


def _official_hierarchical_rules(block_rules: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The authors' ConvNeXt-style layout (downsample_layers, stages.i.j, norm, head) with ``block_rules``."""
    block = tuple((r"^stages\.(?P<stage>\d+)\.(?P<block>\d+)" + p, r"stages.\g<stage>.blocks.\g<block>" + r)
                  for p, r in block_rules)
    return ((r"^downsample_layers\.0\.", "stem."),
            (r"^downsample_layers\.(?P<stage>\d+)\.", r"stages.\g<stage>.downsample."),) + block + _HEAD


def _official_isotropic_rules() -> tuple[tuple[str, str], ...]:
    return tuple((r"^(?P<block>blocks\.\d+)" + p, r"\g<block>" + r) for p, r in _CONVNEXT_BLOCK) + _HEAD


def _convmixer_rules(block: str, offset: int) -> tuple[tuple[str, Any], ...]:
    """ConvMixer block renames; ``block`` matches the block index as group "index", ``offset`` is subtracted
    from it."""
    def sub(part: str) -> Callable[[re.Match], str]:
        return lambda m: f"blocks.{int(m['index']) - offset}.{part}."
    return ((block + r"\.0\.fn\.0\.", sub("conv_dw")), (block + r"\.0\.fn\.2\.", sub("norm_dw")),
            (block + r"\.1\.", sub("conv_pw")), (block + r"\.3\.", sub("norm_pw")))


FORMATS: tuple[KeyFormat, ...] = (
    KeyFormat("unireplknet-official", r"^stages\.\d+\.\d+\.se\.down\.weight$",
              _official_hierarchical_rules(_UNIREPLKNET_BLOCK)),
    KeyFormat("convnext-official", r"^downsample_layers\.0\.0\.weight$",
              _official_hierarchical_rules(_CONVNEXT_BLOCK + (_KEEP_NORM_AND_LAYER_SCALE,))),
    KeyFormat("convnext-isotropic-official", r"^blocks\.\d+\.dwconv\.weight$", _official_isotropic_rules()),
    KeyFormat("convmixer-timm", r"^blocks\.\d+\.0\.fn\.0\.weight$",
              _convmixer_rules(r"^blocks\.(?P<index>\d+)", 0) + _HEAD[1:]),
    # the authors' nn.Sequential: 0 conv, 1 act, 2 BN, 3.. blocks, then pool, flatten, Linear
    KeyFormat("convmixer-official", r"^\d+\.0\.fn\.0\.weight$",
              ((r"^(?P<layer>[02])\.", r"stem.\g<layer>."), (r"^\d+\.(?P<param>weight|bias)$", r"head.fc.\g<param>"))
              + _convmixer_rules(r"^(?P<index>\d+)", 3)),
    KeyFormat("torchvision-resnet", r"^layer1\.0\.conv1\.weight$", _torchvision_resnet_rules()),
    KeyFormat("torchvision-convnext", r"^features\.1\.0\.block\.0\.weight$", _torchvision_convnext_rules()),
    KeyFormat("hf-transformers-convnext", r"(^|\.)embeddings\.patch_embeddings\.weight$", _hf_convnext_rules()),
    KeyFormat("convnext as roadmap", r"^stages\.\d+\.blocks\.\d+\.conv_dw\.weight$", _CONVNEXT_AS_ROADMAP,
              target=r"^stages\.\d+\.blocks\.\d+\.conv1\.weight$"),
)
NATIVE = KeyFormat("modernconv/timm", r"")


def detect_format(keys: list[str], target_keys: list[str] | None = None) -> KeyFormat:
    """The first known foreign layout whose signature appears in ``keys`` (and that suits a model with
    ``target_keys``, for a model-specific one); else ours (= timm's)."""
    return next((f for f in FORMATS if f.matches(keys, target_keys)), NATIVE)
