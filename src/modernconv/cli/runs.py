"""Commands that run training: train, pretrain, roadmap."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError
from .common import run_config


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from ..config import TrainConfig
    from ..engine import train

    result = train(run_config(args, extra, TrainConfig))
    if result.is_main:
        print(f"{result.summary}; run folder {result.run_dir}")
    return 0


def cmd_pretrain(args: argparse.Namespace, extra: list[str]) -> int:
    from ..config import PretrainConfig
    from ..pretrain.loop import pretrain

    result = pretrain(run_config(args, extra, PretrainConfig))
    if result.is_main:
        print(f"final loss {result.last.get('train_loss', float('nan')):.4f}; encoder {result.encoder}; "
              f"run folder {result.run_dir}")
    return 0


def cmd_roadmap(args: argparse.Namespace, extra: list[str]) -> int:
    from ..config import TrainConfig, load_config
    from ..experiments.roadmap import MODERN_RECIPE, check_steps, run_roadmap, step_costs

    steps = check_steps(args.track, args.steps.split(",") if args.steps else None)
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
    refused = sorted({"model", "resume", "init"} & set(overrides))
    if refused:
        raise UserError(f"roadmap does not take --{refused[0]}: it trains the track's steps (--track, --steps) "
                        "and resumes by itself when run again")
    if "output" not in overrides:
        raise UserError("roadmap needs --output DIR (running it again with the same DIR skips finished steps)")
    cfg = load_config(args.config, overrides, TrainConfig, defaults=MODERN_RECIPE)
    table = run_roadmap(cfg, cfg.output, args.track, steps, args.repeats)
    if table:
        best = max(table, key=lambda r: r["top1"])
        print(f"wrote {Path(cfg.output) / 'roadmap.csv'} and roadmap.png; best: {best['step']} "
              f"{best['top1']:.2f}% top-1")
    return 0
