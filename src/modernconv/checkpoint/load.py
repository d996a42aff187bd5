"""Fitting a checkpoint's tensors to a model: rename, reshape, adapt the stem, report what differs."""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CheckpointError
from .fcmae_layout import fcmae_encoder, is_fcmae_checkpoint
from .formats import detect_format
from .io import read_checkpoint

NETWORK_PREFIX = "model."  # a modality model: adapter.* in front of model.* (modernconv.modalities)
MODALITY_PARTS = ("adapter.", NETWORK_PREFIX)

CLASSIFIER_PREFIX = "head.fc."
CLASSIFIER_WEIGHTS = ("head.fc.weight", "head.weight", "fc.weight", "classifier.weight")  # in the layouts we read
HEAD_NORM_PREFIX = "head.norm."  # absent from encoder-only files (FCMAE pre-training, the authors' FCMAE release)


@dataclass
class LoadReport:
    """What happened when a checkpoint was fitted to a model."""

    source_format: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # "name: checkpoint shape vs model shape"
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("mis-shaped", self.mismatched)):
            if items:
                shown = ", ".join(items[:6]) + (f", ... ({len(items)} in all)" if len(items) > 6 else "")
                parts.append(f"{label}: {shown}")
        return "; ".join(parts)


def to_our_names(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor] | None = None
                 ) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """``source`` under our names: (tensors, the layout it came in, notes). A whole FCMAE checkpoint gives its
    encoder, and a modality model's checkpoint (``adapter.*`` + ``model.*``) its network, unless ``target`` is
    itself such a model."""
    notes = []
    if _is_modality_checkpoint(list(source)) and not _is_modality_checkpoint(list(target or {})):
        source = {k[len(NETWORK_PREFIX):]: v for k, v in source.items() if k.startswith(NETWORK_PREFIX)}
        notes.append("a modality model's checkpoint: loaded its network, left out its adapter")
    pretraining = is_fcmae_checkpoint(list(source)) and not is_fcmae_checkpoint(list(target or {}))
    if pretraining:
        source = fcmae_encoder(source)
        notes.append("FCMAE pre-training checkpoint: loaded its encoder, left out its decoder")
    fmt = detect_format(list(source), list(target or {}))
    layout = f"FCMAE encoder, {fmt.name}" if pretraining else fmt.name
    renamed = {fmt.rename(k): v for k, v in source.items()}
    then = detect_format(list(renamed), list(target or {}))
    if then is not fmt and then.target is not None:  # a foreign ConvNeXt file, ours now, into the roadmap's names
        renamed, layout = {then.rename(k): v for k, v in renamed.items()}, f"{layout}, {then.name}"
    return renamed, layout, notes


def _is_modality_checkpoint(keys: list[str]) -> bool:
    """A modality model's tensors: an adapter (possibly without weights) in front of ``model.*``."""
    return any(k.startswith(NETWORK_PREFIX) for k in keys) and all(k.startswith(MODALITY_PARTS) for k in keys)


def fit_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                   in_chans: int | None = None) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Convert ``source`` (any known layout) to the names and shapes of ``target`` (a model's state dict,
    possibly on the meta device). Returns the tensors that fit and a report of the rest."""
    renamed, layout, notes = to_our_names(source, target)
    report = LoadReport(layout, notes=notes)
    first_conv = _first_conv_key(target, in_chans)
    fitted = {}
    for key, wanted in target.items():  # in the model's order, so reports read from stem to head
        if key not in renamed:
            report.missing.append(key)
            continue
        value, want = renamed[key], wanted.shape
        if value.shape == want:
            fitted[key] = value
        elif value.numel() == math.prod(want) and _squeeze(value.shape) == _squeeze(want):
            fitted[key] = value.reshape(want)
        elif key == first_conv and value.ndim == 4 and value.shape[0] == want[0] and value.shape[2:] == want[2:]:
            fitted[key] = adapt_input_conv(value, want[1])
            report.notes.append(f"adapted the first conv {key} from {value.shape[1]} to {want[1]} input channels")
        else:
            report.mismatched.append(f"{key}: {tuple(value.shape)} vs {tuple(want)}")
    report.unexpected = [k for k in renamed if k not in target]
    return fitted, report


def _squeeze(shape: torch.Size) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _first_conv_key(target: dict[str, torch.Tensor], in_chans: int | None) -> str | None:
    """The stem conv: the first 4-D weight, if its input channels are the model's."""
    key = next((k for k, v in target.items() if v.ndim == 4 and k.endswith("weight")), None)
    if key is None or (in_chans is not None and target[key].shape[1] != in_chans):
        return None
    return key


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Stem weights for another channel count: summed for 1 channel, else tiled and rescaled so that
    an input whose channels are all equal gives the same response."""
    src = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = math.ceil(in_chans / src)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (src / in_chans)


def _is_head_only(report: LoadReport) -> bool:
    """Only the classifier differs, or the file also lacks ``head.norm`` (an encoder-only file)."""
    names = report.unexpected + [m.split(":")[0] for m in report.mismatched]
    missing_ok = all(n.startswith((CLASSIFIER_PREFIX, HEAD_NORM_PREFIX)) for n in report.missing)
    return missing_ok and all(n.startswith(CLASSIFIER_PREFIX) for n in names)


def is_encoder_only(report: LoadReport) -> bool:
    """Everything but the head (its norm, and the classifier if the model has one) fitted."""
    missing = report.missing
    return (not report.unexpected and not report.mismatched and any(n.startswith(HEAD_NORM_PREFIX) for n in missing)
            and all(n.startswith((CLASSIFIER_PREFIX, HEAD_NORM_PREFIX)) for n in missing))


def check_values(fitted: dict[str, torch.Tensor], target: dict[str, torch.Tensor], source: str) -> None:
    """Refuse tensors with NaN/inf values, and integer tensors where the model holds floating-point ones."""
    integer = [k for k, v in fitted.items() if target[k].is_floating_point() and not v.is_floating_point()]
    if integer:
        raise CheckpointError(f"{source} holds integer tensors where the model has floating-point weights: "
                              f"{', '.join(integer[:3])}{' ...' if len(integer) > 3 else ''}")
    bad = [k for k, v in fitted.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{source} holds NaN or infinite values in {len(bad)} tensors "
                              f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); it cannot be used")


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True,
                    require_head: bool = False, use_ema: bool = True) -> LoadReport:
    """Load any supported checkpoint into ``model`` (ours, timm's, the authors' releases; .safetensors,
    .pth, .pt), converting names and shapes.

    If only the classifier differs (e.g. fine-tuning to new classes) the rest is loaded and a warning
    says so. An encoder-only file (no ``head.norm`` and no classifier, as FCMAE pre-training writes and the
    authors' FCMAE encoders are released) loads the same way: the head keeps its fresh initialisation.
    With ``require_head`` (evaluation, prediction) both are refused instead. Any other difference raises
    CheckpointError listing it, unless ``strict=False``. NaN/inf values and integer weights are always refused.
    ``path`` may be a folder holding the weights file (Hugging Face ``save_pretrained``); a training checkpoint
    with EMA weights loads those unless ``use_ema=False`` (a note says which). A model made of parts that
    loads them itself (a modality model: adapter and network) does so through its own ``load_tensors``.
    """
    source, metadata = read_checkpoint(path, use_ema)
    own = getattr(model, "load_tensors", None)  # a model of several parts (a modality model) fills them itself
    if callable(own):
        return own(source, metadata, path, strict, require_head)
    return load_tensors(model, source, metadata, path, strict, require_head)


def load_tensors(model: nn.Module, source: dict[str, torch.Tensor], metadata: dict[str, str],
                 path: str | os.PathLike, strict: bool = True, require_head: bool = False) -> LoadReport:
    """``load_checkpoint``'s work on tensors already read from ``path`` (named in messages)."""
    target = model.state_dict()
    fitted, report = fit_state_dict(source, target, getattr(model, "in_chans", None))
    if "chosen_weights" in metadata:
        report.notes.append(f"loaded {metadata['chosen_weights']}")
    check_values(fitted, target, os.fspath(path))
    if require_head and not report.clean and _is_head_only(report):
        kind = "an encoder without a classifier" if is_encoder_only(report) else "a classifier of other classes"
        raise CheckpointError(f"{path} holds {kind}: it cannot classify as it is; fine-tune it first "
                              "(modernconv train --init)")
    if not report.clean:
        if _is_head_only(report):
            classes = next((v for k, v in source.items() if v.dim() == 2 and k.endswith(CLASSIFIER_WEIGHTS)), None)
            for k in [k for k in fitted if k.startswith(CLASSIFIER_PREFIX)]:
                del fitted[k]
            own = (f"; for the checkpoint's own {classes.shape[0]}-class classifier build the model with "
                   f"num_classes={classes.shape[0]}, or rebuild a modernconv checkpoint whole with "
                   "modernconv.load_model(path)") if classes is not None else ""
            report.notes.append("encoder-only checkpoint: the head (norm and classifier) keeps its fresh "
                                "initialisation" if is_encoder_only(report) else
                                "classifier not loaded (checkpoint and model differ in classes); "
                                f"it keeps its fresh initialisation{own}")
        elif strict:
            raise CheckpointError(f"{path} does not fit {getattr(model, 'model_name', type(model).__name__)} "
                                  f"(checkpoint layout: {report.source_format}): {report.problems()}")
    model.load_state_dict(fitted, strict=False)
    for note in report.notes:
        warnings.warn(f"{os.fspath(path)}: {note}", stacklevel=2)
    return report
