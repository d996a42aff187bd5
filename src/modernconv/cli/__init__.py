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

from ..errors import RunStopped, UserError
from . import models, results, runs


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line; ``argv`` (the arguments to parse) decides which run command gets its config options."""
    command = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="modernconv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"modernconv {version('modernconv')}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in (models, runs, results):
        module.add_parsers(sub, command)
    return parser


def _show_note(message: Warning | str, *_args: object, **_kwargs: object) -> None:
    print(f"modernconv: note: {message}", file=sys.stderr)


def _lost_a_process(e: Exception) -> bool:
    """Whether ``e`` is a collective failing because a peer process of a torchrun job died."""
    return (int(os.environ.get("WORLD_SIZE", "1")) > 1 and isinstance(e, RuntimeError)
            and any(word in str(e) for word in ("gloo", "NCCL", "Connection reset", "Connection closed")))


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
        if _lost_a_process(e):
            print(f"modernconv: error: another process of this distributed run stopped ({message.split('] ')[-1]}); "
                  "what it saved is kept: the same command with --resume auto continues it (torchrun "
                  "--max-restarts does so by itself)", file=sys.stderr)
            return 1
        print(f"modernconv: error: unexpected {type(e).__name__}: {message} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
