"""`predict` against `eval` on the same 2000 small image files (issue goal: predict within 1.5x of eval's time).

Both decode the files, apply the checkpoint's evaluation preprocessing and run the model in batches of 64 on
the main process; eval also computes its metrics. Prints the median seconds of each over interleaved rounds and
the median per-round ratio predict / eval.

    python benchmarks/bench_predict.py [--images 2000] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from PIL import Image

import modernconv
from common import interleaved, machine_line
from modernconv.conversion import model_from_checkpoint
from modernconv.engine import evaluate_checkpoint, predict_images

CLASSES = ("a", "b")


def make_images(root: Path, count: int) -> list[str]:
    """``count`` 32x32 PNGs in root/val/<class>/ (what eval reads), returned as paths (what predict reads)."""
    g = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        folder = root / "val" / CLASSES[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_images(root, args.images)
        net = modernconv.create_model("convnext_atto", num_classes=len(CLASSES))
        pre = net.data_config.replace(img_size=32, crop_pct=1.0)
        modernconv.save_checkpoint(net, root / "model.safetensors",
                                   metadata={"class_names": list(CLASSES), **pre.to_metadata()})
        model, info = model_from_checkpoint(root / "model.safetensors")
        steps = {"eval": lambda: evaluate_checkpoint(model, info, str(root), batch_size=64),
                 "predict": lambda: predict_images(model, info, paths, topk=2, batch_size=64)}
        times = interleaved(steps, rounds=args.rounds, per_round=1, warmup=1)
    ratios = [p / e for p, e in zip(times["predict"], times["eval"])]
    print(f"| {args.images} images, convnext_atto, 32x32, batch 64 | eval {statistics.median(times['eval']):.2f} s "
          f"| predict {statistics.median(times['predict']):.2f} s | predict / eval {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f}) |")


if __name__ == "__main__":
    main()
