"""The checkpoint layouts of a UperNet segmenter, split into what the backbone network's own layouts cover and the
rest under our names (per-output norms ``backbone.norm{i}``, ``decode_head.*``, ``auxiliary_head.*``):

- ours: ``backbone.model.*`` (the network), ``backbone.norm{i}.*``, heads by mmsegmentation's names;
- the authors' mmsegmentation files (ConvNeXt, UniRepLKNet): ``backbone.*`` in the authors' network layout
  (``downsample_layers``, ``stages``), ``backbone.norm{i}.*``, the same head names;
- Hugging Face's ``UperNetForSemanticSegmentation``: ``backbone.*`` in transformers' ConvNext/ConvNextV2 layout
  with ``backbone.hidden_states_norms.stage{i+1}.*``, heads with ``batch_norm`` for ``bn`` and ``classifier``
  for ``conv_seg``.
"""
from __future__ import annotations

import re

import torch

from ..errors import CheckpointError

BACKBONE, HEADS = "backbone.", ("decode_head.", "auxiliary_head.")
HF_HEAD_NAMES = ((".batch_norm.", ".bn."), (".classifier.", ".conv_seg."))


def split_segmenter_state(source: dict[str, torch.Tensor]
                          ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str]:
    """(the backbone network's tensors, in whatever layout they came; the rest under our names; the layout)."""
    if not any(k.startswith(HEADS) for k in source):
        raise CheckpointError("not a segmentation checkpoint (no decode_head.* weights): to start from a "
                              "classification checkpoint give it as the backbone's weights (--init)")
    hf = any(k.startswith(BACKBONE + "hidden_states_norms.") or ".batch_norm." in k for k in source)
    ours = any(k.startswith(BACKBONE + "model.") for k in source)
    layout = "Hugging Face UperNet" if hf else "modernconv" if ours else "mmsegmentation (the authors')"
    network, rest = {}, {}
    for key, value in source.items():
        if not key.startswith(BACKBONE):
            rest[_hf_head_name(key) if hf else key] = value
            continue
        name = key[len(BACKBONE):]
        norm = re.match(r"^hidden_states_norms\.stage(\d+)\.(.+)$", name)
        if norm:
            rest[f"{BACKBONE}norm{int(norm[1]) - 1}.{norm[2]}"] = value
        elif re.match(r"^norm\d+\.", name):
            rest[key] = value
        else:
            network[name.removeprefix("model.") if ours else name] = value
    return network, rest, layout


def _hf_head_name(key: str) -> str:
    for old, new in HF_HEAD_NAMES:
        key = key.replace(old, new)
    return key
