"""Commands that apply or analyse trained models: eval, predict, collapse, erf."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..errors import UserError
from .common import COMPILE_PAYS_FROM, fast_path, free_path, model_or_checkpoint


def cmd_collapse(args: argparse.Namespace) -> int:
    from ..analysis.collapse import checkpoint_curves, write_collapse_csv
    from ..plots import plot_collapse
    from ..runtime import resolve_device

    curves = checkpoint_curves(args.model, args.checkpoint, args.data, args.images, args.img_size, args.batch_size,
                               resolve_device(args.device))
    csv_path = write_collapse_csv(curves, args.csv)
    png_path = plot_collapse(curves, args.plot, title=f"feature collapse, {args.model}")
    for curve in curves:
        print(f"{curve.label}: mean score {curve.mean:.4f} over {len(curve.score)} blocks "
              f"(first {curve.score[0]:.4f}, last {curve.score[-1]:.4f})")
    print(f"wrote {csv_path} and {png_path}")
    return 0


def cmd_erf(args: argparse.Namespace) -> int:
    from ..analysis.collapse import held_out_images
    from ..analysis.erf import measure_erf, write_erf
    from ..plots import plot_erf
    from ..runtime import resolve_device

    paths = [free_path(str(Path(args.output) / name), args.force) for name in ("erf.png", "erf.json", "erf.npy")]
    model = model_or_checkpoint(args.model, args.checkpoint, resolve_device(args.device))
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


def cmd_eval(args: argparse.Namespace) -> int:
    from ..conversion import model_from_checkpoint
    from ..engine import evaluate_checkpoint
    from ..engine.inference import class_names, evaluate_forecaster, is_forecaster
    from ..plots import plot_confusion
    from ..runtime import resolve_device

    confusion_png = free_path(args.confusion, args.force) if args.confusion else None
    model, info = model_from_checkpoint(args.checkpoint, resolve_device(args.device))
    if is_forecaster(info):
        errors = evaluate_forecaster(fast_path(model, args), info, args.data, args.batch_size, args.workers)
        print(json.dumps(dataclasses.asdict(errors)) if args.json else
              f"MSE {errors.mse:.4f}  MAE {errors.mae:.4f}  (standardised; {errors.count} windows)")
        return 0
    result = evaluate_checkpoint(fast_path(model, args), info, args.data, args.batch_size, args.workers, args.split)
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
    from ..conversion import model_from_checkpoint
    from ..engine import predict_images
    from ..engine.inference import expand_inputs, input_kinds, write_predictions
    from ..runtime import resolve_device

    output = free_path(args.output, args.force) if args.output else None
    if output and output.suffix not in (".csv", ".json"):
        raise UserError(f"--output {output}: name a .csv or .json file")
    model, info = model_from_checkpoint(args.checkpoint, resolve_device(args.device))
    paths = expand_inputs(args.images, *input_kinds(info))
    model = fast_path(model, args, compile=len(paths) >= COMPILE_PAYS_FROM)
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
