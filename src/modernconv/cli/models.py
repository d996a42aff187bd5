"""Commands about models and weights: models, weights, info, bench, convert, export."""
from __future__ import annotations

import argparse
import dataclasses
import json
import warnings
from pathlib import Path

from ..errors import UserError
from ..variants import list_variants
from .common import build_from_args, fast_path, free_path, model_or_checkpoint, parse_input_size


def cmd_models(args: argparse.Namespace) -> int:
    found = list_variants(args.pattern)
    if not found:
        raise UserError(f"no model matches {args.pattern!r}; try `modernconv models` for all of them")
    for name, family in found:
        print(f"{name:32s} {family}" if args.family else name)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
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
    for r in rows:
        present = "present" if any(p.is_file() for p in candidates(r, cache)) else "-"
        size = "x".join(map(str, r.input_size[1:]))
        print(f"{r.key:48s} {r.num_classes:>6} classes  {size:>7}  {r.license:20s} {present:8s} {r.file}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..analysis import profile_model
    from ..models import get_model_spec

    get_model_spec(args.model)
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
    model = fast_path(model, args)
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


def cmd_export(args: argparse.Namespace) -> int:
    from ..analysis.collapse import held_out_images
    from ..deploy import FORMATS, export_model, format_from_name

    fmt = args.format or format_from_name(args.output)
    if fmt is None:
        raise UserError(f"cannot tell the format from the name {args.output}; give --format {', '.join(FORMATS)}")
    output = free_path(args.output, args.force)
    size = parse_input_size(args.input_size) if args.input_size else None
    options = {k: v for k, v in (("num_classes", args.num_classes), ("in_chans", size and size[0])) if v is not None}
    model = model_or_checkpoint(args.source, args.checkpoint, "cpu", **options).eval()
    size = size or tuple(model.data_config.input_size)
    real = None
    if args.data != "none" and size[1] == size[2]:
        real = held_out_images(args.data, model, args.images, img_size=size[1], batch_size=args.images)[0]
    report = export_model(model, output, fmt, size, real, args.atol)
    axes = ("batch, height and width" if report.dynamic_spatial
            else f"batch (height and width fixed at {size[1]}x{size[2]})")
    print(f"wrote {output} ({fmt}, deploy form, dynamic {axes})")
    for check in report.checks:
        print(f"  {check.inputs}: max |difference| {check.max_abs_diff:.2e} (allowed {check.allowed:.2e})")
    return 0
