"""Training at small resolution: depthwise convs with the taps that only meet padding cut, against full kernels.

At 32x32 the last stages of ConvNeXt and UniRepLKNet are 2x2 and 1x1 maps, on which 7x7 / 13x13 kernels and the
dilated branches reach mostly padding. One training step (forward + backward + AdamW, fp32, the digits recipes'
batch of 64 at 32x32 by default) of the same model and weights, with ``DepthwiseConv2d`` as it is ("cut") and
with its forward replaced by ``nn.Conv2d``'s ("full"); interleaved rounds, medians of per-round ratios.

python benchmarks/bench_depthwise.py [--models convnext_atto unireplknet_a] [--size 32] [--batch-size 64]
"""
from __future__ import annotations

import argparse

import torch
from torch import nn

import modernconv
from modernconv.analysis.benchmark import make_step
from modernconv.layers import DepthwiseConv2d
from common import interleaved, machine_line, ratio_row


def build(name: str, full_kernels: bool) -> nn.Module:
    """``name`` with seed-0 weights; ``full_kernels`` runs every depthwise conv as a plain ``nn.Conv2d``."""
    torch.manual_seed(0)
    model = modernconv.create_model(name, num_classes=10)
    if full_kernels:
        for module in model.modules():
            if isinstance(module, DepthwiseConv2d):
                module.forward = nn.Conv2d.forward.__get__(module)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["convnext_atto", "convnextv2_atto", "unireplknet_a"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    print(f"torch {torch.__version__}, cpu ({torch.get_num_threads()} threads), fp32, train step\n")
    print(f"| model, batch {args.batch_size}, {args.size}x{args.size} | cut img/s | full img/s | full/cut time "
          "(median) | range |\n|---|---|---|---|---|")
    for name in args.models:
        x = torch.randn(args.batch_size, 3, args.size, args.size)
        steps = {kind: make_step(build(name, kind == "full"), x, "train", "fp32") for kind in ("cut", "full")}
        times = interleaved(steps, args.rounds, args.steps)
        print(ratio_row(name, args.batch_size, times["cut"], times["full"]), flush=True)


if __name__ == "__main__":
    main()
