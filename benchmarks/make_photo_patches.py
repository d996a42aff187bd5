"""Build a small natural-image folder from the photos that ship with scikit-learn and matplotlib.

Classes are the four quadrants of each photo (china, flower, grace_hopper: 12 classes). Each quadrant is cut into
a checkerboard of square cells; train images are random crops inside the "white" cells and val images random
crops inside the "black" cells, so no val pixel is ever seen in training. Crops are 60-100% of a cell, resized to
32x32 and saved as PNG in ``OUT/train/<class>/`` and ``OUT/val/<class>/`` (torchvision's ImageFolder layout).

    python benchmarks/make_photo_patches.py /tmp/photo_patches
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib
import numpy as np
import sklearn.datasets
from PIL import Image

CELL = 48
SIZE = 32


def photos() -> dict[str, Image.Image]:
    """The bundled photographs, by name."""
    sk = Path(sklearn.datasets.__file__).parent / "images"
    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    paths = {"china": sk / "china.jpg", "flower": sk / "flower.jpg", "hopper": mpl / "grace_hopper.jpg"}
    return {name: Image.open(path).convert("RGB") for name, path in paths.items()}


def quadrant_cells(width: int, height: int) -> list[tuple[int, int, int, int, int]]:
    """``(quadrant, x, y, parity, size)`` for every whole cell of each quadrant of a width x height photo."""
    cells = []
    for q, (x0, y0) in enumerate([(0, 0), (width // 2, 0), (0, height // 2), (width // 2, height // 2)]):
        for i in range((height // 2) // CELL):
            for j in range((width // 2) // CELL):
                cells.append((q, x0 + j * CELL, y0 + i * CELL, (i + j) % 2, CELL))
    return cells


def write_split(out: Path, per_cell: dict[int, int], seed: int) -> dict[str, int]:
    """Write the crops of both splits; returns the number of images per split."""
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "val": 0}
    for name, image in photos().items():
        for q, x, y, parity, size in quadrant_cells(*image.size):
            split = "train" if parity == 0 else "val"
            folder = out / split / f"{name}_q{q}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_cell[parity]):
                side = int(rng.integers(int(0.6 * size), size + 1))
                dx, dy = rng.integers(0, size - side + 1, size=2)
                crop = image.crop((x + dx, y + dy, x + dx + side, y + dy + side)).resize((SIZE, SIZE), Image.BICUBIC)
                crop.save(folder / f"{x}_{y}_{k}.png")
                counts[split] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--train-per-cell", type=int, default=10)
    parser.add_argument("--val-per-cell", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.output.exists():
        raise SystemExit(f"error: {args.output} exists; give a new folder")
    counts = write_split(args.output, {0: args.train_per_cell, 1: args.val_per_cell}, args.seed)
    print(f"{args.output}: {counts['train']} train and {counts['val']} val images, "
          f"{len(os.listdir(args.output / 'train'))} classes")


if __name__ == "__main__":
    main()
