"""The papers' dense comparisons at our scale: UperNet (segmentation) or Mask R-CNN (detection) with
ConvNeXt-atto, UniRepLKNet-A and the roadmap's ResNet-50, trained alike on the built-in scenes (the task's CPU
recipe, configs/{segmentation,detection}_scenes.yaml), several seeds, the best held-out score of each run (mIoU;
box AP, with the mask AP of the same epoch); a table of means and spreads for RESULTS.md.

python benchmarks/dense_results.py --task segmentation --output runs/seg_compare [--epochs 10] [--seeds 0 1 2]
python benchmarks/dense_results.py --task detection --output runs/det_compare [--epochs 8]
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

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SCORES = {"segmentation": ("miou",), "detection": ("bbox_ap", "segm_ap")}  # the deciding metric first
BACKBONES = {"convnext_atto": {}, "unireplknet_a": {}, "resnet50_to_convnext_t": {"step": "resnet50"}}


def best_scores(run_dir: Path, task: str) -> list[float] | None:
    """The task's scores at the best epoch of a finished run folder (None when it has not finished)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()] \
        if (run_dir / "metrics.jsonl").is_file() else []
    if not rows or not (run_dir / "done.json").is_file():
        return None
    best = max(rows, key=lambda r: r[f"val_{SCORES[task][0]}"])
    return [best[f"val_{name}"] for name in SCORES[task]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", choices=list(SCORES), default="segmentation")
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(machine_line(), flush=True)
    config = CONFIGS / f"{args.task}_scenes.yaml"
    recipe = load_config(config)
    epochs = args.epochs or recipe.epochs
    names = SCORES[args.task]
    scores: dict[str, list[list[float]]] = {name: [] for name in BACKBONES}
    for seed in args.seeds:
        for name, kwargs in BACKBONES.items():
            run_dir = Path(args.output) / f"{name}_seed{seed}"
            found = best_scores(run_dir, args.task)
            if found is None:
                start = time.perf_counter()
                overrides = {"model": name, "model_kwargs": kwargs, "epochs": epochs, "seed": seed, "progress": False,
                             "output": str(run_dir), "resume": "auto"}
                if recipe.milestones:  # the step schedule's decays keep their place in a longer or shorter run
                    overrides["milestones"] = [m * epochs / recipe.epochs for m in recipe.milestones]
                train(load_config(config, overrides))
                (run_dir / "done.json").write_text(json.dumps({"seconds": time.perf_counter() - start}))
                found = best_scores(run_dir, args.task)
            scores[name].append(found)
            print(f"{name} seed {seed}: " + ", ".join(f"{n} {v:.2f}" for n, v in zip(names, found)), flush=True)
    header = " | ".join(f"{n} mean +- sd" for n in names)
    print(f"\n| backbone ({epochs} epochs of the scenes) | {header} | seeds |\n|---|{'---|' * len(names)}---|")
    for name, runs in scores.items():
        cells = []
        for values in zip(*runs):
            spread = f" +- {statistics.stdev(values):.2f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.2f}{spread}")
        print(f"| {name} | {' | '.join(cells)} | {len(runs)} |")


if __name__ == "__main__":
    main()
