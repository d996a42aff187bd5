"""The design-roadmap experiment: every step of a track trained with one recipe on the user's data, then a table
(roadmap.csv, one row per step; roadmap_runs.csv, one per run) and a chart in the style of the paper's Figure 2.

Every step trains with the same seed, data order, augmentation and schedule length. The ``resnet50`` step uses
ResNet's own recipe (SGD with momentum, lr 0.1 per 256 images, step decay, weight decay 1e-4, no label smoothing,
mixing, RandAugment, stochastic depth or layer scale); every later step uses the modern recipe: the given
options on top of ``MODERN_RECIPE``. Each step (and repeat) is its own run folder ``DIR/STEP/seedN``; running the
command again skips finished runs and resumes an interrupted one.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..analysis.profile import count_macs, count_params
from ..config import TrainConfig, load_config, resume_changes
from ..tasks import train
from ..engine.distributed import launch_rank
from ..engine.state import CONFIG_FILE, saved_progress
from ..errors import ConfigError
from ..files import atomic_write_text, read_jsonl_rows
from ..models import create_model
from ..models.roadmap import roadmap_steps
from ..plots import plot_roadmap
from ..variants import ROADMAP

TRACK = "resnet50_to_convnext_t"
BASELINE_STEP = "resnet50"
SIDE_BRANCHES = ("kernel_5", "kernel_9", "kernel_11")  # tried in the paper, not taken further
# the paper's Table 10 (ImageNet-1K top-1, GFLOPs at 224); the ResNet-200 track gives its end point only
PAPER = {
    "resnet50_to_convnext_t": {
        "resnet50": (76.13, 4.09), "modern_recipe": (78.82, 4.09), "stage_ratio": (79.36, 4.53),
        "patchify_stem": (79.51, 4.42), "depthwise": (78.28, 2.35), "width_96": (80.50, 5.27),
        "inverted_bottleneck": (80.64, 4.64), "move_dw_up": (79.92, 4.07), "kernel_5": (80.35, 4.10),
        "kernel_7": (80.57, 4.15), "kernel_9": (80.57, 4.21), "kernel_11": (80.47, 4.29), "gelu": (80.62, 4.15),
        "fewer_activations": (81.27, 4.15), "fewer_norms": (81.41, 4.15), "layer_norm": (81.47, 4.46),
        "separate_downsampling": (81.97, 4.49)},
    "resnet200_to_convnext_b": {"separate_downsampling": (83.60, 15.35)},
}
# the modern recipe's defaults beneath the given recipe and options (a small-scale version of the paper's)
MODERN_RECIPE: dict[str, Any] = dict(drop_path_rate=0.1, layer_scale_init_value=1e-6, label_smoothing=0.1,
                                     randaugment_magnitude=5, random_erasing=0.1)
# ResNet's recipe for the first step, replacing the modern one
BASELINE_RECIPE: dict[str, Any] = dict(opt="sgd", lr=0.1, lr_base_batch=256, momentum=0.9, weight_decay=1e-4,
                                       sched="step", warmup_epochs=1.0, min_lr=0.0, label_smoothing=0.0,
                                       drop_path_rate=0.0, layer_scale_init_value=None, randaugment_magnitude=None,
                                       auto_augment=None, random_erasing=0.0, color_jitter=0.0, mixup=0.0,
                                       cutmix=0.0, ema_decay=None)


@dataclass
class StepCost:
    """A step's size: parameters and GMACs (conv + matmul) at one input size, next to the paper's GFLOPs."""

    step: str
    params: int
    gmacs: float
    paper_gflops: float | None


def check_track(track: str) -> str:
    if track not in ROADMAP:
        raise ConfigError(f"unknown roadmap track {track!r}; the tracks are {', '.join(ROADMAP)}")
    return track


def check_steps(track: str, steps: list[str] | None) -> list[str]:
    """The steps to run, in the roadmap's order (all when None); an unknown name is a ConfigError."""
    known = roadmap_steps(check_track(track))
    if steps is None:
        return known
    if not steps:
        raise ConfigError(f"no roadmap step given; the steps are {', '.join(known)}")
    unknown = [s for s in steps if s not in known]
    if unknown:
        raise ConfigError(f"unknown roadmap step {unknown[0]!r}; the steps are {', '.join(known)}")
    return [s for s in known if s in steps]


def step_costs(track: str = TRACK, img_size: int = 224, num_classes: int = 1000, in_chans: int = 3,
               steps: list[str] | None = None) -> list[StepCost]:
    """Parameters and GMACs of each step (built on the meta device: nothing is computed)."""
    paper = PAPER[check_track(track)]
    costs = []
    for step in check_steps(track, steps):
        with torch.device("meta"):
            model = create_model(track, step=step, num_classes=num_classes, in_chans=in_chans)
        costs.append(StepCost(step, count_params(model)[0], round(count_macs(model, (in_chans, img_size, img_size))
                                                                   / 1e9, 4), paper.get(step, (None, None))[1]))
    return costs


def step_config(modern: TrainConfig, track: str, step: str, seed: int, run_dir: Path) -> TrainConfig:
    """The run of ``step`` with ``seed`` in ``run_dir``: the modern recipe, or ResNet's for the first step;
    resumed when the folder holds a run."""
    recipe = modern if step != BASELINE_STEP else dataclasses.replace(modern, **BASELINE_RECIPE)
    return dataclasses.replace(recipe, model=track, model_kwargs={**modern.model_kwargs, "step": step}, seed=seed,
                               output=str(run_dir), resume="auto").validate()


def run_summary(run_dir: Path) -> dict[str, Any]:
    """Best top-1 (model or EMA) with the top-k of that epoch (``k``: 5, or the class count when smaller),
    training wall time and median images/s of a run."""
    rows = read_jsonl_rows(run_dir / "metrics.jsonl", "epoch")
    def top1(row: dict) -> tuple[float, str]:
        return max((row.get("ema_val_top1", -1.0), "ema_val_"), (row["val_top1"], "val_"))
    best = max(rows, key=lambda r: top1(r)[0])
    score, prefix = top1(best)
    k = next(int(m[1]) for key in best if (m := re.fullmatch(re.escape(prefix) + r"top(\d+)", key)) and m[1] != "1")
    return {"top1": score, "topk": best[f"{prefix}top{k}"], "k": k, "best_epoch": best["epoch"],
            "wall_s": round(sum(r["epoch_time_s"] for r in rows), 1),
            "images_per_s": round(statistics.median(r["train_images_per_s"] for r in rows), 1)}


def run_roadmap(modern: TrainConfig, output: str | Path, track: str = TRACK, steps: list[str] | None = None,
                repeats: int = 1) -> list[dict[str, Any]]:
    """Train every step ``repeats`` times (seeds ``modern.seed``, +1, ...) under ``output`` and write the tables
    and the chart after each run: they hold every finished run in ``output`` (earlier invocations' steps too),
    which must all share this invocation's settings. Returns the per-step rows of roadmap.csv."""
    steps = check_steps(track, steps)
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    output, is_main = Path(output), launch_rank() == 0
    saved_runs(modern, track, output)  # refuse a folder of other settings before training anything
    costs: dict[str, StepCost] = {}  # at this input size and at 224, filled as steps appear
    costs_224: dict[str, StepCost] = {}
    table: list[dict[str, Any]] = []
    for repeat in range(repeats):
        for step in steps:
            seed = modern.seed + repeat
            run_dir = output / step / f"seed{seed}"
            progress = saved_progress(run_dir)
            if progress is None or progress.epoch < modern.epochs:
                train(step_config(modern, track, step, seed, run_dir), label=f"{step} (seed {seed})")
            if is_main:
                runs = [{"step": step, "seed": seed, **run_summary(d)} for step, seed, d in
                        saved_runs(modern, track, output) if saved_progress(d).epoch >= modern.epochs]
                new = [s for s in dict.fromkeys(r["step"] for r in runs) if s not in costs]
                if new:
                    costs.update((c.step, c) for c in step_costs(track, modern.img_size or 224, 10, modern.in_chans,
                                                                 new))
                    costs_224.update((c.step, c) for c in step_costs(track, steps=new))
                table = write_results(output, runs, costs, costs_224, PAPER[track])
    return table


def saved_runs(modern: TrainConfig, track: str, output: Path) -> list[tuple[str, int, Path]]:
    """(step, seed, folder) of the runs saved under ``output``, in the roadmap's order; a ConfigError when one
    was made with settings other than ``modern``'s (its table would mix recipes)."""
    found = []
    for step in roadmap_steps(track):
        for run_dir in sorted((output / step).glob("seed*"), key=lambda d: d.name):
            seed = run_dir.name[len("seed"):]
            if not seed.isdigit() or saved_progress(run_dir) is None:
                continue
            saved = load_config(run_dir / CONFIG_FILE, kind=TrainConfig)
            wanted = step_config(modern, track, step, int(seed), run_dir)
            changed = resume_changes(saved, wanted) + ([f"epochs (saved {saved.epochs}, now {wanted.epochs})"]
                                                       if saved.epochs != wanted.epochs else [])
            if changed:
                raise ConfigError(f"{output} holds roadmap runs made with other settings ({run_dir}: "
                                  f"{'; '.join(changed)}); give another --output for these settings")
            found.append((step, int(seed), run_dir))
    return found


def _mean_spread(values: list[float]) -> tuple[float, float]:
    return round(statistics.fmean(values), 2), round(statistics.stdev(values), 2) if len(values) > 1 else 0.0


def write_results(output: Path, runs: list[dict[str, Any]], costs: dict[str, StepCost],
                  costs_224: dict[str, StepCost], paper: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """roadmap_runs.csv (every run), roadmap.csv (per step: mean and spread over its runs) and roadmap.png."""
    table = []
    for step in dict.fromkeys(r["step"] for r in runs):
        mine = [r for r in runs if r["step"] == step]
        (top1, top1_sd), (topk, topk_sd) = (_mean_spread([r[k] for r in mine]) for k in ("top1", "topk"))
        k = mine[0]["k"]
        table.append({"step": step, "params": costs[step].params, "gmacs": costs[step].gmacs,
                      "gmacs_224": costs_224[step].gmacs, "paper_gflops": paper.get(step, (None, None))[1],
                      "paper_top1": paper.get(step, (None, None))[0], "runs": len(mine), "top1": top1,
                      "top1_std": top1_sd, f"top{k}": topk, f"top{k}_std": topk_sd,
                      "wall_s": round(statistics.fmean(r["wall_s"] for r in mine), 1),
                      "images_per_s": round(statistics.median(r["images_per_s"] for r in mine), 1),
                      "side_branch": step in SIDE_BRANCHES})
    atomic_write_text(output / "roadmap_runs.csv", _csv(runs))
    atomic_write_text(output / "roadmap.csv", _csv(table))
    plot_roadmap(table, output / "roadmap.png")
    return table


def _csv(rows: list[dict[str, Any]]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()

