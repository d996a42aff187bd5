"""The reconstruction grid written after each pre-training epoch: original / masked input / reconstruction."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..plots import plot_reconstructions
from ..runtime import eval_mode
from .fcmae import FCMAE
from .masking import upsample_mask


@torch.no_grad()
def reconstruction_rows(model: FCMAE, images: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The three rows as (N, C, H, W) in the images' normalisation; the reconstruction keeps the visible
    patches of the original and shows the prediction in the masked ones."""
    with eval_mode(model):
        out = model(images, mask)
    grid = model.grid(images)
    hidden = upsample_mask(out.mask, grid, model.patch_size).unsqueeze(1).to(images.dtype)
    predicted = model.reconstruct(images, out.pred.float())
    return [images, images * (1 - hidden), images * (1 - hidden) + predicted * hidden]


def save_reconstruction_grid(model: FCMAE, images: torch.Tensor, mask: torch.Tensor, mean: Sequence[float],
                             std: Sequence[float], path: Path, title: str = "") -> None:
    """Plot ``reconstruction_rows`` (de-normalised with ``mean`` / ``std``) as a PNG, one image per column."""
    plot_reconstructions(reconstruction_rows(model, images, mask), mean, std, path, title)
