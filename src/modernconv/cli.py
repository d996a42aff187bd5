"""The `modernconv` command line: parse arguments, build a config, call the library."""
from __future__ import annotations

import argparse
import json
import sys
import warnings

import torch

from . import __version__
from .analysis import benchmark, profile_model
from .checkpoint import convert_checkpoint, load_checkpoint
from .errors import UserError
from .models import create_model, get_model_spec, list_models


def _input_size(values: list[str]) -> tuple[int, int, int]:
    try:
        size = tuple(int(v) for v in values)
    except ValueError:
        raise UserError(f"--input-size takes three integers C H W, got {' '.join(values)}") from None
    if any(v <= 0 for v in size):
        raise UserError(f"--input-size values must be positive, got {' '.join(values)}")
    return size  # type: ignore[return-value]


def _build(args: argparse.Namespace, device: str = "cpu") -> torch.nn.Module:
    """Create the model named in ``args``: channels from ``--input-size``, weights from ``--checkpoint``."""
    kwargs = {}
    if args.input_size:
        kwargs["in_chans"] = _input_size(args.input_size)[0]
    if getattr(args, "num_classes", None) is not None:
        kwargs["num_classes"] = args.num_classes
    with torch.device(device):
        model = create_model(args.model, **kwargs)
    if getattr(args, "checkpoint", None):
        load_checkpoint(model, args.checkpoint)
    return model


def cmd_models(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise UserError(f"no model matches {args.pattern!r}; try `modernconv models` for all of them")
    for name in names:
        print(f"{name:32s} {get_model_spec(name).family}" if args.family else name)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    get_model_spec(args.model)
    model = _build(args, device="meta")  # count without allocating or computing
    size = _input_size(args.input_size) if args.input_size else None
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
    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        raise UserError("--batch-size and --steps must be at least 1 and --warmup at least 0")
    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: no CUDA device is available here; use --device cpu")
    model = _build(args)
    size = _input_size(args.input_size) if args.input_size else model.data_config.input_size
    model.check_input(torch.empty(1, *size, device="meta"))
    result = benchmark(model, args.batch_size, size, args.mode, args.dtype, args.channels_last, args.device,
                       args.warmup, args.steps)
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
    name, report = convert_checkpoint(args.src, args.dst, model=args.model)
    print(f"wrote {args.dst}: {name} (from {report.source_format} layout)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modernconv", description=__doc__)
    parser.add_argument("--version", action="version", version=f"modernconv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list model names", description="List registered models (fnmatch PATTERN).")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--family", action="store_true", help="also print each model's family")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("info", help="params, GMACs and feature shapes of a model",
                       description="Parameters, trainable parameters, GMACs (FlopCounterMode / 2) and "
                                   "feature channels and strides of MODEL.")
    p.add_argument("model")
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"), help="default: the model's data config")
    p.add_argument("--num-classes", type=int, help="classifier size (0 = none)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="images/s and peak memory",
                       description="Warm up, then time steps of MODEL and print the median images/s and the "
                                   "peak memory (CUDA allocated, or process RSS on CPU).")
    p.add_argument("model")
    p.add_argument("--checkpoint", help="weights to load first (any supported format)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="bf16 runs under autocast")
    p.add_argument("--mode", choices=["infer", "train"], default="infer",
                   help="infer: eval forward; train: forward + backward + AdamW step")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("convert", help="convert any supported checkpoint to our safetensors",
                       description="Read SRC (ours, timm's or the authors' layout; .safetensors/.pth/.pt) and "
                                   "write DST as modernconv safetensors. The model is inferred from the "
                                   "tensor shapes unless --model is given.")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--model", help="target model name (default: inferred)")
    p.set_defaults(func=cmd_convert)
    return parser


def _show_note(message: Warning | str, *_args: object, **_kwargs: object) -> None:
    print(f"modernconv: note: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; user mistakes print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_note
            return args.func(args)
    except UserError as e:
        print(f"modernconv: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modernconv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
