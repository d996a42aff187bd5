"""Rebuilding a model from one of our checkpoint files alone (name, options, labels and preprocessing travel
inside)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_checkpoint, read_checkpoint, read_metadata
from ..data.preprocessing import DataConfig
from ..errors import CheckpointError, ConfigError
from ..dense import create_detector, create_segmenter
from ..modalities import IMAGE, create_modality_model, get_modality
from ..models import create_model, model_data_config


@dataclass
class CheckpointInfo:
    """What a modernconv checkpoint says about itself."""

    model_name: str
    model_kwargs: dict
    class_names: list[str] = field(default_factory=list)
    preprocessing: DataConfig = DataConfig()
    modality: str = IMAGE
    modality_options: Any = None  # the modality's options, typed as the run had them (images: ImageOptions)
    task: str = "classification"  # the task that trained it (modernconv.tasks.TASKS)
    segmenter: dict = field(default_factory=dict)  # a segmenter's head widths and evaluation size
    detector: dict = field(default_factory=dict)  # a detector's kind, image sizes and torchvision options
    structure: dict = field(default_factory=dict)  # a pruned model's or a features_only backbone's shape


def recorded_task(meta: dict[str, str], modality_options: dict) -> str:
    """The task a checkpoint's metadata records. Files written before checkpoints named their task are read
    here, the one place that knows: FCMAE's record its settings, a forecaster's options a horizon."""
    if "task" in meta:
        return meta["task"]
    if "fcmae" in meta:
        return "fcmae"
    return "forecasting" if modality_options.get("horizon") else "classification"


def checkpoint_info(path: str | os.PathLike) -> CheckpointInfo:
    """Read the metadata of a checkpoint written by ``save_checkpoint`` / ``modernconv train``; the
    preprocessing defaults to the model's own when the file records none."""
    meta = read_metadata(path)
    if "model" not in meta:
        read_checkpoint(path)  # an unreadable file says so first
        raise CheckpointError(f"{path} does not name its model; convert it first with `modernconv convert` "
                              "or load it into a model you build with load_checkpoint")
    try:
        kwargs, names = json.loads(meta.get("model_kwargs", "{}")), json.loads(meta.get("class_names", "[]"))
        if not isinstance(kwargs, dict) or not isinstance(names, list):
            raise ValueError("model_kwargs must be a mapping and class_names a list")
        fallback = model_data_config(meta["model"], **{k: v for k, v in kwargs.items() if k == "in_chans"})
        preprocessing = DataConfig.from_metadata(meta, fallback)
        recorded = json.loads(meta.get("modality_options", "{}"))
        if not isinstance(recorded, dict):
            raise ValueError("modality_options must be a mapping")
        modality = get_modality(meta.get("modality", IMAGE))
        split = json.loads(meta.get("val_split", "null"))  # an image folder divided by fraction: the same again
        if split is not None and not (isinstance(split, dict) and set(split) == {"fraction", "seed"}):
            raise ValueError("val_split must give fraction and seed")
        options = modality.make_options(recorded, in_chans=kwargs.get("in_chans", 3),
                                        **({"val_split": split["fraction"], "split_seed": split["seed"]} if split
                                           else {}))
        segmenter, detector = json.loads(meta.get("segmenter", "{}")), json.loads(meta.get("detector", "{}"))
        structure = json.loads(meta.get("structure", "{}"))
        if not isinstance(structure, dict) or not set(structure) <= {"pruned", "backbone"}:
            raise ValueError("structure must name pruned or backbone")
    except (json.JSONDecodeError, ValueError, ConfigError) as e:
        raise CheckpointError(f"{path}: corrupt metadata ({e})") from None
    return CheckpointInfo(meta["model"], kwargs, [str(n) for n in names], preprocessing,
                          modality.name, options, recorded_task(meta, recorded), segmenter, detector, structure)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Your own checkpoint (written by ``modernconv train``, ``save_checkpoint`` or ``convert``), whole, in one
    call: the model rebuilt with its options, classes and modality and its weights loaded strictly, in eval mode,
    carrying ``class_names``, ``task`` and ``preprocessing`` (the run's ``DataConfig``: ``preprocessing
    .eval_transform()`` is the transform its evaluation used)."""
    model, info = model_from_checkpoint(path, device)
    model.class_names, model.task, model.preprocessing = info.class_names, info.task, info.preprocessing
    return model


def model_from_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                          ) -> tuple[nn.Module, CheckpointInfo]:
    """The model a checkpoint describes, with its weights loaded strictly (its classifier included), in eval
    mode."""
    info = checkpoint_info(path)
    kwargs = {k: v for k, v in info.model_kwargs.items() if k != "drop_path_rate"}
    if info.task in ("segmentation", "detection"):  # a dense model's backbone has no classifier of its own
        kwargs = {k: v for k, v in kwargs.items() if k not in ("num_classes", "global_pool")}
    try:
        if info.task == "segmentation":
            aux = info.segmenter.get("aux_channels", 256)
            model = create_segmenter(info.model_name, len(info.class_names),
                                     channels=info.segmenter.get("decode_channels", 512), aux_channels=max(aux, 1),
                                     auxiliary=aux > 0, **kwargs)
        elif info.task == "detection":
            found = info.detector
            model = create_detector(found.get("kind", "mask_rcnn"), info.model_name, len(info.class_names),
                                    min_size=tuple(found.get("min_size", (800,))),
                                    max_size=found.get("max_size", 1333), fpn_channels=found.get("fpn_channels", 256),
                                    detector_options=found.get("options"), **kwargs)
        elif "backbone" in info.structure:
            model = create_model(info.model_name, features_only=True, **info.structure["backbone"], **kwargs)
        else:
            model = create_modality_model(info.model_name, info.modality, info.modality_options, **kwargs)
            if "pruned" in info.structure:
                model.prune_intermediate_layers(**info.structure["pruned"])
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: its recorded model options do not build {info.model_name} ({e})") from None
    classes = getattr(model, "num_classes", 0)
    if info.task == "classification" and info.class_names and classes and len(info.class_names) != classes:
        raise CheckpointError(f"{path} names {len(info.class_names)} classes but its classifier has {classes}; "
                              "its class names cannot be trusted")
    load_checkpoint(model, path, strict=True, require_head=not info.structure)
    if "backbone" not in info.structure:  # (a backbone describes its inputs by the model it wraps)
        model.data_config = info.preprocessing  # its size and normalisation, as trained (not the variant's default)
        model.class_names = info.class_names  # (what save_checkpoint and an exported file carry on)
    return model.to(device).eval(), info
