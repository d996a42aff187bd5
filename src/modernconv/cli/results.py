"""Commands that apply or analyse trained models: eval, predict, collapse, erf."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..files import atomic_write_text
from .common import (COMPILE_PAYS_FROM, add_checkpoint_options, add_command, add_fast_options,
                     add_segment_mode_options, fast_path, free_path, json_text, segment_mode)

DETECTIONS_JSON = "detections.json"  # predict's COCO-results file beside the drawn images


def cmd_collapse(args: argparse.Namespace) -> int:
    """The ConvNeXt V2 paper's feature-collapse score of every block's expansion-MLP activation (after GELU,
    before GRN): the mean over channel pairs of (1 - cos) / 2, averaged over held-out images of DATA, against
    normalised depth. Low = collapsed. One curve per checkpoint (encoder-only files load too)."""
    from ..analysis.collapse import checkpoint_curves, write_collapse_csv
    from ..plots import plot_collapse
    from ..runtime import resolve_device

    csv_file, png_file = free_path(args.csv, args.force), free_path(args.plot, args.force)  # before the work
    curves = checkpoint_curves(args.model, args.checkpoint, args.data, args.images, args.img_size, args.batch_size,
                               resolve_device(args.device))
    csv_path = write_collapse_csv(curves, csv_file)
    png_path = plot_collapse(curves, png_file, title=f"feature collapse, {args.model}")
    for curve in curves:
        print(f"{curve.label}: mean score {curve.mean:.4f} over {len(curve.score)} blocks "
              f"(first {curve.score[0]:.4f}, last {curve.score[-1]:.4f})")
    print(f"wrote {csv_path} and {png_path}")
    return 0


def cmd_erf(args: argparse.Namespace) -> int:
    """RepLKNet's effective-receptive-field measurement: the gradient of the central last-stage output (ReLU,
    summed over channels) with respect to the input, ReLU'd, summed over channels and averaged over images of
    DATA; drawn log-scaled, log10(x + 1). Prints the high-contribution area ratios: the smallest centred square
    holding 20/30/50/99% of the log-scaled map, as a fraction of the image. Writes DIR/erf.png, erf.json and
    erf.npy (the raw mean map). An encoder-only checkpoint (no head, as FCMAE pre-training saves) is measured as
    it is: the ERF takes no head. A modality checkpoint's ERF is its network's, behind the adapter, at the size of
    the adapter's output (the label says so)."""
    from ..analysis.erf import erf_inputs, measure_erf, write_erf
    from ..plots import plot_erf
    from ..runtime import resolve_device
    from .models import model_or_encoder

    paths = [free_path(str(Path(args.output) / name), args.force) for name in ("erf.png", "erf.json", "erf.npy")]
    model, _ = model_or_encoder(args.model, args.checkpoint, resolve_device(args.device))
    network, batches, note = erf_inputs(model, args.data, args.images, args.img_size, args.batch_size)
    weights = args.checkpoint or (args.model if args.model != model.model_name else None)
    label = f"{model.model_name} ({weights})" if weights else model.model_name
    result = measure_erf(network, batches, label=f"{label}: {note}" if note else label)
    write_erf(result, paths[1], paths[2])
    plot_erf([result], paths[0], title=f"effective receptive field, {model.model_name}")
    print(f"{result.label}: high-contribution area ratio "
          + ", ".join(f"{t:.0%} {r:.4f}" for t, r in result.ratios.items())
          + f" ({result.images} images, {result.input_size[0]}x{result.input_size[1]})")
    print(f"wrote {paths[0]}, {paths[1].name} and {paths[2].name}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Top-1, top-5, loss and per-class accuracy of a checkpoint written by `modernconv train` on a held-out
    split of DATA (read alone; labelled with the checkpoint's classes); a segmentation checkpoint's mIoU, aAcc,
    mAcc and per-class IoU; a detection checkpoint's COCO box (and mask) AP; a forecaster's MSE and MAE."""
    from ..conversion import model_from_checkpoint
    from ..engine import evaluate_checkpoint
    from ..engine.inference import class_names, evaluate_forecaster, evaluate_segmenter
    from ..modalities import get_modality
    from ..analysis.report import WORST, write_report
    from ..plots import plot_confusion
    from ..runtime import resolve_device

    confusion_png = free_path(args.confusion, args.force) if args.confusion else None
    report_html = free_path(args.report, args.force) if args.report else None
    results_json = free_path(args.results, args.force) if args.results else None
    model, info = model_from_checkpoint(args.checkpoint, resolve_device(args.device))
    mode = segment_mode(args, info.task)
    if args.data is None:
        args.data = "scenes" if info.task in ("segmentation", "detection") else "digits"
    ignored = [f for f, given in (("--confusion", args.confusion), ("--split", args.split != "val")) if given]
    if info.task == "forecasting" and ignored:
        raise UserError(f"{', '.join(ignored)} do not apply to a forecaster (it is scored on the held-out end of "
                        "each series)")
    for flag, given in (("--confusion", args.confusion), ("--report", args.report)):
        if given and info.task != "classification":
            raise UserError(f"{flag} applies to classification checkpoints; this one is for {info.task}")
    if results_json and info.task != "detection":
        raise UserError(f"--results writes a detector's detections; this checkpoint is for {info.task}")
    if info.task == "detection":
        return _eval_detector(model, info, args, results_json)
    if info.task == "segmentation":
        scores = evaluate_segmenter(fast_path(model, args, info=info), info, args.data, args.batch_size,
                                    args.workers, args.split, mode)
        report = scores.report(info.class_names)
        print(json_text(report) if args.json else f"mIoU {scores.miou:.2f}%  aAcc {scores.aacc:.2f}%  "
              f"mAcc {scores.macc:.2f}%  ({scores.count} images)")
        return 0
    if info.task == "forecasting":
        errors = evaluate_forecaster(fast_path(model, args, info=info), info, args.data, args.batch_size,
                                     args.workers)
        print(json_text(dataclasses.asdict(errors)) if args.json else
              f"MSE {errors.mse:.4f}  MAE {errors.mae:.4f}  (standardised; {errors.count} windows)")
        return 0
    result, held_out = evaluate_checkpoint(fast_path(model, args, info=info), info, args.data, args.batch_size,
                                           args.workers, args.split, keep_worst=WORST if report_html else 0)
    names = class_names(info, model.num_classes)
    if args.json:
        print(json_text(result.report(names)), flush=True)
    else:
        samples = get_modality(info.modality).samples
        print(f"top-1 {result.top1:.2f}%  top-{result.k} {result.top5:.2f}%  loss {result.loss:.4f}  "
              f"({result.count} {samples})")
        for name, acc in zip(names, result.per_class):
            print(f"  {name:20s} {acc:6.2f}%" if acc is not None else f"  {name:20s}    n/a (no held-out samples)")
        if confusion_png:
            print(f"confusion matrix: {confusion_png}", flush=True)
    if confusion_png:
        plot_confusion(result.confusion, names, confusion_png)
    if report_html:
        write_report(report_html, result, names, held_out, args.checkpoint, args.data)
        if not args.json:
            print(f"report: {report_html}", flush=True)
    return 0


def _eval_detector(model: Any, info: Any, args: argparse.Namespace, results_json: Path | None) -> int:
    """``eval`` with a detection checkpoint: COCO AP (box, and mask for the masked detectors) and, with
    ``--results``, the detections in COCO's results format."""
    from ..engine.inference import evaluate_detector

    if args.fast:
        raise UserError("--fast applies to classification and segmentation checkpoints; a detector runs in its "
                        "training form (fp32)")
    scores, found, count = evaluate_detector(model, info, args.data, args.batch_size, args.workers, args.split)
    if results_json:
        atomic_write_text(results_json, json.dumps(found))
    if args.json:  # a size range without ground truth has no AP: null, not NaN
        print(json_text({**scores, "count": count}))
    else:
        print("  ".join(f"{k} {v:.2f}" for k, v in scores.items() if k.endswith(("_ap", "_ap50", "_ap75")))
              + f"  ({count} images)")
        if results_json:
            print(f"detections (COCO results format): {results_json}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify images with a checkpoint written by `modernconv train` (or any with its model named; 1000-class
    checkpoints without names get ImageNet's), or the files of its modality (audio clips, videos or frame
    folders, meshes or point arrays); with a segmentation checkpoint, write each image's class mask (an index
    PNG) and a colour overlay into the --output folder; with a detection checkpoint, draw each image's detections
    (boxes, class names, scores, masks) into the --output folder. INPUT: files, folders (every such file below)
    and glob patterns."""
    from ..conversion import model_from_checkpoint
    from ..engine import predict_images
    from ..runtime import resolve_device
    from .inputs import expand_inputs, input_kinds, write_predictions

    model, info = model_from_checkpoint(args.checkpoint, resolve_device(args.device))
    paths = expand_inputs(args.images, *input_kinds(info))
    if args.fast and info.task == "detection":
        raise UserError("--fast applies to classification and segmentation checkpoints; a detector runs in its "
                        "training form (fp32)")
    model = fast_path(model, args, compile=len(paths) >= COMPILE_PAYS_FROM, info=info)
    mode = segment_mode(args, info.task)
    if info.task == "segmentation":
        return _predict_masks(model, info, paths, args, mode)
    if info.task == "detection":
        return _predict_detections(model, info, paths, args)
    output = free_path(args.output, args.force) if args.output else None
    if output and output.suffix not in (".csv", ".json"):
        raise UserError(f"--output {output}: name a .csv or .json file")
    predictions = predict_images(model, info, paths, args.topk, args.batch_size, args.workers)
    if args.json:
        print(json_text(predictions))
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


def _predict_masks(model: Any, info: Any, paths: list[str], args: argparse.Namespace, mode: Any) -> int:
    """``predict`` with a segmentation checkpoint: masks and overlays into the ``--output`` folder."""
    from ..engine.inference import segment_images
    from .inputs import write_segmentation

    if not args.output or Path(args.output).suffix:
        raise UserError("a segmentation checkpoint writes a mask PNG and an overlay per image: give --output DIR")
    folder = Path(args.output)
    taken = [f for p in paths for f in (folder / f"{Path(p).stem}.png", folder / f"{Path(p).stem}_overlay.png")
             if f.exists()]
    if taken and not args.force:
        raise UserError(f"{taken[0]} exists; give --force to overwrite the masks in {folder}")
    written = [write_segmentation(item, folder, info.class_names) if "mask" in item else item
               for item in segment_images(model, info, paths, args.workers, mode)]
    if args.json:
        print(json.dumps(written))
    for item in written:
        if "mask" in item:
            shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in item["classes"].items())
            print(f"{item['image']}: {item['mask']} and {Path(item['overlay']).name} ({shares})", flush=True)
        else:
            print(f"modernconv: error: {item['image']}: {item['error']}", file=sys.stderr)
    return 2 if any("error" in item for item in written) else 0


def _predict_detections(model: Any, info: Any, paths: list[str], args: argparse.Namespace) -> int:
    """``predict`` with a detection checkpoint: each image drawn with its detections into the ``--output`` folder,
    the detections listed (``--json``: as JSON) and written in COCO's results format to
    ``--output/detections.json`` (``image_id``: the input's position, ``file_name`` beside it; ``category_id``: the
    label 1..N, ``category``: its name)."""
    from ..dense.coco_eval import to_coco_results
    from ..engine.inference import detect_images
    from .inputs import write_detections

    if not args.output or Path(args.output).suffix:
        raise UserError("a detection checkpoint draws its detections on each image: give --output DIR")
    folder = Path(args.output)
    taken = [folder / f"{Path(p).stem}.png" for p in paths] + [folder / DETECTIONS_JSON]
    if any(f.exists() for f in taken) and not args.force:
        raise UserError(f"{next(f for f in taken if f.exists())} exists; give --force to overwrite the pictures "
                        f"in {folder}")
    results, written = [], []
    for index, item in enumerate(detect_images(model, paths, args.workers)):
        if "found" in item:
            keep = item["found"]["scores"] >= args.min_score
            found = {k: v[keep] for k, v in item["found"].items()}
            results += [{**r, "file_name": item["image"], "category": info.class_names[r["category_id"] - 1]}
                        for r in to_coco_results([found], [index], int)]
            item = write_detections({**item, "found": found}, folder, info.class_names)
        written.append(item)
    atomic_write_text(folder / DETECTIONS_JSON, json.dumps(results))
    if args.json:
        print(json.dumps(written))
    for item in written:
        if "drawn" in item and not args.json:
            found = ", ".join(f"{d['class']} {d['score']:.2f}" for d in item["detections"]) or "nothing"
            print(f"{item['image']}: {item['drawn']} ({found})", flush=True)
        elif "error" in item:
            print(f"modernconv: error: {item['image']}: {item['error']}", file=sys.stderr)
    if not args.json:
        print(f"detections (COCO results format): {folder / DETECTIONS_JSON}")
    return 2 if any("error" in item for item in written) else 0


def add_parsers(sub: argparse._SubParsersAction, command: str | None) -> None:
    """The parsers of this module's commands (``command``: the one being run, for options that need torch)."""
    p = add_command(sub, "collapse", cmd_collapse, "per-block feature-collapse scores of checkpoints (CSV + PNG)")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True, nargs="+", metavar="PATH")
    p.add_argument("--data", default="digits", help="digits, synthetic, or a folder of images (its val/ if any)")
    p.add_argument("--images", type=int, default=256, help="how many images to average over (default 256)")
    p.add_argument("--img-size", type=int, help="default: the model's data config")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device")
    p.add_argument("--csv", default="collapse.csv", help="where to write the scores (default collapse.csv)")
    p.add_argument("--plot", default="collapse.png", help="where to write the plot (default collapse.png)")
    p.add_argument("--force", action="store_true", help="overwrite the --csv and --plot files if they exist")

    p = add_command(sub, "erf", cmd_erf, "effective receptive field of a model (heat map PNG, ratios JSON, map NPY)")
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT",
                   help="a model name (random init unless --checkpoint) or a checkpoint written by modernconv")
    p.add_argument("--checkpoint", help="weights for the named model (any supported format)")
    p.add_argument("--data", default="digits", help="digits, synthetic, or a folder of images (its val/ if any)")
    p.add_argument("--images", type=int, default=50, help="how many images to average over (default 50, as RepLKNet)")
    p.add_argument("--img-size", type=int,
                   help="input side (default 224: a 7x7 last-stage map at stride 32; RepLKNet used 1024). The "
                        "8x8 digits are upsampled to it. A modality checkpoint: its adapter's output size")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for erf.png, erf.json and erf.npy")
    p.add_argument("--force", action="store_true", help="overwrite the files in DIR if they exist")

    p = add_command(sub, "eval", cmd_eval, "accuracy (mIoU, COCO AP) of a checkpoint on a data set")
    add_checkpoint_options(p, batch_size=64)
    p.add_argument("--data", help="digits, synthetic, or a folder with SPLIT/<class>/ folders or class folders "
                                  "itself; segmentation and detection: scenes or a folder in their layouts "
                                  "(default digits; scenes for the dense tasks)")
    p.add_argument("--split", default="val", help="the held-out split: val, test or validation (default val)")
    p.add_argument("--confusion", metavar="PNG", help="also write the confusion matrix to this PNG")
    p.add_argument("--results", metavar="JSON", help="detection: also write the detections in COCO's results "
                                                     "format (re-scorable with pycocotools)")
    p.add_argument("--report", metavar="HTML", help="also write one page: scores, the run's curves, confusion "
                                                    "matrix, per-class table, the worst-classified samples")
    p.add_argument("--force", action="store_true", help="overwrite the --confusion, --report or --results file if "
                                                        "it exists")
    add_segment_mode_options(p)
    add_fast_options(p)
    p.add_argument("--json", action="store_true",
                   help='print {"top1", "topK", "loss", "count", "per_class", "per_class_report" (precision, '
                        'recall, F1, support), "macro"} (percent); segmentation: {"miou", ...}; detection: '
                        '{"bbox_ap", ...}')

    p = add_command(sub, "predict", cmd_predict, "top-k classes of images (or audio, video, point-cloud files)")
    add_checkpoint_options(p, batch_size=64)
    p.add_argument("images", nargs="+", metavar="INPUT", help="files, folders (every such file below) or glob "
                                                              "patterns")
    p.add_argument("--topk", type=int, default=5, help="classification: how many classes to list per input, most "
                                                       "probable first (default 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--output", metavar="FILE", help="also write the results to a .csv or .json file (a "
                                                    "segmentation checkpoint: the folder for masks and overlays; a "
                                                    "detection checkpoint: the folder for the drawn images)")
    p.add_argument("--min-score", type=float, default=0.5, help="detection: draw and list the detections scoring "
                                                                "at least this (default 0.5)")
    p.add_argument("--force", action="store_true", help="overwrite the --output file if it exists")
    add_segment_mode_options(p)
    add_fast_options(p)
