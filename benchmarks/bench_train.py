"""Training-side measurements (fp32, CPU unless CUDA is present), each printed as a table:

  speed       training images/s (forward + backward + AdamW step), ours / timm, convnext_tiny, batch 16, 224
  memory      peak memory of a training step of convnext_tiny at batch 32 with and without gradient
              checkpointing (each in its own process; CPU: peak RSS, and the rise over the process before
              the first step)
  processes   images/s of 2 processes x 1 thread (torchrun, gloo, DDP) vs 1 process x 2 threads,
              same global batch

python benchmarks/bench_train.py [speed|memory|processes ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import timm
import torch

import modernconv
from modernconv.analysis.benchmark import make_step
from common import interleaved, machine_line, ratio_row

HERE = Path(__file__).resolve().parent


def speed(rounds: int, steps: int) -> None:
    reference = timm.create_model("convnext_tiny")
    ours = modernconv.create_model("convnext_tiny")
    x = torch.randn(16, 3, 224, 224)
    times = interleaved({"ours": make_step(ours, x, "train", "fp32"), "timm": make_step(reference, x, "train", "fp32")},
                        rounds, steps, warmup=1)
    print("| model | ours img/s | timm img/s | ours/timm (median) | range |\n|---|---|---|---|---|")
    print(ratio_row("convnext_tiny train, batch 16", 16, times["ours"], times["timm"]), flush=True)


MEMORY_WORKER = textwrap.dedent("""
    import json, sys, time
    import torch
    import modernconv
    from modernconv.analysis.benchmark import make_step, peak_memory_mb, reset_peak_memory

    cpu = torch.device("cpu")
    model = modernconv.create_model("convnext_tiny")
    model.set_grad_checkpointing(sys.argv[1] == "on")
    step = make_step(model, torch.randn(32, 3, 224, 224), "train", "fp32")
    reset_peak_memory(cpu)  # the peak restarts from the current RSS
    before, _ = peak_memory_mb(cpu)
    start = time.perf_counter()
    for _ in range(2):
        step()
    peak, _ = peak_memory_mb(cpu)
    print(json.dumps({"peak_mb": peak, "rise_mb": peak - before, "step_s": (time.perf_counter() - start) / 2}))
""")


def memory() -> None:
    rows = {}
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, "-c", MEMORY_WORKER, mode], capture_output=True, text=True,
                             check=True, cwd=HERE)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print("| convnext_tiny, batch 32, 224, train step | peak RSS MB | rise over start MB | s/step |\n|---|---|---|---|")
    for mode, r in rows.items():
        print(f"| gradient checkpointing {mode} | {r['peak_mb']:.0f} | {r['rise_mb']:.0f} | {r['step_s']:.1f} |")
    print(f"| reduction with checkpointing | {1 - rows['on']['peak_mb'] / rows['off']['peak_mb']:.1%} | "
          f"{1 - rows['on']['rise_mb'] / rows['off']['rise_mb']:.1%} | |", flush=True)


PROCESS_WORKER = textwrap.dedent("""
    import json, os, statistics, sys, time
    import torch, torch.distributed as dist
    import modernconv
    from modernconv.analysis.benchmark import make_step

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    model = modernconv.create_model("convnext_atto", num_classes=10)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
    batch = int(sys.argv[1]) // world
    step = make_step(model, torch.randn(batch, 3, 128, 128), "train", "fp32")
    times = []
    for i in range(int(sys.argv[2]) + 2):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"images_per_s": int(sys.argv[1]) / statistics.median(times[2:])}))
    if world > 1:
        dist.destroy_process_group()
""")


def processes(steps: int, batch: int = 32) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(PROCESS_WORKER)
        runs = {
            "1 process x 2 threads": ([sys.executable, str(script)], "2"),
            "2 processes x 1 thread": ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                        "--nproc_per_node=2", str(script)], "1"),
        }
        results = {}
        for label, (cmd, threads) in runs.items():
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            out = subprocess.run(cmd + [str(batch), str(steps)], capture_output=True, text=True, check=True, env=env)
            results[label] = json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]
    print(f"| convnext_atto train, 128x128, global batch {batch} | images/s |\n|---|---|")
    for label, ips in results.items():
        print(f"| {label} | {ips:.1f} |")
    ratio = results["2 processes x 1 thread"] / results["1 process x 2 threads"]
    print(f"| ratio 2x1 / 1x2 | {ratio:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("parts", nargs="*", default=["speed", "memory", "processes"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads")
    for part in args.parts:
        {"speed": lambda: speed(args.rounds, args.steps), "memory": memory,
         "processes": lambda: processes(steps=8)}[part]()


if __name__ == "__main__":
    main()
