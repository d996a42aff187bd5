"""The pre-training run's configuration: TrainConfig's run machinery plus FCMAE's options.

Read and coerced by ``modernconv.config.load_config(..., kind=PretrainConfig)``. The defaults are a small CPU
recipe for the built-in digits (configs/fcmae_digits.yaml); configs/fcmae_imagenet.yaml is the paper's.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from ..errors import ConfigError
from .fcmae import check_options
from .sparse import check_mode

# classification options that pre-training has no use for: left at their defaults, and not saved
NOT_FOR_PRETRAINING = ("head_init_scale", "randaugment_magnitude", "randaugment_ops", "color_jitter",
                       "random_erasing", "mixup", "cutmix", "mix_prob", "mix_switch_prob", "label_smoothing",
                       "crop_pct", "layer_decay", "ema_decay")


@dataclass
class PretrainConfig(TrainConfig):
    """FCMAE pre-training: AdamW (0.9, 0.95), lr scaled by batch / 256, warm-up + cosine, RandomResizedCrop
    and flips only. Every TrainConfig key applies except those in ``NOT_FOR_PRETRAINING``."""

    model: str = "convnextv2_atto"
    img_size: int | None = 128  # a multiple of patch_size; 128 gives a 4x4 patch grid
    scale: tuple[float, float] = (0.5, 1.0)
    epochs: int = 20
    warmup_epochs: float = 2.0
    lr: float = 1.5e-3
    lr_base_batch: int | None = 256
    min_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    # FCMAE
    mask_ratio: float = 0.6
    patch_size: int = 32  # the encoder's total stride
    decoder_dim: int = 256  # the paper's 512 costs as much as the sparse encoder on a 4x4 grid
    decoder_depth: int = 1
    norm_pix_loss: bool = True
    mode: str = "sparse"  # sparse | masked (the dense reference; same results, slower)
    preview_images: int = 8  # images in the per-epoch reconstruction grid (0 = none)

    def validate(self) -> "PretrainConfig":
        super().validate()
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        for name in NOT_FOR_PRETRAINING:
            if getattr(self, name) != defaults[name]:
                raise ConfigError(f"{name} does not apply to pre-training; remove it from the recipe")
        check_options(self.mask_ratio, self.decoder_dim, self.decoder_depth)
        check_mode(self.mode)
        if self.patch_size < 1 or self.preview_images < 0:
            raise ConfigError(f"patch_size must be positive and preview_images not negative, got "
                              f"{self.patch_size} and {self.preview_images}")
        if self.img_size is not None and self.img_size % self.patch_size:
            raise ConfigError(f"img_size {self.img_size} must be a multiple of patch_size {self.patch_size}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if k not in NOT_FOR_PRETRAINING}
