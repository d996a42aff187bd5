"""What several commands share: reading a model from the arguments, the fast path, run configs, paths."""
from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..variants import FAST_PRECISION_NAMES

COMPILE_PAYS_FROM = 500  # predict --fast compiles from this many images on (compiling takes tens of seconds)
CALIBRATION_SAMPLES = 256  # --calibrate reads this many samples (int8 activation ranges settle well before)

# Each command imports the library parts it needs when it runs: `modernconv --help` and `modernconv models`
# start without loading torch.


def json_text(obj: Any) -> str:
    """``obj`` as JSON every parser reads: NaN and infinities (a diverged model's loss, an AP without ground
    truth) as null."""
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value
    return json.dumps(finite(obj), allow_nan=False)


def parse_input_size(values: list[str]) -> tuple[int, int, int]:
    try:
        size = tuple(int(v) for v in values)
    except ValueError:
        raise UserError(f"--input-size takes three integers C H W, got {' '.join(values)}") from None
    if any(v <= 0 for v in size):
        raise UserError(f"--input-size values must be positive, got {' '.join(values)}")
    return size  # type: ignore[return-value]


def build_from_args(args: argparse.Namespace, device: str = "cpu") -> Any:
    """Create the model named in ``args``: channels from ``--input-size``, weights from ``--checkpoint``."""
    import torch

    from ..checkpoint import load_checkpoint
    from ..models import create_model
    from ..reparam import reparameterize

    kwargs = {}
    if args.input_size:
        kwargs["in_chans"] = parse_input_size(args.input_size)[0]
    if getattr(args, "num_classes", None) is not None:
        kwargs["num_classes"] = args.num_classes
    # a released name (NAME.TAG) means its weights, as create_model(NAME.TAG, pretrained=True); counting on the
    # meta device needs none
    released = "." in args.model and not getattr(args, "checkpoint", None) and device != "meta"
    with torch.device(device):
        model = create_model(args.model, pretrained=True if released else None, **kwargs)
    if getattr(args, "checkpoint", None):
        load_checkpoint(model, args.checkpoint)
    if args.reparameterize:
        model = reparameterize(model, inplace=True)
    return model


def fast_path(model: Any, args: argparse.Namespace, compile: bool = True, info: Any = None,
              size: tuple[int, int, int] | None = None) -> Any:
    """``model`` on the fast path when ``--fast`` was given (see ``modernconv.deploy.fast``), else as it is;
    calibrated on ``--calibrate DATA`` (read in the preprocessing of the checkpoint ``info`` describes, else of
    the model at input ``size``)."""
    if not args.fast:
        if args.calibrate:
            raise UserError("--calibrate goes with --fast int8 (or --fast auto)")
        return model
    from ..deploy import optimize_for_inference

    from ..modalities import ModalityModel

    task = info.task if info is not None else "classification"
    if (args.calibrate or args.fast == "int8") and task != "classification":
        raise UserError(f"int8 (--calibrate) applies to classification checkpoints; this one is for {task}")
    if args.fast == "int8" and not args.calibrate:
        raise UserError("--fast int8 needs --calibrate DATA: images like those to be served (a data folder or "
                        "digits), whose activation ranges set the int8 scales")
    calibration = calibration_data(model, args.calibrate, info, size) if args.calibrate else None
    fast = optimize_for_inference(model, args.fast, compile=compile and not args.no_compile,
                                  calibration=calibration, batch_size=args.batch_size)
    network = fast.model if isinstance(fast, ModalityModel) else fast  # (a modality model's network chose)
    if args.fast == "auto":
        print(f"fast path: {network.precision} ({network.reason})", file=sys.stderr, flush=True)
    return fast


def calibration_data(model: Any, source: str, info: Any = None, size: tuple[int, int, int] | None = None) -> Any:
    """Up to ``CALIBRATION_SAMPLES`` samples of the training split of ``source`` (a seeded random choice, so a
    folder sorted by class gives every class), in the preprocessing of the checkpoint, else of the model at
    ``size`` (a square one; the model's own by default)."""
    import torch

    from ..modalities import get_modality
    from ..modalities.image import ImageOptions

    modality = get_modality(info.modality if info is not None else "image")
    preprocessing = info.preprocessing if info is not None else model.data_config
    if size is not None and size[1:] != preprocessing.input_size[1:]:
        if size[1] != size[2]:
            raise UserError("--calibrate reads square images; give a square --input-size")
        preprocessing = preprocessing.replace(img_size=size[2])
    options = info.modality_options if info is not None else ImageOptions(in_chans=model.in_chans)
    train, _, _ = modality.split(source, "train", options, transform=preprocessing.eval_transform())
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:CALIBRATION_SAMPLES]
    return torch.stack([train[int(i)][0] for i in chosen])


def add_command(sub: argparse._SubParsersAction, name: str, func: Callable[..., int], help_text: str,
                **kwargs: Any) -> argparse.ArgumentParser:
    """Subcommand ``name`` running ``func``, described (``--help``) by ``func``'s docstring."""
    p = sub.add_parser(name, help=help_text, description=inspect.cleandoc(func.__doc__ or ""), **kwargs)
    p.set_defaults(func=func)
    return p


def add_checkpoint_options(p: argparse.ArgumentParser, batch_size: int) -> None:
    """The options of the commands that apply a trained checkpoint: which, in batches of how many, read by how
    many processes, on which device."""
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a checkpoint written by `modernconv train` (best.safetensors or last.safetensors in its run "
                        "folder), or any checkpoint that names its model (modernconv convert writes one)")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"inputs per batch (default {batch_size})")
    p.add_argument("--workers", type=int, default=0,
                   help="file-reading processes beside this one (default 0: read here)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")


def add_segment_mode_options(p: argparse.ArgumentParser) -> None:
    """How a segmentation checkpoint is applied (mmsegmentation's test modes); refused for the other tasks."""
    p.add_argument("--crop", type=int, help="segmentation: slide CROP x CROP windows (default: whole images)")
    p.add_argument("--stride", type=int, help="segmentation, with --crop: window step (default: the crop)")
    p.add_argument("--scales", type=float, nargs="+", help="segmentation: average the softmax over these image "
                                                           "scales, e.g. 0.5 0.75 1.0 1.25 1.5 1.75")
    p.add_argument("--flip", action="store_true", help="segmentation: average with the flipped image too")


def segment_mode(args: argparse.Namespace, task: str) -> Any:
    """The ``SegmentMode`` the segmentation options ask for; any of them given for another task is one line."""
    given = [f"--{k}" for k in ("crop", "stride", "scales") if getattr(args, k) is not None] + \
        (["--flip"] if args.flip else [])
    if task != "segmentation":
        if given:
            raise UserError(f"{', '.join(given)} apply to segmentation checkpoints; this one is for {task}")
        return None
    from ..dense.inference import SegmentMode

    return SegmentMode(args.crop, args.stride, tuple(args.scales or (1.0,)), args.flip)


def add_fast_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fast", nargs="?", const="auto", choices=FAST_PRECISION_NAMES,
                   help="the fast path: deploy form, channels-last, torch.compile, in the given precision; alone "
                        "(auto): int8 on an x86 CPU with --calibrate, else bf16 where native, else fp32")
    p.add_argument("--calibrate", metavar="DATA",
                   help=f"with --fast int8/auto: calibrate int8 on {CALIBRATION_SAMPLES} training samples of DATA "
                        "(a data folder, digits, ...: what the model will be served)")
    p.add_argument("--no-compile", action="store_true", help="with --fast: skip torch.compile (no compile wait)")


def run_config(args: argparse.Namespace, extra: list[str], kind: type) -> Any:
    """The recipe (``-c``) with ``--key value`` overrides; a resumed run keeps its own saved configuration."""
    from ..config import check_key, load_config, overrides_from
    from ..engine.state import CONFIG_FILE

    if extra:
        check_key(extra[0], kind)  # names the unknown option (or the task it belongs to)
        raise UserError(f"unexpected argument {extra[0]!r}; options take the form --key value")
    overrides = overrides_from(args, kind)
    recipe = args.config
    if recipe is None and str(overrides.get("resume", "false")).lower() != "false" and "output" in overrides:
        saved = Path(overrides["output"]) / CONFIG_FILE
        recipe = saved if saved.is_file() else None
    return load_config(recipe, overrides, kind)


def model_or_checkpoint(name_or_file: str, checkpoint: str | None, device: Any, **kwargs: Any) -> Any:
    """A registered model name (built with ``kwargs``; weights from ``checkpoint``, any format, else its fresh
    initialisation), or one of our checkpoint files (or folders) alone, rebuilt with the preprocessing it
    records."""
    from ..conversion import model_from_checkpoint
    from ..models import create_model

    path = Path(name_or_file)
    if not path.exists():
        if path.suffix in (".safetensors", ".pth", ".pt", ".bin") or os.sep in name_or_file:
            raise UserError(f"{name_or_file}: no such checkpoint file or folder")
        released = "." in name_or_file and checkpoint is None  # NAME.TAG: the release's weights, never random ones
        return create_model(name_or_file, pretrained=True if released else checkpoint, **kwargs).to(device)
    if checkpoint:
        raise UserError(f"{name_or_file} is a checkpoint file: give --checkpoint with a model name, or a checkpoint "
                        "file alone")
    return model_from_checkpoint(name_or_file, device)[0]  # with its preprocessing and classes, as trained


def free_path(path: str, force: bool) -> Path:
    """``path`` for a file about to be written: an existing file is only replaced with ``--force``."""
    if Path(path).exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    return Path(path)
