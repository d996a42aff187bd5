"""The fast path's compiled graph called from a C++ wrapper (its default on CPU) against the same graph called from
Inductor's Python wrapper, in one process, interleaved.

The C++ wrapper calls the graph's kernels (oneDNN convs and matmuls, the fused Inductor kernels) without a Python
call per layer; the gain is largest where the kernels are short: small models at batch 1. For each model, batch
size and precision (``choose_precision``'s float one, and int8 calibrated on 32 random images): images/s of both,
the median of per-round time ratios Python / C++ (> 1: the C++ wrapper is faster) and the first call's seconds
(compilation, with Inductor's caches off, so a cold start) of each.

python benchmarks/bench_wrapper.py [--models convnext_tiny convnextv2_atto unireplknet_a] [--batch-sizes 1 16]
       [--rounds 5] [--steps 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import modernconv
from modernconv.deploy import choose_precision, optimize_for_inference
from modernconv.deploy.fast import FastInference
from common import interleaved, machine_line


def with_python_wrapper(fast: FastInference) -> FastInference:
    """``fast`` compiling and running its graph with Inductor's Python wrapper instead of the C++ one."""
    run = fast._run_compiled

    def python_wrapped(x: torch.Tensor) -> torch.Tensor:
        with torch._inductor.config.patch(cpp_wrapper=False):
            return run(x)

    fast._run_compiled = python_wrapped
    return fast


def first_call_seconds(fast: FastInference, x: torch.Tensor) -> float:
    start = time.perf_counter()
    fast(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["convnext_tiny", "convnextv2_atto", "unireplknet_a"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    torch._inductor.config.force_disable_caches = True  # the first call's time is a cold compilation
    torch.manual_seed(0)
    calibration = torch.randn(32, 3, 224, 224)
    float_precision = choose_precision(torch.device("cpu"))[0]
    print("| model | precision | batch | C++ wrapper img/s | Python wrapper img/s | Python / C++ time (median) | "
          "range | first call s (C++ / Python) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        model = modernconv.create_model(name).eval()
        for precision in (float_precision, "int8"):
            for batch in args.batch_sizes:
                x = torch.randn(batch, 3, 224, 224)
                make = lambda: optimize_for_inference(model, precision, calibration=calibration, batch_size=batch)
                cpp, python = make(), with_python_wrapper(make())
                first = first_call_seconds(cpp, x), first_call_seconds(python, x)
                times = interleaved({"cpp": lambda: cpp(x), "python": lambda: python(x)}, args.rounds, args.steps)
                ratios = [p / c for c, p in zip(times["cpp"], times["python"])]
                print(f"| {name} | {precision} | {batch} | {batch / statistics.median(times['cpp']):.1f} | "
                      f"{batch / statistics.median(times['python']):.1f} | {statistics.median(ratios):.2f} | "
                      f"{min(ratios):.2f}-{max(ratios):.2f} | {first[0]:.0f} / {first[1]:.0f} |", flush=True)


if __name__ == "__main__":
    main()
