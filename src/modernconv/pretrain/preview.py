"""The reconstruction grid written after each pre-training epoch: original / masked input / reconstruction."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .fcmae import FCMAE  # noqa: E402
from .masking import upsample_mask  # noqa: E402

ROWS = ("original", "masked input", "reconstruction")


@torch.no_grad()
def reconstruction_rows(model: FCMAE, images: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The three rows as (N, C, H, W) in the images' normalisation; the reconstruction keeps the visible
    patches of the original and shows the prediction in the masked ones."""
    was_training = model.training
    model.eval()
    try:
        out = model(images, mask)
    finally:
        model.train(was_training)
    grid = model.grid(images)
    hidden = upsample_mask(out.mask, grid, model.patch_size).unsqueeze(1).to(images.dtype)
    predicted = model.reconstruct(images, out.pred.float())
    return [images, images * (1 - hidden), images * (1 - hidden) + predicted * hidden]


def save_reconstruction_grid(model: FCMAE, images: torch.Tensor, mask: torch.Tensor, mean: Sequence[float],
                             std: Sequence[float], path: Path, title: str = "") -> None:
    """Plot ``reconstruction_rows`` (de-normalised with ``mean`` / ``std``) as a PNG, one image per column."""
    rows = reconstruction_rows(model, images, mask)
    mean_t = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    n = images.shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n, 1.6 * len(rows)), squeeze=False)
    for r, (label, row) in enumerate(zip(ROWS, rows)):
        pictures = (row * std_t + mean_t).clamp(0, 1)[:, :3].permute(0, 2, 3, 1).cpu().numpy()
        for c in range(n):
            ax = axes[r][c]
            picture = pictures[c]
            ax.imshow(picture if picture.shape[-1] == 3 else picture[..., 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
