"""FCMAE pre-training cost, sparse against masked (the dense reference), on one set of weights.

For convnextv2_atto and convnextv2_tiny at 224x224, batch 16, mask ratio 0.6, fp32:
  speed    one pre-training step (forward + backward + AdamW step, a fresh random mask each step), both modes
           timed in this process in interleaved rounds; medians, and the median of per-round ratios. For
           context also "dense": the plain encoder on the whole image (no mask semantics) + the same decoder
           and loss, i.e. what pre-training would cost without skipping anything
  memory   each mode in its own process: peak RSS over a few steps and its rise over the process just before
           the first step (CPU), or peak CUDA allocated memory; and the activations saved for backward by one
           forward (exact: unique storages handed to autograd, parameters excluded), which is what the sparse
           execution shrinks

python benchmarks/bench_fcmae.py [speed] [memory] [--rounds 5] [--steps 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

import modernconv
from modernconv.analysis.benchmark import peak_memory_mb, reset_peak_memory
from modernconv.optim import build_optimizer
from modernconv.pretrain import FCMAE
from common import interleaved, machine_line, ratio_row

MODELS = ("convnextv2_atto", "convnextv2_tiny")
MODES = ("masked", "sparse")
GOAL = 1.8  # masked / sparse step time


def dense_loss(model: FCMAE, images: torch.Tensor) -> torch.Tensor:
    """The FCMAE loss with the encoder run densely on the whole image (no sparse semantics)."""
    mask = model.random_mask(images)
    pred = model.decoder(model.encoder.forward_features(images), mask)
    return (model.patch_losses(images, pred) * mask).sum() / mask.sum()


def make_pretrain_step(model: FCMAE, images: torch.Tensor, dense: bool = False):
    """A callable running one pre-training step (FCMAE in its mode, or ``dense_loss``) with the library's AdamW
    (0.9, 0.95)."""
    model.train()
    optimizer = build_optimizer(model, lr=1.5e-4, weight_decay=0.05, betas=(0.9, 0.95))

    def step() -> None:
        (dense_loss(model, images) if dense else model(images).loss).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def build(name: str, mode: str, device: torch.device) -> FCMAE:
    """The same weights for every mode ("dense" builds a sparse-mode model that ``dense_loss`` runs)."""
    torch.manual_seed(0)
    return FCMAE(modernconv.create_model(name), mask_ratio=0.6, mode="sparse" if mode == "dense" else mode).to(device)


def saved_activation_mb(model: FCMAE, images: torch.Tensor) -> float:
    """MB of distinct tensors autograd keeps for backward in one forward (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    torch.manual_seed(0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(images)
    return sum(seen.values()) / 2**20


def speed(batch: int, size: int, rounds: int, steps: int, device: torch.device, channels_last: bool) -> None:
    layout = torch.channels_last if channels_last else torch.contiguous_format
    print(f"| FCMAE step, batch {batch}, {size}x{size}, mask 0.6{', channels-last' if channels_last else ''} | "
          f"sparse img/s | reference img/s | reference/sparse time (median) | range |\n|---|---|---|---|---|")
    for name in MODELS:
        images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=layout)
        models = {mode: build(name, mode, device).to(memory_format=layout) for mode in ("sparse", "masked", "dense")}
        times = interleaved({mode: make_pretrain_step(model, images, dense=mode == "dense")
                             for mode, model in models.items()}, rounds, steps, warmup=1, device=device)
        for reference in ("masked", "dense"):
            print(ratio_row(f"{name}: sparse vs {reference}", batch, times["sparse"], times[reference]), flush=True)
    print(f"\ngoal: masked/sparse >= {GOAL}")


def child(name: str, mode: str, batch: int, size: int, steps: int, device: torch.device) -> None:
    """Run in its own process: the peak memory of ``steps`` pre-training steps of one mode."""
    model = build(name, mode, device)
    images = torch.randn(batch, 3, size, size, device=device)
    step = make_pretrain_step(model, images)
    reset_peak_memory(device)
    before, _ = peak_memory_mb(device)
    for _ in range(steps):
        step()
    peak, kind = peak_memory_mb(device)
    print(json.dumps({"peak_mb": peak, "rise_mb": peak - before, "kind": kind,
                      "saved_mb": saved_activation_mb(model, images)}))


def memory(batch: int, size: int, steps: int, device: torch.device) -> None:
    print(f"| FCMAE step, batch {batch}, {size}x{size} | mode | peak memory MB | rise over start MB | "
          f"saved activations MB |\n|---|---|---|---|---|")
    for name in MODELS:
        rows = {}
        for mode in MODES:
            out = subprocess.run([sys.executable, __file__, "--child", name, mode, "--batch-size", str(batch),
                                  "--size", str(size), "--steps", str(steps), "--device", str(device)],
                                 capture_output=True, text=True, check=True)
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            r = rows[mode]
            print(f"| {name} | {mode} | {r['peak_mb']:.0f} | {r['rise_mb']:.0f} | {r['saved_mb']:.0f} |", flush=True)
        ratio = {k: rows["sparse"][k] / rows["masked"][k] for k in ("peak_mb", "rise_mb", "saved_mb")}
        print(f"| {name} | sparse / masked | {ratio['peak_mb']:.2f} | {ratio['rise_mb']:.2f} | "
              f"{ratio['saved_mb']:.2f} |", flush=True)
    print(f"\nmemory: {rows['sparse']['kind']} (peak over the steps; the rise is over the process just before the "
          "first step)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["speed", "memory"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per mode per round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action="store_true", help="speed: channels-last images and weights")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    device = torch.device(args.device)
    if args.child:
        child(*args.child, args.batch_size, args.size, args.steps, device)
        return
    print(f"torch {torch.__version__}, {device} ({torch.get_num_threads()} threads), fp32\n")
    for part in args.parts:
        if part == "speed":
            speed(args.batch_size, args.size, args.rounds, args.steps, device, args.channels_last)
        elif part == "memory":
            memory(args.batch_size, args.size, args.steps, device)
        else:
            parser.error(f"unknown part {part!r}: speed or memory")
        print()


if __name__ == "__main__":
    main()
