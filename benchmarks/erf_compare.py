"""Effective receptive fields of ConvNeXt and UniRepLKNet trained alike on the built-in digits.

1. convnext_atto and unireplknet_a (with its large kernels 13, and, for a kernel-size comparison, the same
   network with every 13 replaced by each --kernels size), or with --pair tiny convnext_tiny and unireplknet_t,
   trained with the digits recipes of configs/ at --img-size, the same seed, data order and schedule.
2. The ERF of every trained model (modernconv.analysis.erf: RepLKNet's measurement) on the same held-out digits,
   upsampled to --erf-size (larger than the training size, as RepLKNet measures 224-trained models at 1024).

Prints a table of held-out top-1 and high-contribution area ratios; the side-by-side heat maps go to --figure.
Defaults take about 5-10 minutes on 2 CPU cores; rerunning with the same --out reuses finished runs.
python benchmarks/erf_compare.py [--out runs/erf_compare] [--epochs 6] [--img-size 64] [--erf-size 224]
                                 [--images 32] [--kernels 3 7] [--figure benchmarks/figures/erf_digits.png]
                                 [--pair tiny]   (convnext_tiny vs unireplknet_t instead of atto vs A)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from modernconv.analysis.collapse import held_out_images
from modernconv.analysis.erf import ERFResult, measure_erf
from modernconv.config import load_config
from modernconv.conversion import model_from_checkpoint
from modernconv.tasks import train
from modernconv.engine.state import BEST_FILE, LAST_FILE
from modernconv.models.unireplknet import KERNEL_SIZES
from modernconv.plots import plot_erf

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FIGURES = Path(__file__).resolve().parent / "figures"
UNIREPLKNET_A_DEPTHS = (2, 2, 6, 2)
LARGE_KERNEL = 13  # UniRepLKNet-A's large kernel (stages 2-4)


def unireplknet_kernels(size: int) -> list[list[int]]:
    """UniRepLKNet-A's kernel table with every large kernel replaced by ``size``."""
    return [[size if k == LARGE_KERNEL else k for k in stage] for stage in KERNEL_SIZES[UNIREPLKNET_A_DEPTHS]]


PAIRS = {"atto": ("convnext_atto", "unireplknet_a"), "tiny": ("convnext_tiny", "unireplknet_t")}


def runs(pair: str, kernels: list[int]) -> list[tuple[str, str, str, dict]]:
    """(label, run folder, recipe file, option overrides) of every model to compare: the pair's ConvNeXt, its
    UniRepLKNet, and (for the atto pair) UniRepLKNet-A with other kernel sizes."""
    convnext, unireplknet = PAIRS[pair]
    found = [(f"{convnext} (7x7)", convnext, "digits_convnext.yaml", {"model": convnext})]
    for k in sorted({*(kernels if pair == "atto" else []), LARGE_KERNEL}):
        variant = {} if k == LARGE_KERNEL else {"model_kwargs": {"kernel_sizes": unireplknet_kernels(k)}}
        found.append((f"{unireplknet} ({k}x{k})", unireplknet + (f"_k{k}" if variant else ""),
                      "digits_unireplknet.yaml", {"model": unireplknet, **variant}))
    return found


def train_one(folder: Path, recipe: str, overrides: dict, epochs: int, img_size: int) -> tuple[Path, float]:
    """Train with ``recipe`` (+ ``overrides``) in ``folder``, or finish a run already there; returns the best
    checkpoint and its held-out top-1."""
    cfg = load_config(CONFIGS / recipe, {**overrides, "epochs": epochs, "img_size": img_size, "progress": False,
                                         "output": str(folder), "resume": (folder / LAST_FILE).exists()})
    result = train(cfg)
    return result.run_dir / BEST_FILE, result.best_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/erf_compare")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--img-size", type=int, default=64, help="training side (default 64)")
    parser.add_argument("--erf-size", type=int, default=224,
                        help="ERF input side (default 224: a 7x7 last-stage map, its centre the image's)")
    parser.add_argument("--images", type=int, default=32, help="held-out digits the ERF averages (default 32)")
    parser.add_argument("--pair", choices=list(PAIRS), default="atto",
                        help="convnext_atto vs unireplknet_a (default) or convnext_tiny vs unireplknet_t")
    parser.add_argument("--kernels", type=int, nargs="*", default=[3, 7],
                        help=f"UniRepLKNet-A variants with these instead of its {LARGE_KERNEL}x{LARGE_KERNEL} kernels")
    parser.add_argument("--figure", default=str(FIGURES / "erf_digits.png"))
    args = parser.parse_args()
    out = Path(args.out)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    results: list[tuple[ERFResult, float]] = []
    batches = None
    for label, folder, recipe, overrides in runs(args.pair, args.kernels):
        checkpoint, top1 = train_one(out / folder, recipe, overrides, args.epochs, args.img_size)
        print(f"trained {label}: best held-out top-1 {top1:.2f}% ({args.epochs} epochs)", flush=True)
        model, info = model_from_checkpoint(checkpoint)
        model.data_config = info.preprocessing
        batches = batches or held_out_images("digits", model, args.images, args.erf_size)  # the same for all
        results.append((measure_erf(model, batches, label=label), top1))

    plot_erf([r for r, _ in results], args.figure,
             title=f"ERF on digits: trained {args.epochs} epochs at {args.img_size}, measured at {args.erf_size}")
    print(f"\n{args.images} held-out digits at {args.erf_size}x{args.erf_size}; high-contribution area ratio "
          "(fraction of the image, log-scaled map)")
    print("| model | top-1 | 20% | 30% | 50% | 99% |\n|---|---|---|---|---|---|")
    for result, top1 in results:
        print(f"| {result.label} | {top1:.1f} | " + " | ".join(f"{r:.4f}" for r in result.ratios.values()) + " |")
    print(f"\nwrote {args.figure}", flush=True)


if __name__ == "__main__":
    main()
