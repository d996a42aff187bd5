"""The FCMAE pre-training task: unlabelled images in, the masked-patch reconstruction loss out; each epoch ends by
saving the encoder and a reconstruction grid.

The run folder holds what a training run holds (config.yaml, metrics, curves.png, last.safetensors + state.pt for
resuming) plus ``encoder.safetensors`` (the encoder without its head, with our metadata, rewritten after every
epoch: ``create_model(name, pretrained=...)`` and ``modernconv train --init ...`` load it) and
``reconstructions/epoch_NNNN.png`` (original / masked input / reconstruction of fixed preview images and mask)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import PretrainConfig
from ..data import build_unlabelled, train_transform
from ..engine.task import RunContext, Task, TaskData, model_options
from ..models import create_model
from ..pretrain.fcmae import FCMAE
from ..pretrain.preview import save_reconstruction_grid

ENCODER_FILE = "encoder.safetensors"
PREVIEW_DIR = "reconstructions"


class FCMAETask(Task):
    """``FCMAE(encoder)`` on the training images (labels unused); the held-out images feed the preview."""

    name = "fcmae"

    def __init__(self, cfg: PretrainConfig) -> None:
        self.cfg = cfg

    def model_options(self) -> dict[str, Any]:
        return model_options(self.cfg)

    def build_data(self, ctx: RunContext) -> TaskData:
        cfg = self.cfg
        pre = ctx.preprocessing.replace(crop_pct=1.0)
        train_tf = train_transform(pre.img_size, pre.mean, pre.std, scale=cfg.scale, hflip=cfg.hflip,
                                   randaugment_magnitude=None, random_erasing=0.0, interpolation=pre.interpolation)
        options = dict(skip_bad_images=cfg.skip_bad_images, synthetic_samples=cfg.synthetic_samples,
                       synthetic_classes=cfg.synthetic_classes)
        self.preview = build_unlabelled(cfg.data, "val", cfg.in_chans, pre.eval_transform(), **options)
        self.data = TaskData(build_unlabelled(cfg.data, "train", cfg.in_chans, train_tf, **options), self.preview, [],
                             pre)
        return self.data

    def build_model(self, data: TaskData) -> FCMAE:
        cfg = self.cfg
        encoder = create_model(cfg.model, **self.model_options())
        if cfg.init:
            load_checkpoint(encoder, cfg.init_file())
        return FCMAE(encoder, cfg.mask_ratio, cfg.patch_size, cfg.decoder_dim, cfg.decoder_depth, cfg.norm_pix_loss,
                     cfg.mode)

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        """FCMAE computes its own loss; the placeholder labels are unused."""
        return net(batch[0]).loss

    def metadata(self, data: TaskData) -> dict[str, Any]:
        cfg = self.cfg
        fcmae = dict(img_size=data.preprocessing.img_size, mask_ratio=cfg.mask_ratio, patch_size=cfg.patch_size,
                     decoder_dim=cfg.decoder_dim, decoder_depth=cfg.decoder_depth, norm_pix_loss=cfg.norm_pix_loss,
                     data=cfg.data)
        return {**super().metadata(data), "fcmae": fcmae}

    def end_epoch(self, ctx: RunContext, model: nn.Module, row: dict) -> None:
        if not ctx.dist.is_main:
            return
        encoder = model.encoder
        save_checkpoint(model.encoder_state_dict(), ctx.run_dir / ENCODER_FILE, metadata={
            **self.metadata(self.data), "model": encoder.model_name, "model_kwargs": encoder.model_kwargs,
            "weights": "fcmae-encoder", "epoch": row["epoch"], "train_loss": row["train_loss"]})
        if self.cfg.preview_images:
            images, mask = self._preview_batch(model, ctx.device)
            pre = self.data.preprocessing
            save_reconstruction_grid(model, images, mask, pre.mean, pre.std,
                                     ctx.run_dir / PREVIEW_DIR / f"epoch_{row['epoch']:04d}.png",
                                     title=f"{encoder.model_name} FCMAE, epoch {row['epoch']}")

    def _preview_batch(self, model: FCMAE, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The same preview images and mask every epoch (the first held-out images, a mask from the seed)."""
        count = min(self.cfg.preview_images, len(self.preview))
        images = torch.stack([self.preview[i][0] for i in range(count)])
        generator = torch.Generator().manual_seed(self.cfg.seed)
        return images.to(device), model.random_mask(images, generator).to(device)

    def result_line(self, best_score: float | None, best_epoch: int, last: dict, run_dir: Path) -> str:
        return f"final loss {last.get('train_loss', float('nan')):.4f}; encoder {run_dir / ENCODER_FILE}"
