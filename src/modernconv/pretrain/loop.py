"""The FCMAE pre-training run: the training loop with the FCMAE task.

The run folder holds what a training run holds (config.yaml, metrics, curves.png, last.safetensors +
state.pt for resuming) plus ``encoder.safetensors`` (the encoder without its head, with our metadata, rewritten
after every epoch: ``create_model(name, pretrained=...)`` and ``modernconv train --init ...`` load it) and
``reconstructions/epoch_NNNN.png`` (original / masked input / reconstruction of fixed preview images and mask).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import PretrainConfig
from ..engine import Trainer
from .task import ENCODER_FILE, FCMAETask


@dataclass
class PretrainResult:
    """Where the run lives, its pre-trained encoder and its last epoch's metrics."""

    run_dir: Path
    encoder: Path
    last: dict
    is_main: bool = True


class Pretrainer(Trainer):
    """The training loop running the FCMAE task."""

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__(cfg, FCMAETask(cfg))


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Run the FCMAE pre-training job described by ``cfg`` (also under torchrun)."""
    trainer = Pretrainer(cfg)
    try:
        result = trainer.fit()
    finally:
        trainer.close()
    return PretrainResult(result.run_dir, result.run_dir / ENCODER_FILE, result.last, result.is_main)
