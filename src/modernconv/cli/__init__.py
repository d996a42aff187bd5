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
import os
import sys
import warnings
from importlib.metadata import version
from typing import Callable

from ..errors import RunStopped, UserError
from .common import add_fast_options
from .models import cmd_bench, cmd_convert, cmd_export, cmd_info, cmd_models, cmd_weights
from .results import cmd_collapse, cmd_erf, cmd_eval, cmd_predict
from .runs import cmd_pretrain, cmd_roadmap, cmd_train


def _add_run_parser(sub: argparse._SubParsersAction, name: str, func: Callable[..., int], with_options: bool,
                    help_text: str, description: str) -> argparse.ArgumentParser:
    """A subcommand run from a YAML recipe (``-c``) plus ``--key value`` options, one per config field (added
    only when this is the command being parsed: they need the config definitions, hence torch)."""
    p = sub.add_parser(name, help=help_text, description=description, allow_abbrev=False)
    p.add_argument("-c", "--config", help="YAML recipe; --key value options override it")
    if with_options:
        from ..config import PretrainConfig, TrainConfig, add_config_options
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
    add_fast_options(p)
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
                                   "than --atol times the outputs' scale.")
    p.add_argument("source", metavar="SOURCE", help="model name or checkpoint file")
    p.add_argument("output", metavar="OUT", help="file to write (.onnx, .pt2, .pt)")
    p.add_argument("--format", help="onnx, torchscript or pt2 (default: from OUT's suffix)")
    p.add_argument("--checkpoint", help="with a model name: weights to load (any supported format)")
    p.add_argument("--num-classes", type=int, help="with a model name: classifier size")
    p.add_argument("--input-size", nargs=3, metavar=("C", "H", "W"), help="default: the model's data config")
    p.add_argument("--data", default="digits", help="real images to check on: digits, a folder, or none")
    p.add_argument("--images", type=int, default=8, help="how many real images (default 8)")
    p.add_argument("--atol", type=float, default=1e-4,
                   help="allowed output difference per unit of output scale: a check allows ATOL x max(1, largest "
                        "|output| of the PyTorch model), since rounding differences grow with the outputs "
                        "(default 1e-4)")
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
    add_fast_options(p)
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
    add_fast_options(p)
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
