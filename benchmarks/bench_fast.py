"""The fast inference path against eager fp32, in one process: images/s ratio, and the fraction of this machine's
measured bf16 matmul peak the fast path reaches.

The reference is timm's eager fp32 model with the same weights where timm has the model (ConvNeXt V1/V2), else
our own eager fp32 model (UniRepLKNet). The fast path is ``modernconv.optimize_for_inference`` (deploy form,
channels-last, bf16 where native, torch.compile with freezing); its compilation happens during warm-up. The
"uncompiled" column is the same path without torch.compile: what the compiler's fusions (LayerNorm, GRN, GELU,
the depthwise conv's epilogue) and oneDNN weight pre-packing add.
Achieved GFLOP/s = 2 x GMACs x batch / step time; the peak is the best median of large bf16 matmuls.

python benchmarks/bench_fast.py [--models ...] [--batch-size 16] [--size 224] [--rounds 5] [--steps 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import modernconv
from modernconv.analysis import count_macs
from modernconv.analysis.benchmark import make_step
from modernconv.deploy import optimize_for_inference
from common import interleaved, machine_line, ratio_row

PEAK_SIZES = (1024, 2048, 4096)


def matmul_peak_gflops(dtype: torch.dtype, repeats: int = 5) -> float:
    """The best, over a few square sizes, of the median GFLOP/s of ``torch.mm`` in ``dtype``."""
    best = 0.0
    for n in PEAK_SIZES:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        best = max(best, 2 * n**3 / statistics.median(times) / 1e9)
    return best


def models(name: str) -> tuple[torch.nn.Module, torch.nn.Module, str]:
    """Ours and the reference: timm's model (ours loaded with its weights) where timm has it, else ours."""
    ours = modernconv.create_model(name).eval()
    if not timm.is_model(name):
        return ours, ours, "ours eager fp32"
    reference = timm.create_model(name).eval()
    ours.load_state_dict(modernconv.checkpoint.fit_state_dict(reference.state_dict(), ours.state_dict())[0])
    return ours, reference, "timm eager fp32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+",
                        default=["convnext_tiny", "convnextv2_atto", "convnextv2_tiny", "unireplknet_a", "unireplknet_t"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    peak_bf16, peak_fp32 = matmul_peak_gflops(torch.bfloat16), matmul_peak_gflops(torch.float32)
    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads, batch "
          f"{args.batch_size}, {args.size}x{args.size}; matmul peak: bf16 {peak_bf16:.0f} GFLOP/s, "
          f"fp32 {peak_fp32:.0f} GFLOP/s")
    print("| model (reference) | fast img/s | reference img/s | fast/reference (median) | range | "
          "uncompiled fast/reference | fast GFLOP/s | of bf16 peak |\n|---|---|---|---|---|---|---|---|")
    for name in args.models:
        ours, reference, label = models(name)
        x = torch.randn(args.batch_size, 3, args.size, args.size)
        steps = {"fast": make_step(optimize_for_inference(ours), x, "infer", "fp32"),
                 "uncompiled": make_step(optimize_for_inference(ours, compile=False), x, "infer", "fp32"),
                 "reference": make_step(reference, x, "infer", "fp32")}
        times = interleaved(steps, args.rounds, args.steps, warmup=3)
        fast_s = statistics.median(times["fast"])
        gflops = 2 * count_macs(ours, (3, args.size, args.size)) * args.batch_size / fast_s / 1e9
        uncompiled = statistics.median([r / u for u, r in zip(times["uncompiled"], times["reference"])])
        row = ratio_row(f"{name} ({label})", args.batch_size, times["fast"], times["reference"])
        print(f"{row} {uncompiled:.2f} | {gflops:.0f} | {gflops / peak_bf16:.1%} |", flush=True)


if __name__ == "__main__":
    main()
