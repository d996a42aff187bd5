"""The GPU suite: on a CUDA machine, in one process and a few minutes, the tables RESULTS.md keeps for a GPU.

Inference images/s (eager fp32, bf16 autocast, our fast path) and training images/s (fp32, bf16 autocast,
channels-last bf16, torch.compile bf16) of convnext_tiny, convnextv2_tiny and unireplknet_t, each against timm's
same model in the same setting where timm has it (same weights, interleaved rounds), and the peak memory of a
training step. benchmarks/gpu_suite.sh runs it with bench_fcmae.py (sparse vs masked FCMAE) under a time limit.

python benchmarks/gpu_suite.py [--device cuda] [--models ...] [--batch-size 64] [--size 224] [--rounds 3]
Without CUDA it says so and exits (nothing to measure); `--device cpu --quick` runs the same code on a tiny model
at a tiny size (how the test suite checks it).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from typing import Callable

import timm
import torch

import modernconv
from modernconv.analysis.benchmark import make_step
from common import interleaved, machine_line

MODELS = ("convnext_tiny", "convnextv2_tiny", "unireplknet_t")
INFERENCE = ("fp32", "bf16", "fast")  # eager fp32, eager bf16 autocast, our fast path (ours only)
TRAINING = ("fp32", "bf16", "bf16 channels-last", "bf16 compile")


def pair(name: str, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """Ours and timm's (None where timm lacks the model) with the same random weights."""
    if name not in timm.list_models():
        return modernconv.create_model(name).to(device), None
    reference = timm.create_model(name).to(device)
    ours = modernconv.create_model(name).to(device)
    ours.load_state_dict(modernconv.checkpoint.fit_state_dict(reference.state_dict(), ours.state_dict())[0])
    return ours, reference


def inference_steps(ours: torch.nn.Module, reference: torch.nn.Module | None, x: torch.Tensor, setting: str,
                    compile: bool) -> dict[str, Callable[[], None]]:
    if setting == "fast":
        fast = modernconv.optimize_for_inference(ours, dtype="bf16", compile=compile, device=x.device)
        xl = x.contiguous(memory_format=torch.channels_last)

        def step() -> None:
            with torch.inference_mode():
                fast(xl)
        return {"ours": step}
    steps = {"ours": make_step(ours, x, "infer", setting)}
    if reference is not None:
        steps["timm"] = make_step(reference, x, "infer", setting)
    return steps


def training_steps(ours: torch.nn.Module, reference: torch.nn.Module | None, x: torch.Tensor, setting: str,
                   compile: bool) -> dict[str, Callable[[], None]]:
    dtype = setting.split()[0]
    if "channels-last" in setting:
        x = x.contiguous(memory_format=torch.channels_last)
    steps = {}
    for label, model in (("ours", ours), ("timm", reference)):
        if model is None:
            continue
        if "channels-last" in setting:
            model = model.to(memory_format=torch.channels_last)
        if "compile" in setting and compile:
            model = torch.compile(model)
        steps[label] = make_step(model, x, "train", dtype)
    return steps


def peak_training_memory(model: torch.nn.Module, x: torch.Tensor) -> float:
    """MB allocated at the peak of one bf16 training step (CUDA only; 0 elsewhere)."""
    if x.device.type != "cuda":
        return 0.0
    step = make_step(model, x, "train", "bf16")
    step()
    torch.cuda.synchronize(x.device)
    torch.cuda.reset_peak_memory_stats(x.device)
    step()
    torch.cuda.synchronize(x.device)
    return torch.cuda.max_memory_allocated(x.device) / 2**20


def row(model: str, setting: str, batch: int, times: dict[str, list[float]]) -> str:
    """| model | setting | ours img/s | timm img/s | ours/timm (median of rounds) |"""
    ours = batch / statistics.median(times["ours"])
    if "timm" not in times:
        return f"| {model} | {setting} | {ours:.1f} | - | - |"
    ratio = statistics.median(r / o for o, r in zip(times["ours"], times["timm"]))
    return f"| {model} | {setting} | {ours:.1f} | {batch / statistics.median(times['timm']):.1f} | {ratio:.3f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="convnext_atto, 32x32, batch 2, one round, no compile")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_suite: no CUDA device here; nothing to measure (--device cpu --quick checks the code)")
        return 0
    if args.quick:
        args.models, args.batch_size, args.size, args.rounds, args.steps = ["convnext_atto"], 2, 32, 1, 1
    device = torch.device(args.device)
    compile = not args.quick
    print(machine_line(), flush=True)
    print(f"torch {torch.__version__}, timm {timm.__version__}, batch {args.batch_size}, {args.size}x{args.size}, "
          f"{args.rounds} interleaved rounds of {args.steps} steps")
    header = "| model | setting | ours img/s | timm img/s | ours/timm |\n|---|---|---|---|---|"
    for title, settings, make in (("inference", INFERENCE, inference_steps),
                                  ("training (forward, backward, AdamW)", TRAINING, training_steps)):
        print(f"\n{title}\n{header}", flush=True)
        for name in args.models:
            for setting in settings:
                ours, reference = pair(name, device)
                x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
                times = interleaved(make(ours, reference, x, setting, compile), args.rounds, args.steps,
                                    device=device)
                print(row(name, setting, args.batch_size, times), flush=True)
    print("\npeak memory of a bf16 training step (MB)\n| model | ours | timm |\n|---|---|---|")
    for name in args.models:
        ours, reference = pair(name, device)
        x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
        theirs = f"{peak_training_memory(reference, x):.0f}" if reference is not None else "-"
        print(f"| {name} | {peak_training_memory(ours, x):.0f} | {theirs} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
