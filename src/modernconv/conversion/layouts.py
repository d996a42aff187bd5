"""Writing our weights in the ecosystem's layouts: timm's state dict, a Hugging Face transformers folder, and our
own folder form (``config.json`` + ``model.safetensors``), each readable back by its library and by us.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint.io import save_checkpoint
from ..errors import CheckpointError
from ..files import atomic_write_text
from ..models import get_model_spec

TARGETS = ("ours", "timm", "hf")
# timm builds these with 1x1-conv MLPs (conv_mlp=True): fc1/fc2 weights are (out, in, 1, 1) there
TIMM_CONV_MLP = {f"{family}_{size}" for family in ("convnext", "convnextv2")
                 for size in ("atto", "femto", "pico", "nano")}
HF_FAMILIES = {"convnext": ("convnext", "ConvNextForImageClassification"),
               "convnextv2": ("convnextv2", "ConvNextV2ForImageClassification")}
_CONVMIXER_TO_TIMM = ((r"^blocks\.(\d+)\.conv_dw\.", r"blocks.\1.0.fn.0."),
                      (r"^blocks\.(\d+)\.norm_dw\.", r"blocks.\1.0.fn.2."),
                      (r"^blocks\.(\d+)\.conv_pw\.", r"blocks.\1.1."), (r"^blocks\.(\d+)\.norm_pw\.", r"blocks.\1.3."),
                      (r"^head\.fc\.", "head."))


def _rename(state: dict[str, torch.Tensor], rules: tuple[tuple[str, Any], ...]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        out[key] = value
    return out


def to_timm(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """``state`` (ours, model ``name``) in the layout ``timm.create_model(name)`` loads strictly."""
    family = get_model_spec(name).family
    if family == "convmixer":
        return _rename(state, _CONVMIXER_TO_TIMM)
    if family not in ("convnext", "convnextv2"):
        raise CheckpointError(f"timm has no {name} ({family} family); write it as ours or, for ConvNeXt, as hf")
    conv_mlp = name in TIMM_CONV_MLP
    return {k: v[..., None, None] if conv_mlp and re.search(r"\.mlp\.fc[12]\.weight$", k) else v
            for k, v in state.items()}


def _hf_rules(prefix: str) -> tuple[tuple[str, Callable[[re.Match], str] | str], ...]:
    parts = {"conv_dw.": "dwconv.", "norm.": "layernorm.", "mlp.fc1.": "pwconv1.", "mlp.fc2.": "pwconv2.",
             "gamma": "layer_scale_parameter", "mlp.grn.weight": "grn.weight", "mlp.grn.bias": "grn.bias"}
    block = r"^stages\.(?P<i>\d+)\.blocks\.(?P<j>\d+)\.(?P<part>conv_dw\.|norm\.|mlp\.fc[12]\.|gamma|mlp\.grn\.\w+)"
    return ((r"^stem\.0\.", f"{prefix}.embeddings.patch_embeddings."),
            (r"^stem\.1\.", f"{prefix}.embeddings.layernorm."),
            (r"^stages\.(\d+)\.downsample\.", rf"{prefix}.encoder.stages.\1.downsampling_layer."),
            (block, lambda m: f"{prefix}.encoder.stages.{m['i']}.layers.{m['j']}.{parts[m['part']]}"),
            (r"^head\.norm\.", f"{prefix}.layernorm."), (r"^head\.fc\.", "classifier."))


def to_hf(state: dict[str, torch.Tensor], name: str, options: dict, class_names: list[str]
          ) -> tuple[dict, dict[str, torch.Tensor]]:
    """``state`` as a transformers ConvNext / ConvNextV2 image classifier: (config.json contents, tensors)."""
    spec = get_model_spec(name)
    if spec.family not in HF_FAMILIES or "head.fc.weight" not in state:
        raise CheckpointError(f"transformers has ConvNext and ConvNextV2 image classifiers; {name} "
                              f"({spec.family}{'' if 'head.fc.weight' in state else ', without a classifier'}) "
                              "cannot be written as one")
    arch = {**spec.options(), **options}
    model_type, architecture = HF_FAMILIES[spec.family]
    tensors = _rename(state, _hf_rules(model_type))
    tensors = {k: v.reshape(1, 1, 1, -1) if ".grn." in k else v for k, v in tensors.items()}
    num_classes = state["head.fc.weight"].shape[0]
    labels = class_names if len(class_names) == num_classes else [f"LABEL_{i}" for i in range(num_classes)]
    config = {"model_type": model_type, "architectures": [architecture], "num_channels": arch["in_chans"],
              "patch_size": 4, "num_stages": len(arch["depths"]), "depths": list(arch["depths"]),
              "hidden_sizes": list(arch["dims"]), "hidden_act": "gelu", "layer_norm_eps": 1e-6,
              "drop_path_rate": 0.0, "image_size": 224, "id2label": {str(i): n for i, n in enumerate(labels)},
              "label2id": {n: i for i, n in enumerate(labels)}}
    if spec.family == "convnext":
        config["layer_scale_init_value"] = arch["layer_scale_init_value"] or 0.0
    return config, tensors


def write_folder(folder: str | os.PathLike, config: dict, tensors: dict[str, torch.Tensor],
                 metadata: dict | None = None) -> Path:
    """``config.json`` + ``model.safetensors`` in ``folder`` (created; files written atomically)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"{folder} exists and is not a folder")
    save_checkpoint({k: v.contiguous() for k, v in tensors.items()}, folder / "model.safetensors", metadata=metadata)
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder
