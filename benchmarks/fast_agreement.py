"""Does the fast path predict what eager fp32 predicts? Top-1 agreement and logit error on real evaluations.

Every checkpoint given (e.g. the best.safetensors of each run of a design-roadmap experiment) is evaluated on the
held-out split of DATA twice: eager fp32, and ``optimize_for_inference`` (bf16, deploy form, channels-last; with
``--compile`` also compiled). Prints one row per checkpoint and the totals.

python benchmarks/fast_agreement.py --data digits runs/roadmap_digits/*/seed*/best.safetensors [--compile]
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from modernconv.conversion import model_from_checkpoint
from modernconv.data import build_split
from modernconv.deploy import optimize_for_inference


def predictions(model: torch.nn.Module, loader: DataLoader) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(images).float() for images, _ in loader])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    print("| checkpoint | images | top-1 agreement | max logit error / max logit |\n|---|---|---|---|")
    agree = total = 0
    worst = 0.0
    for path in args.checkpoints:
        model, info = model_from_checkpoint(path)
        split, _ = build_split(args.data, "val", model.in_chans, info.preprocessing.eval_transform(),
                               class_names=info.class_names or None)
        loader = DataLoader(split, batch_size=args.batch_size)
        eager = predictions(model, loader)
        fast = predictions(optimize_for_inference(model, compile=args.compile), loader)
        same = (eager.argmax(1) == fast.argmax(1)).sum().item()
        error = ((fast - eager).abs().max() / eager.abs().max()).item()
        agree, total, worst = agree + same, total + len(eager), max(worst, error)
        print(f"| {path} | {len(eager)} | {100 * same / len(eager):.2f}% | {error:.4f} |", flush=True)
    print(f"| all | {total} | {100 * agree / total:.2f}% | {worst:.4f} |")


if __name__ == "__main__":
    main()
