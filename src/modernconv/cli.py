"""modernconv: modern ConvNets (ConvNeXt V1/V2, UniRepLKNet, ConvMixer) built exactly, trained, pre-trained with
FCMAE, converted, re-parameterised and measured.

examples:
  modernconv models 'convnextv2_*'                     list models
  modernconv info convnext_tiny --json                 parameters and GMACs
  modernconv train                                     train a ConvNeXt on the built-in digits (about a minute)
  modernconv train -c configs/convnext_imagenet.yaml --data /data/imagenet
  modernconv train --output runs/exp1 --resume         continue an interrupted run
  modernconv eval --checkpoint runs/exp1/best.safetensors --data /data/pets
  modernconv predict --checkpoint runs/exp1/best.safetensors cat.jpg dog.png
  modernconv pretrain -c configs/fcmae_digits.yaml     FCMAE pre-training
  modernconv roadmap --list                            the ResNet-50 -> ConvNeXt-T steps: params, GMACs
  modernconv roadmap --epochs 10 --output runs/roadmap every step trained on the digits, table and chart
  modernconv convert weights.pth weights.safetensors --reparameterize
  modernconv export runs/exp1/best.safetensors model.onnx   deploy form, checked in onnxruntime
  modernconv erf runs/exp1/best.safetensors --output runs/erf   effective receptive field: heat map, area ratios

`modernconv COMMAND --help` explains each command and lists its options with their defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

from .errors import RunStopped, UserError
from .variants import list_variants

COMPILE_PAYS_FROM = 500  # predict --fast compiles from this many images on (compiling takes tens of seconds)

# Each command imports the library parts it needs when it runs: `modernconv --help` and `modernconv models`
# start without loading torch.


def _input_size(values: list[str]) -> tuple[int, int, int]:
    try:
        size = tuple(int(v) for v in values)
    except ValueError:
        raise UserError(f"--input-size takes three integers C H W, got {' '.join(values)}") from None
    if any(v <= 0 for v in size):
        raise UserError(f"--input-size values must be positive, got {' '.join(values)}")
    return size  # type: ignore[return-value]


def _build(args: argparse.Namespace, device: str = "cpu") -> Any:
    """Create the model named in ``args``: channels from ``--input-size``, weights from ``--checkpoint``."""
    import torch

    from .checkpoint import load_checkpoint
    from .models import create_model
    from .reparam import reparameterize

    kwargs = {}
    if args.input_size:
        kwargs["in_chans"] = _input_size(args.input_size)[0]
    if getattr(args, "num_classes", None) is not None:
        kwargs["num_classes"] = args.num_classes
    with torch.device(device):
        model = create_model(args.model, **kwargs)
    if getattr(args, "checkpoint", None):
        load_checkpoint(model, args.checkpoint)
    if args.reparameterize:
        model = reparameterize(model, inplace=True)
    return model


def cmd_models(args: argparse.Namespace) -> int:
    found = list_variants(args.pattern)
    if not found:
        raise UserError(f"no model matches {args.pattern!r}; try `modernconv models` for all of them")
    for name, family in found:
        print(f"{name:32s} {family}" if args.family else name)
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from .models.released import cache_dir, candidates, list_pretrained, released_weights

    found = list_pretrained(args.pattern)
    if not found:
        raise UserError(f"no released weights match {args.pattern!r}; try `modernconv weights` for all of them")
    rows = [released_weights()[key] for key in found]
    cache = cache_dir()
    if args.json:
        print(json.dumps([{**dataclasses.asdict(r), "key": r.key, "present": any(p.is_file() for p in candidates(r, cache))}
                          for r in rows]))
        return 0
    print(f"weights cache: {cache}")
    for r in rows:
        present = "present" if any(p.is_file() for p in candidates(r, cache)) else "-"
        size = "x".join(map(str, r.input_size[1:]))
        print(f"{r.key:48s} {r.num_classes:>6} classes  {size:>7}  {r.license:20s} {present:8s} {r.file}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .analysis import profile_model
    from .models import get_model_spec

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


def _fast(model: Any, args: argparse.Namespace, compile: bool = True) -> Any:
    """``model`` on the fast path when ``--fast`` was given (see ``modernconv.deploy.fast``), else as it is."""
    if not args.fast:
        return model
    from .deploy import optimize_for_inference

    return optimize_for_inference(model, args.fast, compile=compile and not args.no_compile)


def _add_fast_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fast", nargs="?", const="bf16", choices=["bf16", "fp16", "fp32"],
                   help="the fast path: deploy form, channels-last, bf16 (or the given precision; fp32 where the "
                        "device lacks it) and torch.compile")
    p.add_argument("--no-compile", action="store_true", help="with --fast: skip torch.compile (no compile wait)")


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from .analysis import benchmark
    from .runtime import resolve_device

    if args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        raise UserError("--batch-size and --steps must be at least 1 and --warmup at least 0")
    if args.fast and (args.mode != "infer" or args.dtype != "fp32" or args.channels_last):
        raise UserError("--fast sets the precision and memory format itself and runs inference: leave --mode, "
                        "--dtype and --channels-last out")
    model = _build(args, resolve_device(args.device))
    size = _input_size(args.input_size) if args.input_size else model.data_config.input_size
    model.check_input(torch.empty(1, *size, device="meta"))
    model = _fast(model, args)
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
    from .conversion import convert_checkpoint

    _free_path(args.dst, args.force)
    if args.to == "ours" and Path(args.dst).suffix not in ("", ".safetensors"):
        warnings.warn(f"{args.dst} is written as safetensors; name it *.safetensors so other tools recognise it")
    name, report = convert_checkpoint(args.src, args.dst, model=args.model, deploy=args.reparameterize,
                                      use_ema=not args.no_ema, to=args.to)
    form = " deploy form" if args.reparameterize else ""
    written = {"ours": "", "timm": " in timm's layout", "hf": " as a transformers folder"}[args.to]
    print(f"wrote {args.dst}: {name}{form}{written} (from {report.source_format} layout)")
    return 0


def _run_config(args: argparse.Namespace, extra: list[str], kind: type) -> Any:
    """The recipe (``-c``) with ``--key value`` overrides; a resumed run keeps its own saved configuration."""
    from .config import check_key, load_config, overrides_from
    from .engine.state import CONFIG_FILE

    if extra:
        check_key(extra[0], kind)  # names the unknown option (or the task it belongs to)
        raise UserError(f"unexpected argument {extra[0]!r}; options take the form --key value")
    overrides = overrides_from(args, kind)
    recipe = args.config
    if recipe is None and "resume" in overrides and "output" in overrides:
        saved = Path(overrides["output"]) / CONFIG_FILE
        recipe = saved if saved.is_file() else None
    return load_config(recipe, overrides, kind)


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from .config import TrainConfig
    from .engine import train

    result = train(_run_config(args, extra, TrainConfig))
    if result.is_main:
        print(f"{result.summary}; run folder {result.run_dir}")
    return 0


def cmd_pretrain(args: argparse.Namespace, extra: list[str]) -> int:
    from .config import PretrainConfig
    from .pretrain.loop import pretrain

    result = pretrain(_run_config(args, extra, PretrainConfig))
    if result.is_main:
        print(f"final loss {result.last.get('train_loss', float('nan')):.4f}; encoder {result.encoder}; "
              f"run folder {result.run_dir}")
    return 0


def cmd_roadmap(args: argparse.Namespace, extra: list[str]) -> int:
    from .config import TrainConfig, load_config
    from .experiments.roadmap import MODERN_RECIPE, check_steps, run_roadmap, step_costs

    steps = check_steps(args.track, args.steps.split(",") if args.steps else None)
    if args.list:
        costs = step_costs(args.track, steps=steps)
        if args.json:
            print(json.dumps([dict(step=c.step, params=c.params, gmacs=c.gmacs, paper_gflops=c.paper_gflops)
                              for c in costs]))
            return 0
        for c in costs:
            paper = f"{c.paper_gflops:6.2f}" if c.paper_gflops is not None else "     -"
            print(f"{c.step:24s} {c.params / 1e6:7.2f}M params  {c.gmacs:6.2f} GMACs  paper {paper} GFLOPs")
        return 0
    if extra:
        raise UserError(f"unexpected argument {extra[0]!r}; options take the form --key value")
    from .config import overrides_from

    overrides = overrides_from(args, TrainConfig)
    refused = sorted({"model", "resume", "init"} & set(overrides))
    if refused:
        raise UserError(f"roadmap does not take --{refused[0]}: it trains the track's steps (--track, --steps) "
                        "and resumes by itself when run again")
    if "output" not in overrides:
        raise UserError("roadmap needs --output DIR (running it again with the same DIR skips finished steps)")
    cfg = load_config(args.config, overrides, TrainConfig, defaults=MODERN_RECIPE)
    table = run_roadmap(cfg, cfg.output, args.track, steps, args.repeats)
    if table:
        best = max(table, key=lambda r: r["top1"])
        print(f"wrote {Path(cfg.output) / 'roadmap.csv'} and roadmap.png; best: {best['step']} "
              f"{best['top1']:.2f}% top-1")
    return 0


def cmd_collapse(args: argparse.Namespace) -> int:
    from .analysis.collapse import checkpoint_curves, write_collapse_csv
    from .plots import plot_collapse
    from .runtime import resolve_device

    curves = checkpoint_curves(args.model, args.checkpoint, args.data, args.images, args.img_size, args.batch_size,
                               resolve_device(args.device))
    csv_path = write_collapse_csv(curves, args.csv)
    png_path = plot_collapse(curves, args.plot, title=f"feature collapse, {args.model}")
    for curve in curves:
        print(f"{curve.label}: mean score {curve.mean:.4f} over {len(curve.score)} blocks "
              f"(first {curve.score[0]:.4f}, last {curve.score[-1]:.4f})")
    print(f"wrote {csv_path} and {png_path}")
    return 0


def _model_or_checkpoint(name_or_file: str, checkpoint: str | None, device: Any, **kwargs: Any) -> Any:
    """A registered model name (built with ``kwargs``; weights from ``checkpoint``, any format, else its fresh
    initialisation), or one of our checkpoint files (or folders) alone, rebuilt with the preprocessing it
    records."""
    from .conversion import model_from_checkpoint
    from .models import create_model

    path = Path(name_or_file)
    if not path.exists():
        if path.suffix in (".safetensors", ".pth", ".pt", ".bin") or os.sep in name_or_file:
            raise UserError(f"{name_or_file}: no such checkpoint file or folder")
        return create_model(name_or_file, pretrained=checkpoint, **kwargs).to(device)
    if checkpoint:
        raise UserError(f"{name_or_file} is a checkpoint file: give --checkpoint with a model name, or a checkpoint "
                        "file alone")
    model, info = model_from_checkpoint(name_or_file, device)
    model.data_config = info.preprocessing  # measure with the preprocessing it was trained with
    return model


def cmd_erf(args: argparse.Namespace) -> int:
    from .analysis.collapse import held_out_images
    from .analysis.erf import measure_erf, write_erf
    from .plots import plot_erf
    from .runtime import resolve_device

    paths = [_free_path(str(Path(args.output) / name), args.force) for name in ("erf.png", "erf.json", "erf.npy")]
    model = _model_or_checkpoint(args.model, args.checkpoint, resolve_device(args.device))
    batches = held_out_images(args.data, model, args.images, args.img_size, args.batch_size)
    weights = args.checkpoint or (args.model if args.model != model.model_name else None)
    result = measure_erf(model, batches, label=f"{model.model_name} ({weights})" if weights else model.model_name)
    write_erf(result, paths[1], paths[2])
    plot_erf([result], paths[0], title=f"effective receptive field, {model.model_name}")
    print(f"{result.label}: high-contribution area ratio "
          + ", ".join(f"{t:.0%} {r:.4f}" for t, r in result.ratios.items())
          + f" ({result.images} images, {result.input_size[0]}x{result.input_size[1]})")
    print(f"wrote {paths[0]}, {paths[1].name} and {paths[2].name}")
    return 0


def _free_path(path: str, force: bool) -> Path:
    """``path`` for a file about to be written: an existing file is only replaced with ``--force``."""
    if Path(path).exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    return Path(path)


def cmd_eval(args: argparse.Namespace) -> int:
    from .conversion import model_from_checkpoint
    from .engine import evaluate_checkpoint
    from .engine.inference import class_names, evaluate_forecaster, is_forecaster
    from .plots import plot_confusion
    from .runtime import resolve_device

    confusion_png = _free_path(args.confusion, args.force) if args.confusion else None
    model, info = model_from_checkpoint(args.checkpoint, resolve_device(args.device))
    if is_forecaster(info):
        errors = evaluate_forecaster(_fast(model, args), info, args.data, args.batch_size, args.workers)
        print(json.dumps(dataclasses.asdict(errors)) if args.json else
              f"MSE {errors.mse:.4f}  MAE {errors.mae:.4f}  (standardised; {errors.count} windows)")
        return 0
    result = evaluate_checkpoint(_fast(model, args), info, args.data, args.batch_size, args.workers, args.split)
    names = class_names(info, model.num_classes)
    if args.json:
        print(json.dumps(result.report(names)), flush=True)
    else:
        print(f"top-1 {result.top1:.2f}%  top-{result.k} {result.top5:.2f}%  loss {result.loss:.4f}  "
              f"({result.count} images)")
        for name, acc in zip(names, result.per_class):
            print(f"  {name:20s} {acc:6.2f}%")
        if confusion_png:
            print(f"confusion matrix: {confusion_png}", flush=True)
    if confusion_png:
        plot_confusion(result.confusion, names, confusion_png)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .conversion import model_from_checkpoint
    from .engine import predict_images
    from .engine.inference import expand_inputs, input_kinds, write_predictions
    from .runtime import resolve_device

    output = _free_path(args.output, args.force) if args.output else None
    if output and output.suffix not in (".csv", ".json"):
        raise UserError(f"--output {output}: name a .csv or .json file")
    model, info = model_from_checkpoint(args.checkpoint, resolve_device(args.device))
    paths = expand_inputs(args.images, *input_kinds(info))
    model = _fast(model, args, compile=len(paths) >= COMPILE_PAYS_FROM)
    predictions = predict_images(model, info, paths, args.topk, args.batch_size, args.workers)
    if args.json:
        print(json.dumps(predictions))
    else:
        for item in predictions:
            if "top" in item:
                print(item["image"] + ": " + ", ".join(f"{p['class']} {100 * p['probability']:.1f}%"
                                                       for p in item["top"]))
    if output:
        write_predictions(predictions, output)
    failed = [item for item in predictions if "error" in item]
    for item in failed:
        print(f"modernconv: error: {item['image']}: {item['error']}", file=sys.stderr)
    return 2 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from .analysis.collapse import held_out_images
    from .deploy import FORMATS, export_model, format_from_name

    fmt = args.format or format_from_name(args.output)
    if fmt is None:
        raise UserError(f"cannot tell the format from the name {args.output}; give --format {', '.join(FORMATS)}")
    output = _free_path(args.output, args.force)
    size = _input_size(args.input_size) if args.input_size else None
    options = {k: v for k, v in (("num_classes", args.num_classes), ("in_chans", size and size[0])) if v is not None}
    model = _model_or_checkpoint(args.source, args.checkpoint, "cpu", **options).eval()
    size = size or tuple(model.data_config.input_size)
    real = None
    if args.data != "none" and size[1] == size[2]:
        real = held_out_images(args.data, model, args.images, img_size=size[1], batch_size=args.images)[0]
    report = export_model(model, output, fmt, size, real, args.atol)
    axes = ("batch, height and width" if report.dynamic_spatial
            else f"batch (height and width fixed at {size[1]}x{size[2]})")
    print(f"wrote {output} ({fmt}, deploy form, dynamic {axes})")
    for check in report.checks:
        print(f"  {check.inputs}: max |difference| {check.max_abs_diff:.2e} (allowed {report.atol:g})")
    return 0


def _add_run_parser(sub: argparse._SubParsersAction, name: str, func: Callable[..., int], with_options: bool,
                    help_text: str, description: str) -> argparse.ArgumentParser:
    """A subcommand run from a YAML recipe (``-c``) plus ``--key value`` options, one per config field (added
    only when this is the command being parsed: they need the config definitions, hence torch)."""
    p = sub.add_parser(name, help=help_text, description=description, allow_abbrev=False)
    p.add_argument("-c", "--config", help="YAML recipe; --key value options override it")
    if with_options:
        from .config import PretrainConfig, TrainConfig, add_config_options
        add_config_options(p, {"train": TrainConfig, "pretrain": PretrainConfig, "roadmap": TrainConfig}[name])
    p.set_defaults(func=func, takes_extra=True)
    return p


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line; ``argv`` (the arguments to parse) decides which run command gets its config options."""
    command = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="modernconv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"modernconv {version('modernconv')}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list model names", description="List registered models (fnmatch PATTERN).")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--family", action="store_true", help="also print each model's family")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("weights", help="known released weights and whether they are in the cache",
                       description="List the released weights `create_model(NAME.TAG, pretrained=True)` knows "
                                   "(fnmatch PATTERN): classes, input size, licence, whether the file is in the "
                                   "weights cache ($MODERNCONV_CACHE or ~/.cache/modernconv), and its file name. "
                                   "Nothing is downloaded: put the files there yourself.")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("info", help="params, GMACs and feature shapes of a model",
                       description="Parameters, trainable parameters, GMACs (FlopCounterMode / 2) and "
                                   "feature channels and strides of MODEL.")
    p.add_argument("model")
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"), help="default: the model's data config")
    p.add_argument("--num-classes", type=int, help="classifier size (0 = none)")
    p.add_argument("--reparameterize", action="store_true", help="profile the deploy (re-parameterised) form")
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
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16 (bf16 and fp16 run under autocast)")
    p.add_argument("--mode", choices=["infer", "train"], default="infer",
                   help="infer: eval forward; train: forward + backward + AdamW step")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--reparameterize", action="store_true", help="benchmark the deploy (re-parameterised) form")
    _add_fast_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("convert", help="convert any supported checkpoint to our safetensors",
                       description="Read SRC (ours, timm's, torchvision's, Hugging Face transformers' or the "
                                   "authors' layout; .safetensors/.pth/.pt/.bin, or a folder holding one, such as "
                                   "a save_pretrained folder) and write DST as modernconv safetensors. The model is "
                                   "inferred from the tensor shapes unless --model is given. A training checkpoint "
                                   "with EMA weights gives those (say which with a note) unless --no-ema.")
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
    p.set_defaults(func=cmd_convert)

    _add_run_parser(sub, "train", cmd_train, command == "train", "train or fine-tune a model (the papers' recipes)",
                    "Train MODEL on DATA. With no arguments: a small ConvNeXt on the built-in digits set. Any option "
                    "of the recipe can be given as --key value (e.g. --model convnextv2_atto --data PATH --epochs 10 "
                    "--lr 1e-3 --batch-size 32); `--output DIR --resume` continues an interrupted run. See configs/ "
                    "for recipes.")
    _add_run_parser(sub, "pretrain", cmd_pretrain, command == "pretrain", "FCMAE masked-autoencoder pre-training of a ConvNeXt encoder",
                    "Pre-train MODEL's encoder with FCMAE (the ConvNeXt V2 recipe: AdamW 0.9/0.95, lr 1.5e-4 x "
                    "batch/256, warm-up + cosine, RandomResizedCrop + flip). DATA is digits, synthetic, a folder of "
                    "images, or a folder whose train/ holds images (class sub-folders or none). Any recipe option "
                    "as --key value (e.g. --model convnextv2_atto --mask-ratio 0.6 --mode sparse --epochs 10); "
                    "`--output DIR --resume` continues a run. Writes encoder.safetensors (loads with "
                    "create_model(..., pretrained=) and `train --init`) and a reconstruction grid per epoch. "
                    "See configs/fcmae_*.yaml.")
    p = _add_run_parser(sub, "roadmap", cmd_roadmap, command == "roadmap",
                        "the ResNet-50 -> ConvNeXt-T design roadmap: costs, or every step trained",
                        "With --list: parameters and GMACs of every step of the ConvNeXt paper's design roadmap next "
                        "to the paper's GFLOPs. Otherwise train every step (or --steps) on DATA with one recipe (the "
                        "first step with ResNet's SGD recipe, the others with the modern one: the given options over "
                        "drop path 0.1, layer scale 1e-6, label smoothing 0.1, RandAugment m5, random erasing 0.1) "
                        "and write OUTPUT/roadmap.csv and roadmap.png; each step is a run folder OUTPUT/STEP/seedN. "
                        "Rerunning skips finished runs and resumes an interrupted one.")
    p.add_argument("--list", action="store_true", help="print each step's parameters and GMACs and stop")
    p.add_argument("--json", action="store_true", help="with --list: a JSON list")
    p.add_argument("--track", default="resnet50_to_convnext_t",
                   help="resnet50_to_convnext_t (default) or resnet200_to_convnext_b")
    p.add_argument("--steps", help="comma-separated steps to train (default: all, in the roadmap's order)")
    p.add_argument("--repeats", type=int, default=1, help="runs per step, seeds SEED, SEED+1, ... (default 1)")

    p = sub.add_parser("export", help="export to ONNX, TorchScript or PT2, checked against PyTorch",
                       description="Write the deploy form of SOURCE (a model name, with --checkpoint for its "
                                   "weights, or one of our checkpoint files) to OUT with a dynamic batch axis (and "
                                   "dynamic height and width when exported at a size where every stage's map is at "
                                   "least 2x2), then run the file (onnxruntime for ONNX) on random inputs and real "
                                   "images and fail, writing nothing, if its outputs differ from PyTorch's by more "
                                   "than --atol.")
    p.add_argument("source", metavar="SOURCE", help="model name or checkpoint file")
    p.add_argument("output", metavar="OUT", help="file to write (.onnx, .pt2, .pt)")
    p.add_argument("--format", help="onnx, torchscript or pt2 (default: from OUT's suffix)")
    p.add_argument("--checkpoint", help="with a model name: weights to load (any supported format)")
    p.add_argument("--num-classes", type=int, help="with a model name: classifier size")
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"), help="default: the model's data config")
    p.add_argument("--data", default="digits", help="real images to check on: digits, a folder, or none")
    p.add_argument("--images", type=int, default=8, help="how many real images (default 8)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed output difference (default 1e-4)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("collapse", help="per-block feature-collapse scores of checkpoints (CSV + PNG)",
                       description="The ConvNeXt V2 paper's feature-collapse score of every block's expansion-MLP "
                                   "activation (after GELU, before GRN): the mean over channel pairs of "
                                   "(1 - cos) / 2, averaged over held-out images of DATA, against normalised depth. "
                                   "Low = collapsed. One curve per checkpoint (encoder-only files load too).")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True, nargs="+", metavar="PATH")
    p.add_argument("--data", default="digits", help="digits, synthetic, or a folder of images (its val/ if any)")
    p.add_argument("--images", type=int, default=256, help="how many images to average over (default 256)")
    p.add_argument("--img-size", type=int, help="default: the model's data config")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device")
    p.add_argument("--csv", default="collapse.csv", help="where to write the scores (default collapse.csv)")
    p.add_argument("--plot", default="collapse.png", help="where to write the plot (default collapse.png)")
    p.set_defaults(func=cmd_collapse)

    p = sub.add_parser("erf", help="effective receptive field of a model (heat map PNG, ratios JSON, map NPY)",
                       description="RepLKNet's effective-receptive-field measurement: the gradient of the central "
                                   "last-stage output (ReLU, summed over channels) with respect to the input, ReLU'd, "
                                   "summed over channels and averaged over images of DATA; drawn log-scaled, "
                                   "log10(x + 1). Prints the high-contribution area ratios: the smallest centred "
                                   "square holding 20/30/50/99% of the log-scaled map, as a fraction of the image. "
                                   "Writes DIR/erf.png, erf.json and erf.npy (the raw mean map).")
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT",
                   help="a model name (random init unless --checkpoint) or a checkpoint written by modernconv")
    p.add_argument("--checkpoint", help="weights for the named model (any supported format)")
    p.add_argument("--data", default="digits", help="digits, synthetic, or a folder of images (its val/ if any)")
    p.add_argument("--images", type=int, default=50, help="how many images to average over (default 50, as RepLKNet)")
    p.add_argument("--img-size", type=int, default=224,
                   help="input side (default 224: a 7x7 last-stage map at stride 32; RepLKNet used 1024). The "
                        "8x8 digits are upsampled to it")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for erf.png, erf.json and erf.npy")
    p.add_argument("--force", action="store_true", help="overwrite the files in DIR if they exist")
    p.set_defaults(func=cmd_erf)

    p = sub.add_parser("eval", help="accuracy of a checkpoint on a data set",
                       description="Top-1, top-5, loss and per-class accuracy of a checkpoint written by "
                                   "`modernconv train` on a held-out split of DATA (read alone; labelled with the "
                                   "checkpoint's classes).")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default="digits",
                   help="digits, synthetic, or a folder with SPLIT/<class>/ folders or class folders itself "
                        "(default digits)")
    p.add_argument("--split", default="val", help="the held-out split: val, test or validation (default val)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device")
    p.add_argument("--confusion", metavar="PNG", help="also write the confusion matrix to this PNG")
    p.add_argument("--force", action="store_true", help="overwrite the --confusion file if it exists")
    _add_fast_options(p)
    p.add_argument("--json", action="store_true",
                   help='print {"top1", "topK", "loss", "count", "per_class"} (percent)')
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="top-k classes of images (or audio, video, point-cloud files)",
                       description="Classify images with a checkpoint written by `modernconv train` (or any with "
                                   "its model named; 1000-class checkpoints without names get ImageNet's), or the "
                                   "files of its modality (audio clips, videos or frame folders, meshes or point "
                                   "arrays). INPUT: files, folders (every such file below) and glob patterns.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", metavar="INPUT")
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="image-decoding processes")
    p.add_argument("--device")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--output", metavar="FILE", help="also write the results to a .csv or .json file")
    p.add_argument("--force", action="store_true", help="overwrite the --output file if it exists")
    _add_fast_options(p)
    p.set_defaults(func=cmd_predict)
    return parser


def _show_note(message: Warning | str, *_args: object, **_kwargs: object) -> None:
    print(f"modernconv: note: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes print one line and return 2; anything unexpected one line and 1 (the
    traceback with --debug); a closed output pipe ends quietly."""
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_extra", False):
        parser.parse_args(argv)  # reports the unknown arguments and exits 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_note
            return args.func(args, extra) if getattr(args, "takes_extra", False) else args.func(args)
    except UserError as e:  # raised in a loader worker it carries the worker's traceback: keep the last line
        print(f"modernconv: error: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `modernconv models | head`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a file a command was told to read or write (full disk, read-only folder, ...)
        where = f"{e.filename}: " if e.filename else ""
        print(f"modernconv: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except RunStopped as e:
        print(f"modernconv: stopped: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("modernconv: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (a bug: one line, the traceback on request)
        if args.debug:
            raise
        message = (str(e).strip().splitlines() or [""])[0]
        print(f"modernconv: error: unexpected {type(e).__name__}: {message} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
