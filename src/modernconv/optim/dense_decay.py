"""The layer-wise lr decay of the authors' dense-prediction code (ConvNeXt's and UniRepLKNet's mmsegmentation and
mmdetection configs, ``LearningRateDecayOptimizerConstructor``), on a segmenter's or detector's parameter names:
``backbone.model.stem``, ``backbone.model.stages.{i}.downsample``, ``backbone.model.stages.{i}.blocks.{j}`` (a
detector's under ``backbone.body.model.``), and everything else (the per-output norms, the heads, the neck) after
the backbone.

With ``num_layers`` n (the authors' "num_layers": 6 for ConvNeXt-T, 12 for the deeper ones; by default
3 + ceil(depth of stage 2 / 3)), a parameter with id k gets ``lr_scale = decay ** (n + 1 - k)``, where
- ``stage_wise``: the stem and every downsampling layer id 0, stage i's blocks id i + 1, the rest n + 1;
- ``layer_wise``: the stem 0; stage 0's blocks 1; stage 1's downsampling and blocks 2; stage 2's downsampling 3
  and its blocks 3 + j // 3 (groups of three); stage 3 (downsampling and blocks) n; the rest n + 1.
"""
from __future__ import annotations

import re
from typing import Iterable

DECAY_TYPES = ("stage_wise", "layer_wise")
_PART = re.compile(r"^backbone\.(?:body\.)?model\."
                   r"(?:(?P<stem>stem)|stages\.(?P<stage>\d+)\.(?:(?P<down>downsample)|"
                   r"blocks\.(?P<block>\d+)))\.")


def default_num_layers(stage2_depth: int) -> int:
    """The authors' ``num_layers`` for a backbone whose stage 2 has ``stage2_depth`` blocks (9 -> 6, 27 -> 12)."""
    return 3 + -(-stage2_depth // 3)


def dense_layer_id(name: str, decay_type: str, num_layers: int) -> int:
    """The decay id of parameter ``name`` (see the module docstring)."""
    part = _PART.match(name)
    if part is None:
        return num_layers + 1
    if part["stem"]:
        return 0
    stage = int(part["stage"])
    if decay_type == "stage_wise":
        return 0 if part["down"] else stage + 1
    if stage == 3:
        return num_layers
    if part["down"]:
        return stage + 1
    return stage + 1 if stage < 2 else 3 + int(part["block"]) // 3


def dense_lr_scales(names: Iterable[str], decay: float, decay_type: str, num_layers: int) -> dict[str, float]:
    """``lr_scale`` of every parameter name: ``decay ** (num_layers + 1 - id)``."""
    return {n: decay ** (num_layers + 1 - dense_layer_id(n, decay_type, num_layers)) for n in names}
