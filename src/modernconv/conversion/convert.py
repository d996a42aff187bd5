"""Converting any supported checkpoint into our safetensors, inferring the model from tensor shapes."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import LoadReport, fit_state_dict, read_checkpoint, save_checkpoint
from ..checkpoint.load import CLASSIFIER_PREFIX, check_values, is_encoder_only, to_our_names
from ..errors import CheckpointError
from ..files import atomic_write
from ..models import create_model, get_model_spec, list_models
from ..models.roadmap import roadmap_steps
from ..reparam import reparameterize
from .layouts import TARGETS, to_hf, to_timm, write_folder


# what a converted file keeps from its source: the labels and the evaluation preprocessing
CARRIED_METADATA = ("class_names", "preprocessing", "eval")


def _head_and_channels(source: dict[str, torch.Tensor]) -> dict[str, int]:
    """``num_classes`` and ``in_chans`` implied by a checkpoint's tensors."""
    renamed = to_our_names(source)[0]
    head = renamed.get(CLASSIFIER_PREFIX + "weight")
    stem = next((renamed[k] for k in sorted(renamed) if k.startswith("stem") and renamed[k].ndim == 4), None)
    return dict(num_classes=head.shape[0] if head is not None else 0,
                in_chans=stem.shape[1] if stem is not None else 3)


def _problem_count(report: LoadReport) -> int:
    return len(report.missing) + len(report.unexpected) + len(report.mismatched)


def _forms(name: str) -> list[dict[str, Any]]:
    """The forms to try for ``name``: train, and deploy where the family has one; every step of a roadmap track
    (a torchvision ResNet-50 file is its first)."""
    options = get_model_spec(name).options()
    if "step" in options:
        return [{"step": step} for step in roadmap_steps(name)]
    return [{}, {"deploy": True}] if "deploy" in options else [{}]


def fit_to_model(source: dict[str, torch.Tensor], name: str | None = None
                 ) -> tuple[str, dict, dict[str, torch.Tensor], LoadReport]:
    """The registered model (train or deploy form) that ``source`` fits exactly (only ``name`` if given),
    tried on the meta device.

    Returns (model name, the options it needs: num_classes, in_chans, deploy; converted tensors, report).
    """
    base = _head_and_channels(source)
    closest: tuple[str, LoadReport] | None = None
    for candidate in [get_model_spec(name).name] if name else list_models():
        for form in _forms(candidate):
            options = {**base, **form}
            with torch.device("meta"):
                target = create_model(candidate, **options).state_dict()
            fitted, report = fit_state_dict(source, target, options["in_chans"])
            if report.clean or is_encoder_only(report):
                check_values(fitted, target, "the checkpoint")
                return candidate, options, fitted, report
            if closest is None or _problem_count(report) < _problem_count(closest[1]):
                closest = (candidate, report)
    if name:
        raise CheckpointError(f"checkpoint does not fit {name}: {closest[1].problems()}")
    raise CheckpointError(f"checkpoint matches no registered model exactly (closest: {closest[0]}: "
                          f"{closest[1].problems()}); pass --model to choose one")


def check_class_names(names: list, state: dict[str, torch.Tensor], src: str | os.PathLike) -> None:
    """Class names (a config.json's ``id2label``) must name each class of the classifier, no more, no fewer."""
    classifier = state.get(CLASSIFIER_PREFIX + "weight")
    if names and classifier is not None and len(names) != classifier.shape[0]:
        raise CheckpointError(f"{src} names {len(names)} classes (config.json's id2label) but its classifier has "
                              f"{classifier.shape[0]}: fix the labels, or leave them out")


def _non_default(name: str, options: dict) -> dict:
    defaults = get_model_spec(name).options()
    return {k: v for k, v in options.items() if v != defaults[k]}


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, model: str | None = None,
                       deploy: bool = False, use_ema: bool = True, to: str = "ours") -> tuple[str, LoadReport]:
    """Read ``src`` in any supported layout (a file, or a folder holding one) and write ``dst``.

    ``to``: "ours" (modernconv safetensors; a ``dst`` without a suffix is our folder form, ``config.json`` +
    ``model.safetensors``), "timm" (the state dict ``timm.create_model`` loads: .safetensors,
    else a torch pickle) or "hf" (a transformers ``save_pretrained`` folder). With ``deploy`` the weights are
    re-parameterised into the model's deploy form first (ours only). A training checkpoint's EMA weights are
    taken unless ``use_ema`` is False.
    """
    if to not in TARGETS:
        raise CheckpointError(f"--to must be one of {', '.join(TARGETS)}, got {to!r}")
    if deploy and to != "ours":
        raise CheckpointError(f"{to} has no deploy forms: write --reparameterize as ours")
    source, metadata = read_checkpoint(src, use_ema)
    name, options, fitted, report = fit_to_model(source, model or metadata.get("model"))
    if "chosen_weights" in metadata:
        report.notes.append(f"converted {metadata['chosen_weights']}")
    check_class_names(json.loads(metadata.get("class_names", "[]")), fitted, src)
    options = _non_default(name, options)
    extra = {"source_format": report.source_format, **{k: metadata[k] for k in CARRIED_METADATA if k in metadata}}
    if is_encoder_only(report):
        if deploy:
            raise CheckpointError(f"{src} is an encoder without a head: fine-tune it before deploying")
        report.notes.append("encoder-only checkpoint: written without a head")
    for note in report.notes:
        warnings.warn(f"{os.fspath(src)}: {note}", stacklevel=2)
    if deploy:
        net = create_model(name, **options)
        net.load_state_dict(fitted)
        net = reparameterize(net, inplace=True)
        name, options, fitted = name, {**options, "deploy": True}, net.state_dict()
    described = {"model": name, "model_kwargs": options, **extra}
    if to == "timm":
        _write_state(to_timm(fitted, name), dst)
    elif to == "hf":
        names = json.loads(metadata.get("class_names", "[]"))
        write_folder(dst, *to_hf(fitted, name, options, names), metadata={"format": "pt"})
    elif Path(dst).suffix or Path(dst).is_file():
        save_checkpoint(fitted, dst, metadata=described)
    else:
        write_folder(dst, {k: json.loads(v) if k in ("class_names", "preprocessing", "eval") else v
                           for k, v in described.items()}, fitted, metadata=described)
    return name, report


def _write_state(state: dict[str, torch.Tensor], dst: str | os.PathLike) -> None:
    """A plain state dict: safetensors for a .safetensors name, else a torch pickle (both atomic)."""
    if Path(dst).suffix == ".safetensors":
        save_checkpoint(state, dst, metadata={"format": "pt"})
    else:
        atomic_write(dst, lambda tmp: torch.save({k: v.contiguous() for k, v in state.items()}, tmp))
