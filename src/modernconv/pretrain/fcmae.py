"""FCMAE: fully convolutional masked autoencoder pre-training of a ConvNeXt encoder (ConvNeXt V2 paper).

images -> random patch mask -> encoder on the visible patches (sparse semantics, ``sparse.py``) -> decoder:
1x1 conv to ``decoder_dim``, a learned mask token at masked positions, ConvNeXt V2 block(s), 1x1 conv to one
patch (patch_size**2 * channels) per last-stage pixel -> MSE against the (per-patch normalised) image
patches, averaged over the masked patches only.

The encoder is an ordinary modernconv ConvNeXt (V2, or V1 for the collapse ablation) and keeps its parameter
names; its classifier head takes no part and is frozen. ``encoder_state_dict()`` gives the weights to save
for fine-tuning (``create_model(name, pretrained=...)`` loads them).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..errors import ConfigError, InputShapeError
from ..layers import init_trunc_normal
from ..models.convnext import ConvNeXtBlock
from .masking import check_mask, patchify, random_mask, unpatchify
from .sparse import check_encoder, check_mode, encode

NORM_PIX_EPS = 1e-6


def patch_stats(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch's mean and sqrt(unbiased variance + 1e-6), the norm_pix_loss normalisation (two passes by
    hand: torch.var is several times slower on CPU)."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = (patches - mean).square().sum(dim=-1, keepdim=True) / (patches.shape[-1] - 1)
    return mean, (var + NORM_PIX_EPS).sqrt()


def check_options(mask_ratio: float, decoder_dim: int, decoder_depth: int) -> None:
    """Raise ConfigError for FCMAE options out of range."""
    if not 0 < mask_ratio < 1:
        raise ConfigError(f"mask_ratio must be between 0 and 1, got {mask_ratio}")
    if decoder_dim < 1 or decoder_depth < 0:
        raise ConfigError(f"decoder_dim must be positive and decoder_depth non-negative, got {decoder_dim} "
                          f"and {decoder_depth}")


class FCMAEOutput(NamedTuple):
    """The mean loss over masked patches, the predicted patches (N, L, patch_size**2 * C) and the mask (N, L)."""

    loss: torch.Tensor
    pred: torch.Tensor
    mask: torch.Tensor


class FCMAEDecoder(nn.Module):
    """1x1 conv C -> dim, mask token at masked positions, ``depth`` ConvNeXt V2 blocks, 1x1 conv dim -> out_dim."""

    def __init__(self, in_dim: int, out_dim: int, dim: int = 512, depth: int = 1) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_dim, dim, 1)
        self.mask_token = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.blocks = nn.Sequential(*(ConvNeXtBlock(dim, use_grn=True, layer_scale_init_value=None)
                                      for _ in range(depth)))
        self.pred = nn.Conv2d(dim, out_dim, 1)
        init_trunc_normal(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Features (N, C, h, w) and the mask (N, L) -> predicted patches (N, L, out_dim)."""
        x = self.proj(features)
        m = mask.reshape(x.shape[0], 1, *x.shape[2:]).to(x.dtype)
        x = self.pred(self.blocks(x * (1 - m) + self.mask_token * m))
        return x.flatten(2).transpose(1, 2)


class FCMAE(nn.Module):
    """Masked-autoencoder pre-training around a hierarchical ConvNeXt ``encoder``.

    ``mode`` "sparse" (fast: pointwise work on visible positions only) or "masked" (dense reference); both give
    the same loss and gradients from the same weights. ``patch_size`` must equal the encoder's total stride
    (one mask cell per last-stage pixel); inputs need sides that are multiples of it.
    """

    def __init__(self, encoder: nn.Module, mask_ratio: float = 0.6, patch_size: int = 32, decoder_dim: int = 512,
                 decoder_depth: int = 1, norm_pix_loss: bool = True, mode: str = "sparse") -> None:
        super().__init__()
        self.encoder = check_encoder(encoder)
        if patch_size != encoder.input_stride:
            raise ConfigError(f"patch_size must equal the encoder's total stride {encoder.input_stride} (one mask "
                              f"cell per last-stage pixel), got {patch_size}")
        check_options(mask_ratio, decoder_dim, decoder_depth)
        self.mode = mode
        self.mask_ratio = mask_ratio
        self.patch_size = patch_size
        self.norm_pix_loss = norm_pix_loss
        self.encoder.head.requires_grad_(False)
        self.decoder = FCMAEDecoder(encoder.num_features, patch_size ** 2 * encoder.in_chans, decoder_dim,
                                    decoder_depth)

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._mode = check_mode(mode)

    def grid(self, images: torch.Tensor) -> tuple[int, int]:
        """The patch grid (h, w) of ``images``, after checking their shape."""
        self.encoder.check_input(images)
        h, w, p = images.shape[2], images.shape[3], self.patch_size
        if h % p or w % p:
            raise InputShapeError(f"FCMAE masks whole {p}x{p} patches: height and width must be multiples of {p}, "
                                  f"got {h}x{w} (e.g. use {max(p, round(h / p) * p)}x{max(p, round(w / p) * p)})")
        return h // p, w // p

    def random_mask(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fresh mask (N, L) for ``images`` at this model's ratio."""
        return random_mask(images.shape[0], self.grid(images), self.mask_ratio, images.device, generator)

    def _grid_and_mask(self, images: torch.Tensor, mask: torch.Tensor | None) -> tuple[tuple[int, int], torch.Tensor]:
        grid = self.grid(images)
        if mask is None:
            return grid, random_mask(images.shape[0], grid, self.mask_ratio, images.device)
        return grid, check_mask(mask, images.shape[0], grid).to(images.device)

    def encode(self, images: torch.Tensor, mask: torch.Tensor, all_stages: bool = False) -> list[torch.Tensor]:
        """Encoder outputs (dense, zero at masked positions): the last stage's, or every stage's."""
        grid, mask = self._grid_and_mask(images, mask)
        return encode(self.encoder, images, mask, grid, self.mode, all_stages)

    def patch_losses(self, images: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Mean squared error of every predicted patch (N, L) against its (normalised) target."""
        target = patchify(images, self.patch_size).float()
        if self.norm_pix_loss:
            mean, std = patch_stats(target)
            target = (target - mean) / std
        return (pred.float() - target).pow(2).mean(dim=-1)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> FCMAEOutput:
        """Loss, predictions and mask; a given ``mask`` (N, L) or (N, h, w), 1 = masked, is used as is."""
        grid, mask = self._grid_and_mask(images, mask)
        features = encode(self.encoder, images, mask, grid, self.mode)[0]
        pred = self.decoder(features, mask)
        loss = (self.patch_losses(images, pred) * mask).sum() / mask.sum()
        return FCMAEOutput(loss, pred, mask)

    def reconstruct(self, images: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Predicted patches as images (N, C, H, W); with ``norm_pix_loss`` they are un-normalised with the
        true patches' mean and std (for viewing)."""
        if self.norm_pix_loss:
            mean, std = patch_stats(patchify(images, self.patch_size))
            pred = pred * std + mean
        return unpatchify(pred, self.patch_size, self.grid(images), images.shape[1])

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights without its classifier head (what fine-tuning loads)."""
        return {k: v for k, v in self.encoder.state_dict().items() if not k.startswith("head.")}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the encoder's blocks in backward to save memory."""
        self.encoder.set_grad_checkpointing(enable)
