"""The FCMAE pre-training task: unlabelled images in, the masked-patch reconstruction loss out; each epoch ends by
saving the encoder and a reconstruction grid."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import PretrainConfig
from ..data import DataSplit, build_unlabelled, train_transform
from ..engine.state import Progress
from ..engine.task import RunContext, Task, model_options
from ..models import create_model
from .fcmae import FCMAE
from .preview import save_reconstruction_grid

ENCODER_FILE = "encoder.safetensors"
PREVIEW_DIR = "reconstructions"


class FCMAETask(Task):
    """``FCMAE(encoder)`` on the training images (labels unused); the held-out images feed the preview."""

    def __init__(self, cfg: PretrainConfig) -> None:
        self.cfg = cfg

    def model_options(self) -> dict[str, Any]:
        return model_options(self.cfg)

    def build_data(self, ctx: RunContext) -> DataSplit:
        cfg = self.cfg
        self.preprocessing = ctx.preprocessing.replace(crop_pct=1.0)
        pre = self.preprocessing
        train_tf = train_transform(pre.img_size, pre.mean, pre.std, scale=cfg.scale, hflip=cfg.hflip,
                                   randaugment_magnitude=None, random_erasing=0.0, interpolation=pre.interpolation)
        options = dict(skip_bad_images=cfg.skip_bad_images, synthetic_samples=cfg.synthetic_samples,
                       synthetic_classes=cfg.synthetic_classes)
        self.split = DataSplit(build_unlabelled(cfg.data, "train", cfg.in_chans, train_tf, **options),
                               build_unlabelled(cfg.data, "val", cfg.in_chans, pre.eval_transform(), **options), [])
        return self.split

    def build_model(self) -> FCMAE:
        cfg = self.cfg
        encoder = create_model(cfg.model, **self.model_options())
        if cfg.init:
            load_checkpoint(encoder, cfg.init)
        self.model = FCMAE(encoder, cfg.mask_ratio, cfg.patch_size, cfg.decoder_dim, cfg.decoder_depth,
                           cfg.norm_pix_loss, cfg.mode)
        return self.model

    def loss(self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """FCMAE computes its own loss; the placeholder labels are unused."""
        return net(images).loss

    def metadata(self) -> dict[str, Any]:
        cfg = self.cfg
        return {"fcmae": dict(img_size=self.preprocessing.img_size, mask_ratio=cfg.mask_ratio,
                              patch_size=cfg.patch_size, decoder_dim=cfg.decoder_dim, decoder_depth=cfg.decoder_depth,
                              norm_pix_loss=cfg.norm_pix_loss, data=cfg.data)}

    def end_epoch(self, ctx: RunContext, model: nn.Module, ema: nn.Module | None, epoch: int, row: dict,
                  progress: Progress) -> None:
        if not ctx.dist.is_main:
            return
        encoder = model.encoder
        save_checkpoint(model.encoder_state_dict(), ctx.run_dir / ENCODER_FILE, metadata={
            **self.metadata(), "model": encoder.model_name, "model_kwargs": encoder.model_kwargs,
            "weights": "fcmae-encoder", "epoch": row["epoch"], "train_loss": row["train_loss"]})
        if self.cfg.preview_images:
            images, mask = self._preview_batch(model, ctx.device)
            save_reconstruction_grid(model, images, mask, self.preprocessing.mean, self.preprocessing.std,
                                     ctx.run_dir / PREVIEW_DIR / f"epoch_{row['epoch']:04d}.png",
                                     title=f"{encoder.model_name} FCMAE, epoch {row['epoch']}")

    def _preview_batch(self, model: FCMAE, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The same preview images and mask every epoch (the first held-out images, a mask from the seed)."""
        count = min(self.cfg.preview_images, len(self.split.val))
        images = torch.stack([self.split.val[i][0] for i in range(count)])
        generator = torch.Generator().manual_seed(self.cfg.seed)
        return images.to(device), model.random_mask(images, generator).to(device)
