"""Eval-mode fp32 inference images/s, ours / timm, with the same weights, channels-last, in one process.

python benchmarks/bench_vs_timm.py [--models ...] [--batch-size 16] [--size 224] [--rounds 5] [--steps 3]
"""
from __future__ import annotations

import argparse

import timm
import torch

import modernconv
from modernconv.analysis.benchmark import make_step
from common import interleaved, machine_line, ratio_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["convnext_tiny", "convnextv2_atto", "convmixer_768_32"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}, {args.size}x{args.size}, fp32, eval, channels-last")
    print("| model | ours img/s | timm img/s | ours/timm (median) | range |\n|---|---|---|---|---|")
    for name in args.models:
        reference = timm.create_model(name).eval()
        ours = modernconv.create_model(name).eval()
        ours.load_state_dict(modernconv.checkpoint.fit_state_dict(reference.state_dict(), ours.state_dict())[0])
        x = torch.randn(args.batch_size, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
        steps = {}
        for label, model in (("ours", ours), ("timm", reference)):
            model.to(memory_format=torch.channels_last)
            steps[label] = make_step(model, x, "infer", "fp32")
        times = interleaved(steps, args.rounds, args.steps)
        print(ratio_row(name, args.batch_size, times["ours"], times["timm"]), flush=True)


if __name__ == "__main__":
    main()
