"""Commands about models and weights: models, weights, info, bench, convert, export."""
from __future__ import annotations

import argparse
import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..variants import list_variants
from .common import (add_command, add_fast_options, build_from_args, fast_path, free_path, model_or_checkpoint,
                     parse_input_size)


def cmd_models(args: argparse.Namespace) -> int:
    """List registered models (fnmatch PATTERN)."""
    found = list_variants(args.pattern)
    if not found:
        raise UserError(f"no model matches {args.pattern!r}; try `modernconv models` for all of them")
    for name, family in found:
        print(f"{name:32s} {family}" if args.family else name)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    """List the released weights `create_model(NAME.TAG, pretrained=True)` knows (fnmatch PATTERN): classes,
    input size, licence, whether the file is in the weights cache ($MODERNCONV_CACHE or ~/.cache/modernconv),
    and its file name. Nothing is downloaded: put the files there yourself."""
    from ..models.released import cache_dir, candidates, list_pretrained, released_weights

    found = list_pretrained(args.pattern)
    if not found:
        raise UserError(f"no released weights match {args.pattern!r}; try `modernconv weights` for all of them")
    rows = [released_weights()[key] for key in found]
    cache = cache_dir()
    if args.json:
        print(json.dumps([{**dataclasses.asdict(r), "key": r.key,
                           "present": any(p.is_file() for p in candidates(r, cache))} for r in rows]))
        return 0
    print(f"weights cache: {cache}")
    print(f"{'NAME.TAG':48s} {'CLASSES':>14}  {'INPUT':>7}  {'LICENCE':20s} {'IN CACHE':8s} FILE (put it in the cache)")
    for r in rows:
        present = "yes" if any(p.is_file() for p in candidates(r, cache)) else "no"
        size = "x".join(map(str, r.input_size[1:]))
        print(f"{r.key:48s} {r.num_classes:>6} classes  {size:>7}  {r.license:20s} {present:8s} {r.file}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Parameters, trainable parameters, GMACs (FlopCounterMode / 2) and feature channels and strides of MODEL."""
    from ..analysis import profile_model

    model = build_from_args(args, device="meta")  # count without allocating or computing
    size = parse_input_size(args.input_size) if args.input_size else None
    profile = profile_model(model, size)
    if args.json:
        print(json.dumps(profile.to_dict()))
        return 0
    print(f"model            {profile.model}")
    print(f"input size       {' x '.join(map(str, profile.input_size))}")
    print(f"params           {profile.params:,}")
    print(f"trainable params {profile.trainable_params:,}")
    print(f"GMACs            {profile.gmacs:.3f}")
    print("features         " + ", ".join(f"{f['channels']}@/{f['reduction']}" for f in profile.features))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Warm up, then time steps of MODEL and print the median images/s and the peak memory (CUDA allocated, or
    process RSS on CPU)."""
    import torch

    from ..analysis import benchmark
    from ..runtime import resolve_device

    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        raise UserError("--batch-size and --steps must be at least 1 and --warmup at least 0")
    if args.fast and (args.mode != "infer" or args.dtype != "fp32" or args.channels_last):
        raise UserError("--fast sets the precision and memory format itself and runs inference: leave --mode, "
                        "--dtype and --channels-last out")
    model = build_from_args(args, resolve_device(args.device))
    size = parse_input_size(args.input_size) if args.input_size else model.data_config.input_size
    model.check_input(torch.empty(1, *size, device="meta"))
    model = fast_path(model, args, size=size)
    result = benchmark(model, args.batch_size, size, args.mode, args.dtype, args.channels_last, args.device,
                       args.warmup, args.steps)
    if args.fast:
        result.dtype = f"fast path {model.precision}{' compiled' if model.compiled is not None else ''}"
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{result.model} {result.mode} {result.dtype} batch {result.batch_size} "
              f"{'x'.join(map(str, result.input_size))} on {result.device}"
              f"{' channels-last' if result.channels_last else ''}: {result.images_per_s:.1f} images/s "
              f"(median step {result.median_step_ms:.1f} ms), peak {result.memory_kind} "
              f"{result.peak_memory_mb:.0f} MB")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Read SRC (ours, timm's, torchvision's, Hugging Face transformers' or the authors' layout;
    .safetensors/.pth/.pt/.bin, or a folder holding one, such as a save_pretrained folder) and write DST as
    modernconv safetensors. The model is inferred from the tensor shapes unless --model is given. A training
    checkpoint with EMA weights gives those (say which with a note) unless --no-ema."""
    from ..conversion import convert_checkpoint

    free_path(args.dst, args.force)
    if args.to == "ours" and Path(args.dst).suffix not in ("", ".safetensors"):
        warnings.warn(f"{args.dst} is written as safetensors; name it *.safetensors so other tools recognise it")
    name, report = convert_checkpoint(args.src, args.dst, model=args.model, deploy=args.reparameterize,
                                      use_ema=not args.no_ema, to=args.to)
    form = " deploy form" if args.reparameterize else ""
    written = {"ours": "", "timm": " in timm's layout", "hf": " as a transformers folder"}[args.to]
    print(f"wrote {args.dst}: {name}{form}{written} (from {report.source_format} layout)")
    return 0


def model_or_encoder(source: str, checkpoint: str | None, device: Any, **kwargs: Any) -> tuple[Any, bool]:
    """``model_or_checkpoint``, except that one of our checkpoint files alone that holds an encoder without a head
    (FCMAE pre-training's encoder file, a converted FCMAE release: told by its weights, whatever its metadata says)
    is built as its model with the file as weights, the head freshly initialised, where ``model_or_checkpoint``
    refuses it as unable to classify. Says whether the source was such an encoder."""
    from ..checkpoint import read_checkpoint
    from ..checkpoint.load import is_encoder_only
    from ..conversion import checkpoint_info, fit_to_model
    from ..errors import CheckpointError

    try:
        return model_or_checkpoint(source, checkpoint, device, **kwargs), False
    except CheckpointError:
        info = checkpoint_info(source) if checkpoint is None and Path(source).exists() else None
        if info is None or not is_encoder_only(fit_to_model(read_checkpoint(source)[0], info.model_name)[3]):
            raise
    options = {k: v for k, v in info.model_kwargs.items() if k != "drop_path_rate"}
    model = model_or_checkpoint(info.model_name, source, device, **options)
    model.data_config = info.preprocessing
    return model, True


def cmd_export(args: argparse.Namespace) -> int:
    """Write the deploy form of SOURCE (a model name, with --checkpoint for its weights, or one of our
    checkpoint files) to OUT with a dynamic batch axis (and dynamic height and width when exported at a size
    where every stage's map is at least 2x2), then run the file (onnxruntime for ONNX) on random inputs and real
    images and fail, writing nothing, if its outputs differ from PyTorch's by more than --atol times the
    outputs' scale. A modality checkpoint (audio, video, point clouds, time series) is exported whole, adapter
    included: it takes batches of raw samples of the modality's shape (a clip, a clip's frames, a cloud, a
    window), checked on random ones. An encoder-only checkpoint (no head, as FCMAE pre-training saves) is exported
    as timm builds such weights (num_classes=0): the feature extractor, whose output is the pooled features
    through the head's LayerNorm at its initial unit scale."""
    from ..analysis.collapse import held_out_images
    from ..deploy import FORMATS, export_model, format_from_name
    from ..deploy.export import check_atol, check_input_size
    from ..modalities import ModalityModel

    check_atol(args.atol)
    if args.calibrate and not args.int8:
        raise UserError("--calibrate goes with --int8")
    fmt = args.format or format_from_name(args.output)
    if fmt is None:
        raise UserError(f"cannot tell the format from the name {args.output}; give --format {', '.join(FORMATS)}")
    output = free_path(args.output, args.force)
    size = parse_input_size(args.input_size) if args.input_size else None
    options = {k: v for k, v in (("num_classes", args.num_classes), ("in_chans", size and size[0])) if v is not None}
    model, encoder = model_or_encoder(args.source, args.checkpoint, "cpu", **options)
    if encoder:
        model.reset_classifier(0)
    if isinstance(model, ModalityModel):
        if size or args.data not in (None, "none"):
            raise UserError(f"--input-size and --data are for image networks; this {model.modality} model is exported "
                            f"at the shape of its raw samples, {model.sample_shape}, and checked on random ones")
        size, data = model.sample_shape, "none"
    else:
        size, data = size or tuple(model.data_config.input_size), args.data or "digits"
    check_input_size(model, size)  # before real images of that size are made
    if args.int8:
        return _export_int8(model, output, fmt, size, args)
    real = None
    if data != "none" and size[1] == size[2]:
        real = held_out_images(data, model, args.images, img_size=size[1], batch_size=args.images)[0]
    report = export_model(model.eval(), output, fmt, size, real, args.atol)
    if isinstance(model, ModalityModel):
        axes = f"batch ({model.modality} samples of shape {'x'.join(map(str, size))})"
    else:
        axes = ("batch, height and width" if report.dynamic_spatial
                else f"batch (height and width fixed at {size[1]}x{size[2]})")
    form = "deploy form" + (" of the encoder's pooled features, num_classes=0" if encoder else "")
    print(f"wrote {output} ({fmt}, {form}, dynamic {axes})")
    for check in report.checks:
        print(f"  {check.inputs}: max |difference| {check.max_abs_diff:.2e} (allowed {check.allowed:.2e})")
    return 0


def _export_int8(model: Any, output: Path, fmt: str, size: tuple[int, int, int], args: argparse.Namespace) -> int:
    """``export --int8``: the int8 QDQ ONNX file, calibrated and checked on ``--calibrate DATA``."""
    import torch

    from ..analysis.collapse import held_out_images
    from ..deploy.onnx_int8 import export_int8_onnx
    from ..modalities import ModalityModel
    from .common import CALIBRATION_SAMPLES, calibration_data

    if fmt != "onnx" or isinstance(model, ModalityModel) or not args.calibrate:
        raise UserError("--int8 writes an image classifier's ONNX file (an .onnx OUT) calibrated on --calibrate "
                        "DATA")
    if size[1] != size[2]:
        raise UserError("--int8 calibrates on square images; give a square --input-size")
    held_out = torch.cat(held_out_images(args.calibrate, model, CALIBRATION_SAMPLES * 2, img_size=size[1]))
    report = export_int8_onnx(model.eval(), output, size, calibration_data(model, args.calibrate, None, size),
                              held_out)
    print(f"wrote {output} (onnx, int8 QDQ, deploy form, dynamic batch; {'x'.join(map(str, size))} images)")
    print(f"  top-1 agreement with the float model on {report.images} held-out images of {args.calibrate}: "
          f"{100 * report.agreement:.2f}% (largest logit difference {report.max_logit_error:.3f} of the largest logit)")
    return 0


def add_parsers(sub: argparse._SubParsersAction, command: str | None) -> None:
    """The parsers of this module's commands (``command``: the one being run, for options that need torch)."""
    p = add_command(sub, "models", cmd_models, "list model names")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--family", action="store_true", help="also print each model's family")

    p = add_command(sub, "weights", cmd_weights, "known released weights and whether they are in the cache")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--json", action="store_true", help="print a JSON list")

    p = add_command(sub, "info", cmd_info, "params, GMACs and feature shapes of a model")
    p.add_argument("model")
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"), help="default: the model's data config")
    p.add_argument("--num-classes", type=int, help="classifier size (0 = none)")
    p.add_argument("--reparameterize", action="store_true", help="profile the deploy (re-parameterised) form")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add_command(sub, "bench", cmd_bench, "images/s and peak memory")
    p.add_argument("model")
    p.add_argument("--checkpoint", help="weights to load first (any supported format)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16 (bf16 and fp16 run under autocast)")
    p.add_argument("--mode", choices=["infer", "train"], default="infer",
                   help="infer: eval forward; train: forward + backward + AdamW step")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--reparameterize", action="store_true", help="benchmark the deploy (re-parameterised) form")
    add_fast_options(p)
    p.add_argument("--json", action="store_true")

    p = add_command(sub, "convert", cmd_convert, "convert any supported checkpoint to our safetensors")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--model", help="target model name (default: inferred)")
    p.add_argument("--reparameterize", action="store_true",
                   help="write the deploy form (branches, BatchNorms, layer scale folded; same outputs)")
    p.add_argument("--to", choices=["ours", "timm", "hf"], default="ours",
                   help="ours (DST.safetensors; a DST without a suffix: a folder, config.json + "
                        "model.safetensors), timm (timm's state dict) or hf (a transformers save_pretrained folder)")
    p.add_argument("--no-ema", action="store_true", help="take a training checkpoint's plain weights, not its EMA")
    p.add_argument("--force", action="store_true", help="overwrite DST if it exists")

    p = add_command(sub, "export", cmd_export, "export to ONNX, TorchScript or PT2, checked against PyTorch")
    p.add_argument("source", metavar="SOURCE", help="model name or checkpoint file")
    p.add_argument("output", metavar="OUT", help="file to write (.onnx, .pt2, .pt)")
    p.add_argument("--format", help="onnx, torchscript or pt2 (default: from OUT's suffix)")
    p.add_argument("--checkpoint", help="with a model name: weights to load (any supported format)")
    p.add_argument("--num-classes", type=int, help="with a model name: classifier size")
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"), help="default: the model's data config")
    p.add_argument("--data", help="real images to check on: digits (the default), a folder, or none (a modality "
                                  "model: random raw samples only)")
    p.add_argument("--images", type=int, default=8, help="how many real images (default 8)")
    p.add_argument("--atol", type=float, default=1e-4,
                   help="allowed output difference (a finite number >= 0) per unit of output scale: a check allows "
                        "ATOL x max(1, largest "
                        "|output| of the PyTorch model), since rounding differences grow with the outputs "
                        "(default 1e-4)")
    p.add_argument("--int8", action="store_true", help="ONNX only: an int8 QDQ file (onnxruntime's static "
                                                       "quantization), calibrated with --calibrate")
    p.add_argument("--calibrate", metavar="DATA", help="with --int8: calibrate on training images of DATA and keep "
                                                       "the file only if its top-1 agrees with the float model's on "
                                                       "99%% of DATA's held-out images")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
