"""Speed of structural re-parameterisation: eval images/s of UniRepLKNet's deploy form against its train form,
and of UniRepLKNet-A against timm's ConvNeXt V2-Atto.

fp32, channels-last, batch 16, 224x224 by default. All models are timed in one process, round-robin
(interleaved rounds of a few steps each), and each figure is the median of the per-round median step times.
Run: python benchmarks/bench_reparam.py [--rounds 5] [--steps 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics

import timm
import torch

import modernconv
from modernconv.analysis.benchmark import make_step
from common import interleaved, machine_line

GOAL = 1.5  # deploy / train throughput


def build_models() -> dict[str, torch.nn.Module]:
    """The timed models, by label (random weights; throughput does not depend on them)."""
    models = {}
    for name in ("unireplknet_a", "unireplknet_s"):
        train = modernconv.create_model(name).eval()
        models[f"{name} train"] = train
        models[f"{name} deploy"] = modernconv.reparameterize(train)
    models["timm convnextv2_atto"] = timm.create_model("convnextv2_atto").eval()
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(machine_line(), flush=True)

    device = torch.device(args.device)
    x = torch.randn(args.batch_size, 3, args.size, args.size, device=device).contiguous(
        memory_format=torch.channels_last)
    steps = {label: make_step(model.to(device, memory_format=torch.channels_last), x, "infer", "fp32")
             for label, model in build_models().items()}
    times = interleaved(steps, args.rounds, args.steps, args.warmup, device)
    ips = {label: args.batch_size / statistics.median(t) for label, t in times.items()}

    print(f"eval inference, fp32, channels-last, batch {args.batch_size}, {args.size}x{args.size}, {device} "
          f"({torch.get_num_threads()} threads), median over {args.rounds} interleaved rounds of the per-round medians of {args.steps} steps\n")
    print("| model | images/s | ms/batch |\n|---|---:|---:|")
    for label, value in ips.items():
        print(f"| {label} | {value:.1f} | {1e3 * args.batch_size / value:.1f} |")
    print("\n| ratio | value | goal |\n|---|---:|---:|")
    for name in ("unireplknet_a", "unireplknet_s"):
        print(f"| {name} deploy / train | {ips[f'{name} deploy'] / ips[f'{name} train']:.2f}x | >= {GOAL}x |")
    for form in ("deploy", "train"):
        print(f"| unireplknet_a {form} / timm convnextv2_atto | "
              f"{ips[f'unireplknet_a {form}'] / ips['timm convnextv2_atto']:.2f}x | - |")


if __name__ == "__main__":
    main()
