"""The FCMAE pre-training run: the training engine's machinery (progress, resume, atomic checkpoints, DDP,
accumulation, bf16, NaN stop) around an FCMAE model on unlabelled images.

The run folder holds what a training run holds (config.yaml, metrics, curves.png, last.safetensors +
state.pt for resuming) plus ``encoder.safetensors`` (the encoder without its head, with our metadata, rewritten
after every epoch: ``create_model(name, pretrained=...)`` and ``modernconv train --init ...`` load it) and
``reconstructions/epoch_NNNN.png`` (original / masked input / reconstruction of fixed preview images and mask).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data import eval_transform, train_transform
from ..engine.state import Progress
from ..engine.train import Trainer
from ..models import create_model
from .config import PretrainConfig
from .data import pretrain_datasets
from .fcmae import FCMAE, FCMAEOutput
from .preview import save_reconstruction_grid

ENCODER_FILE = "encoder.safetensors"
PREVIEW_DIR = "reconstructions"


@dataclass
class PretrainResult:
    """Where the run lives, its pre-trained encoder and its last epoch's metrics."""

    run_dir: Path
    encoder: Path
    last: dict
    is_main: bool = True


class Pretrainer(Trainer):
    """A Trainer whose network is ``FCMAE(encoder)``, whose data carry no labels and whose epochs end by
    saving the encoder and a reconstruction grid instead of evaluating."""

    cfg: PretrainConfig
    model: FCMAE

    def _build_data(self) -> None:
        cfg = self.cfg
        dc = self._data_config()
        self.mean, self.std = dc.mean, dc.std
        train_tf = train_transform(self.img_size, dc.mean, dc.std, scale=cfg.scale, hflip=cfg.hflip,
                                   randaugment_magnitude=None, random_erasing=0.0, interpolation=dc.interpolation)
        preview_tf = eval_transform(self.img_size, dc.mean, dc.std, crop_pct=1.0, interpolation=dc.interpolation)
        self.split = pretrain_datasets(cfg.data, self.img_size, cfg.in_chans, train_tf, preview_tf,
                                       cfg.synthetic_samples, cfg.synthetic_classes, cfg.skip_bad_images)
        self.mixing = None
        self.steps_per_epoch = self._count_steps()

    def _create_model(self) -> FCMAE:
        cfg = self.cfg
        encoder = create_model(cfg.model, **self._model_kwargs())
        if cfg.init:
            load_checkpoint(encoder, cfg.init)
        return FCMAE(encoder, cfg.mask_ratio, cfg.patch_size, cfg.decoder_dim, cfg.decoder_depth, cfg.norm_pix_loss,
                     cfg.mode)

    def _loss(self, output: FCMAEOutput, targets: torch.Tensor) -> torch.Tensor:
        """FCMAE computes its own loss; the placeholder labels are unused."""
        return output.loss

    def _metadata(self) -> dict:
        cfg = self.cfg
        return {"fcmae": dict(img_size=self.img_size, mask_ratio=cfg.mask_ratio, patch_size=cfg.patch_size,
                              decoder_dim=cfg.decoder_dim, decoder_depth=cfg.decoder_depth,
                              norm_pix_loss=cfg.norm_pix_loss, data=cfg.data)}

    def _end_epoch(self, epoch: int, row: dict, progress: Progress) -> None:
        if not self.dist.is_main:
            return
        encoder = self.model.encoder
        save_checkpoint(self.model.encoder_state_dict(), self.run_dir / ENCODER_FILE, metadata={
            **self._metadata(), "model": encoder.model_name, "model_kwargs": encoder.model_kwargs,
            "weights": "fcmae-encoder", "epoch": epoch, "train_loss": row["train_loss"]})
        if self.cfg.preview_images:
            images, mask = self._preview_batch()
            save_reconstruction_grid(self.model, images, mask, self.mean, self.std,
                                     self.run_dir / PREVIEW_DIR / f"epoch_{epoch + 1:04d}.png",
                                     title=f"{encoder.model_name} FCMAE, epoch {epoch + 1}")

    def _preview_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The same preview images and mask every epoch (the first held-out images, a mask from the seed)."""
        count = min(self.cfg.preview_images, len(self.split.val))
        images = torch.stack([self.split.val[i][0] for i in range(count)]).to(self.device)
        generator = torch.Generator().manual_seed(self.cfg.seed)
        return images, self.model.random_mask(images.cpu(), generator).to(self.device)

    def _epoch_line(self, row: dict) -> str:
        return (f"epoch {row['epoch'] + 1}/{self.cfg.epochs}: loss {row['train_loss']:.4f}  "
                f"({row['epoch_time_s']:.1f}s)")

    def fit(self) -> PretrainResult:
        """Pre-train for the configured epochs (continuing a saved run when ``resume``)."""
        result = super().fit()
        return PretrainResult(result.run_dir, result.run_dir / ENCODER_FILE, result.last, result.is_main)


def pretrain(cfg: PretrainConfig) -> PretrainResult:
    """Run the FCMAE pre-training job described by ``cfg`` (also under torchrun)."""
    trainer = Pretrainer(cfg)
    try:
        return trainer.fit()
    finally:
        trainer.close()
