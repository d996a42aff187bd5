"""FCMAE on the built-in digits: does pre-training help with 10% of the labels, and does ConvNeXt V1 collapse?

1. FCMAE pre-training (configs/fcmae_digits.yaml: 128x128, a 4x4 grid of 32x32 patches, 6 of 16 kept) of
   convnextv2_atto and convnext_atto on the 1438 training digits, labels unused.
2. convnextv2_atto fine-tuned from its FCMAE encoder on a stratified 10% of the training labels (144 digits)
   against the same recipe from scratch (configs/fcmae_digits_finetune.yaml); top-1 on the 359 held-out
   digits, best and last epoch, for each seed.
3. Feature-collapse curves (expansion-MLP activations after GELU, see modernconv.analysis.collapse) of both
   pre-trained encoders and of their random initialisations, on the held-out digits.

Prints the tables; runs, collapse.csv and collapse.png go under --out.
python benchmarks/fcmae_digits.py [--out runs/fcmae_digits] [--pretrain-epochs 20] [--finetune-epochs 60]
                                  [--seeds 0 1]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from PIL import Image

import modernconv
from modernconv.analysis.collapse import collapse_curve, held_out_images, write_collapse_csv
from modernconv.plots import plot_collapse
from modernconv.config import PretrainConfig, load_config
from modernconv.data.generated import digits_images, stratified_split
from modernconv.tasks import ENCODER_FILE, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ENCODERS = ("convnextv2_atto", "convnext_atto")
LABEL_FRACTION = 0.1


def write_digits_folder(root: Path) -> int:
    """train/: a stratified 10% of the training digits; val/: all held-out digits (PNG, class folders).
    Returns the number of labelled training images."""
    images, labels = digits_images(1)
    train_idx, val_idx = stratified_split(labels.numpy())
    _, labelled = stratified_split(labels[train_idx].numpy(), val_fraction=LABEL_FRACTION, seed=1)
    for split, indices in (("train", train_idx[labelled]), ("val", val_idx)):
        for i in indices:
            folder = root / split / str(int(labels[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i, 0].numpy()).save(folder / f"{i}.png")
    return len(labelled)


def pretrain_encoder(name: str, out: Path, epochs: int) -> Path:
    cfg = load_config(CONFIGS / "fcmae_digits.yaml", {"model": name, "epochs": epochs, "progress": False,
                                                        "output": str(out / f"fcmae_{name}")}, kind=PretrainConfig)
    result = train(cfg)
    print(f"pre-trained {name}: final loss {result.last['train_loss']:.4f} ({cfg.epochs} epochs)", flush=True)
    return result.run_dir / ENCODER_FILE


def fine_tune(data: Path, out: Path, epochs: int, seed: int, init: Path | None) -> tuple[float, float]:
    """(best, last) held-out top-1 of convnextv2_atto trained on ``data`` from ``init`` or from scratch."""
    label = "fcmae" if init else "scratch"
    overrides = {"data": str(data), "epochs": epochs, "seed": seed, "progress": False,
                 "output": str(out / f"finetune_{label}_seed{seed}"), "init": str(init) if init else None}
    result = train(load_config(CONFIGS / "fcmae_digits_finetune.yaml", overrides))
    return result.best_score, result.last["val_top1"]


def collapse(encoders: dict[str, Path], out: Path) -> None:
    curves, batches = [], None
    for name, path in encoders.items():
        for label, weights in (("FCMAE", path), ("random init", None)):
            torch.manual_seed(0)
            model = modernconv.create_model(name, pretrained=weights)
            batches = batches or held_out_images("digits", model, count=359, img_size=128)  # same for all
            curves.append(collapse_curve(model, batches, label=f"{name} {label}"))
    write_collapse_csv(curves, out / "collapse.csv")
    plot_collapse(curves, out / "collapse.png", title="feature collapse, digits, FCMAE 128x128")
    print("\n| encoder | mean score | first block | last block | lowest block |\n|---|---|---|---|---|")
    for c in curves:
        print(f"| {c.label} | {c.mean:.3f} | {c.score[0]:.3f} | {c.score[-1]:.3f} | {min(c.score):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/fcmae_digits")
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--finetune-epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)

    encoders = {name: pretrain_encoder(name, out, args.pretrain_epochs) for name in ENCODERS}
    data = out / "digits_10pct"
    count = write_digits_folder(data)
    results = {"scratch": [], "fcmae": []}
    for seed in args.seeds:
        results["scratch"].append(fine_tune(data, out, args.finetune_epochs, seed, None))
        results["fcmae"].append(fine_tune(data, out, args.finetune_epochs, seed, encoders["convnextv2_atto"]))
    print(f"\nconvnextv2_atto, {count} labelled digits (10%), {args.finetune_epochs} epochs, 359 held-out digits")
    print("| init | top-1 best epoch, per seed | top-1 last epoch, per seed | mean last |\n|---|---|---|---|")
    for label, runs in results.items():
        best = " / ".join(f"{b:.1f}" for b, _ in runs)
        last = " / ".join(f"{lst:.1f}" for _, lst in runs)
        print(f"| {label} | {best} | {last} | {statistics.mean(lst for _, lst in runs):.1f} |")
    collapse(encoders, out)
    print(f"\nwrote {out / 'collapse.csv'} and {out / 'collapse.png'}", flush=True)


if __name__ == "__main__":
    main()
