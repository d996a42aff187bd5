"""The papers' UperNet comparison at our scale: UperNet with ConvNeXt-atto, UniRepLKNet-A and the roadmap's
ResNet-50, trained alike on the built-in scenes (the CPU recipe, configs/segmentation_scenes.yaml), several
seeds, best held-out mIoU of each run; a table of means and spreads for RESULTS.md.

python benchmarks/segmentation_results.py --output runs/seg_compare [--epochs 10] [--seeds 0 1 2]
Finished runs are read back, so an interrupted comparison continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from modernconv.config import load_config
from modernconv.tasks import train
from common import machine_line

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "segmentation_scenes.yaml"
BACKBONES = {"convnext_atto": {}, "unireplknet_a": {}, "resnet50_to_convnext_t": {"step": "resnet50"}}


def best_miou(run_dir: Path) -> float | None:
    """The best val mIoU of a finished run folder (None when it has not finished)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    return max(r["val_miou"] for r in rows) if rows and (run_dir / "done.json").is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(machine_line(), flush=True)
    scores: dict[str, list[float]] = {name: [] for name in BACKBONES}
    for seed in args.seeds:
        for name, kwargs in BACKBONES.items():
            run_dir = Path(args.output) / f"{name}_seed{seed}"
            score = best_miou(run_dir)
            if score is None:
                start = time.perf_counter()
                cfg = load_config(CONFIG, {"model": name, "model_kwargs": kwargs, "epochs": args.epochs,
                                           "seed": seed, "progress": False, "output": str(run_dir),
                                           "resume": (run_dir / "last.safetensors").is_file()})
                score = train(cfg).best_score
                (run_dir / "done.json").write_text(json.dumps({"miou": score,
                                                               "seconds": time.perf_counter() - start}))
            scores[name].append(score)
            print(f"{name} seed {seed}: best val mIoU {score:.2f}%", flush=True)
    print(f"\n| backbone (UperNet, {args.epochs} epochs of the scenes) | mIoU (%) mean +- sd | seeds |\n|---|---|---|")
    for name, values in scores.items():
        spread = f" +- {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        print(f"| {name} | {statistics.mean(values):.2f}{spread} | {len(values)} |")


if __name__ == "__main__":
    main()
