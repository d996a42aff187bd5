"""Does the fast path predict what eager fp32 predicts? Top-1 agreement and logit error on real evaluations.

Every checkpoint given (e.g. the best.safetensors of each run of a design-roadmap experiment) is evaluated on the
held-out split of DATA twice: eager fp32, and ``optimize_for_inference`` in ``--precision`` (bf16 by default; int8
calibrated on 256 training images of DATA, as ``--calibrate DATA`` does), deploy form, channels-last; with
``--compile`` also compiled (int8 then runs its int8 kernels; without, their reference arithmetic). Prints one row
per checkpoint (with the top-1 of both) and the totals.

python benchmarks/fast_agreement.py --data digits runs/roadmap_digits/*/seed*/best.safetensors [--compile]
python benchmarks/fast_agreement.py --data digits runs/int8/digits_*/best.safetensors --precision int8 --compile
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from modernconv.cli.common import calibration_data
from modernconv.conversion import model_from_checkpoint
from modernconv.data import build_split
from modernconv.deploy import optimize_for_inference


def predictions(model: torch.nn.Module, loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        batches = [(model(images).float(), labels) for images, labels in loader]
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "int8"])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    print("| checkpoint | images | top-1 agreement | max logit error / max logit | top-1 fp32 | top-1 fast |\n"
          "|---|---|---|---|---|---|")
    agree = total = right_eager = right_fast = 0
    worst = 0.0
    for path in args.checkpoints:
        model, info = model_from_checkpoint(path)
        split, _ = build_split(args.data, "val", model.in_chans, info.preprocessing.eval_transform(),
                               class_names=info.class_names or None)
        loader = DataLoader(split, batch_size=args.batch_size)
        eager, labels = predictions(model, loader)
        calibration = calibration_data(model, args.data, info) if args.precision == "int8" else None
        fast = predictions(optimize_for_inference(model, args.precision, compile=args.compile,
                                                  calibration=calibration, batch_size=args.batch_size), loader)[0]
        same = (eager.argmax(1) == fast.argmax(1)).sum().item()
        error = ((fast - eager).abs().max() / eager.abs().max()).item()
        hits = [(out.argmax(1) == labels).sum().item() for out in (eager, fast)]
        agree, total, worst = agree + same, total + len(eager), max(worst, error)
        right_eager, right_fast = right_eager + hits[0], right_fast + hits[1]
        print(f"| {path} | {len(eager)} | {100 * same / len(eager):.2f}% | {error:.4f} | "
              f"{100 * hits[0] / len(eager):.2f}% | {100 * hits[1] / len(eager):.2f}% |", flush=True)
    print(f"| all | {total} | {100 * agree / total:.2f}% | {worst:.4f} | {100 * right_eager / total:.2f}% | "
          f"{100 * right_fast / total:.2f}% |")


if __name__ == "__main__":
    main()
