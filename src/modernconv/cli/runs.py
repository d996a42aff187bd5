"""Commands that run training: train, pretrain, roadmap."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from ..errors import RunStopped, UserError
from .common import add_command, run_config


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    """Train MODEL on DATA. With no arguments: a small ConvNeXt on the built-in digits set. Any option of the
    recipe can be given as --key value (e.g. --model convnextv2_atto --data PATH --epochs 10 --lr 1e-3
    --batch-size 32); `--output DIR --resume` continues an interrupted run. See configs/ for recipes."""
    from ..config import TrainConfig

    return _run(run_config(args, extra, TrainConfig))


def cmd_pretrain(args: argparse.Namespace, extra: list[str]) -> int:
    """Pre-train MODEL's encoder with FCMAE (the ConvNeXt V2 recipe: AdamW 0.9/0.95, lr 1.5e-4 x batch/256,
    warm-up + cosine, RandomResizedCrop + flip). DATA is digits, synthetic, a folder of images, or a folder
    whose train/ holds images (class sub-folders or none). Any recipe option as --key value (e.g. --model
    convnextv2_atto --mask-ratio 0.6 --mode sparse --epochs 10); `--output DIR --resume` continues a run. Writes
    encoder.safetensors (loads with create_model(..., pretrained=) and `train --init`) and a reconstruction grid
    per epoch. See configs/fcmae_*.yaml."""
    from ..config import PretrainConfig

    return _run(run_config(args, extra, PretrainConfig))


def _run(cfg: Any) -> int:
    """Train whatever task ``cfg`` describes and say how it went (the main process)."""
    from ..tasks import train

    result = train(cfg)
    if result.is_main:
        print(f"{result.summary}; run folder {result.run_dir}")
    return 0


ROADMAP_REFUSED = ("init", "model", "resume")  # the roadmap trains its track's steps and resumes by itself


def cmd_roadmap(args: argparse.Namespace, extra: list[str]) -> int:
    """With --list: parameters and GMACs of every step of the ConvNeXt paper's design roadmap next to the
    paper's GFLOPs. Otherwise train every step (or --steps) on DATA with one recipe (the first step with
    ResNet's SGD recipe, the others with the modern one: the given options over drop path 0.1, layer scale 1e-6,
    label smoothing 0.1, RandAugment m5, random erasing 0.1) and write OUTPUT/roadmap.csv and roadmap.png; each
    step is a run folder OUTPUT/STEP/seedN. Rerunning skips finished runs and resumes an interrupted one."""
    from ..config import TrainConfig, load_config
    from ..experiments.roadmap import MODERN_RECIPE, check_steps, run_roadmap, step_costs

    steps = check_steps(args.track, [s for s in args.steps.split(",") if s] if args.steps is not None else None)
    if args.list:
        costs = step_costs(args.track, steps=steps)
        if args.json:
            print(json.dumps([dict(step=c.step, params=c.params, gmacs=c.gmacs, paper_gflops=c.paper_gflops)
                              for c in costs]))
            return 0
        for c in costs:
            paper = f"{c.paper_gflops:6.2f}" if c.paper_gflops is not None else "     -"
            print(f"{c.step:24s} {c.params / 1e6:7.2f}M params  {c.gmacs:6.2f} GMACs  paper {paper} GFLOPs")
        return 0
    if extra:
        raise UserError(f"unexpected argument {extra[0]!r}; options take the form --key value")
    from ..config import overrides_from

    overrides = overrides_from(args, TrainConfig)
    refused = sorted(set(ROADMAP_REFUSED) & set(overrides))
    if refused:
        raise UserError(f"roadmap does not take --{refused[0]}: it trains the track's steps (--track, --steps) "
                        "and resumes by itself when run again")
    if "output" not in overrides:
        raise UserError("roadmap needs --output DIR (running it again with the same DIR skips finished steps)")
    cfg = load_config(args.config, overrides, TrainConfig, defaults=MODERN_RECIPE)
    try:
        table = run_roadmap(cfg, cfg.output, args.track, steps, args.repeats)
    except RunStopped as stopped:  # the roadmap resumes by itself: the same command again, not --resume
        raise stopped.continued(f"run the same roadmap command again (--output {cfg.output}) to continue") from None
    if table:
        best = max(table, key=lambda r: r["top1"])
        print(f"wrote {Path(cfg.output) / 'roadmap.csv'} and roadmap.png; best: {best['step']} "
              f"{best['top1']:.2f}% top-1")
    return 0


def add_run_command(sub: argparse._SubParsersAction, name: str, func: Callable[..., int], with_options: bool,
                    help_text: str) -> argparse.ArgumentParser:
    """A subcommand run from a YAML recipe (``-c``) plus ``--key value`` options, one per config field (added
    only when this is the command being parsed: they need the config definitions, hence torch)."""
    p = add_command(sub, name, func, help_text, allow_abbrev=False)
    p.add_argument("-c", "--config", help="YAML recipe; --key value options override it")
    if with_options and name == "roadmap":
        from ..config import TrainConfig, add_config_options
        from ..experiments.roadmap import MODERN_RECIPE
        add_config_options(p, TrainConfig, defaults=MODERN_RECIPE, hidden=ROADMAP_REFUSED)
    elif with_options:
        from ..config import PretrainConfig, TrainConfig, add_config_options
        add_config_options(p, {"train": TrainConfig, "pretrain": PretrainConfig}[name])
    p.set_defaults(takes_extra=True)
    return p


def add_parsers(sub: argparse._SubParsersAction, command: str | None) -> None:
    """The parsers of this module's commands (``command``: the one being run, for options that need torch)."""
    add_run_command(sub, "train", cmd_train, command == "train", "train or fine-tune a model (the papers' recipes)")
    add_run_command(sub, "pretrain", cmd_pretrain, command == "pretrain",
                    "FCMAE masked-autoencoder pre-training of a ConvNeXt encoder")
    p = add_run_command(sub, "roadmap", cmd_roadmap, command == "roadmap",
                        "the ResNet-50 -> ConvNeXt-T design roadmap: costs, or every step trained")
    p.add_argument("--list", action="store_true", help="print each step's parameters and GMACs and stop")
    p.add_argument("--json", action="store_true", help="with --list: a JSON list")
    p.add_argument("--track", default="resnet50_to_convnext_t",
                   help="resnet50_to_convnext_t (default) or resnet200_to_convnext_b")
    p.add_argument("--steps", help="comma-separated steps to train (default: all, in the roadmap's order)")
    p.add_argument("--repeats", type=int, default=1, help="runs per step, seeds SEED, SEED+1, ... (default 1)")
