"""Rebuilding a model from one of our checkpoint files alone (name, options and labels travel inside)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CheckpointError
from ..models import create_model
from .io import read_metadata
from .load import load_checkpoint


@dataclass
class CheckpointInfo:
    """What a modernconv checkpoint says about itself."""

    model_name: str
    model_kwargs: dict
    class_names: list[str] = field(default_factory=list)
    eval: dict = field(default_factory=dict)  # img_size, mean, std, crop_pct, interpolation


def checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """Read the metadata of a checkpoint written by ``save_checkpoint`` / ``modernconv train``."""
    meta = read_metadata(path)
    if "model" not in meta:
        raise CheckpointError(f"{path} does not name its model; convert it first with `modernconv convert` "
                              "or load it into a model you build with load_checkpoint")
    try:
        return CheckpointInfo(meta["model"], json.loads(meta.get("model_kwargs", "{}")),
                              json.loads(meta.get("class_names", "[]")), json.loads(meta.get("eval", "{}")))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt metadata ({e})") from None


def model_from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                          ) -> tuple[nn.Module, CheckpointInfo]:
    """The model a checkpoint describes, with its weights loaded strictly, in eval mode."""
    info = checkpoint_info(path)
    kwargs = {k: v for k, v in info.model_kwargs.items() if k != "drop_path_rate"}
    model = create_model(info.model_name, **kwargs)
    load_checkpoint(model, path, strict=True)
    return model.to(device).eval(), info
