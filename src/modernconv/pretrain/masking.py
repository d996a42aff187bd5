"""FCMAE masks and patches: which input patches an image keeps, and images cut into patch vectors.

A mask is a float tensor (N, L) over the L = h * w patches of the input grid (row-major), 1 = masked,
0 = visible. Patch vectors are ordered (row, column, channel) within a patch, the authors' layout.
"""
from __future__ import annotations

import torch

from ..errors import InputShapeError


def keep_count(num_patches: int, mask_ratio: float) -> int:
    """Patches each sample keeps: ``int(L * (1 - mask_ratio))`` (49 patches at 0.6 -> 19)."""
    return int(num_patches * (1 - mask_ratio))


def random_mask(batch: int, grid: tuple[int, int], mask_ratio: float, device: torch.device | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random mask (N, L) in which every sample keeps exactly ``keep_count`` patches."""
    num_patches = grid[0] * grid[1]
    keep = keep_count(num_patches, mask_ratio)
    if not 0 < keep < num_patches:
        raise InputShapeError(f"mask ratio {mask_ratio} on a {grid[0]}x{grid[1]} patch grid keeps {keep} of "
                              f"{num_patches} patches; use a larger image or another ratio so that some are kept "
                              "and some masked")
    noise = torch.rand(batch, num_patches, device=device, generator=generator)
    mask = torch.ones(batch, num_patches, device=device)
    return mask.scatter_(1, noise.argsort(dim=1)[:, :keep], 0.0)


def check_mask(mask: torch.Tensor, batch: int, grid: tuple[int, int]) -> torch.Tensor:
    """A given mask as float (N, L); it may also be (N, h, w). Every sample must keep the same number of
    patches (at least one, and mask at least one)."""
    num_patches = grid[0] * grid[1]
    if tuple(mask.shape) not in ((batch, num_patches), (batch, *grid)):
        raise InputShapeError(f"mask of shape {tuple(mask.shape)} does not fit {batch} images with a "
                              f"{grid[0]}x{grid[1]} patch grid; expected ({batch}, {num_patches})")
    mask = mask.reshape(batch, num_patches)
    if not ((mask == 0) | (mask == 1)).all():
        raise InputShapeError("mask values must be 0 (visible) or 1 (masked)")
    kept = (mask == 0).sum(dim=1)
    if (kept != kept[0]).any() or not 0 < int(kept[0]) < num_patches:
        raise InputShapeError(f"every sample must keep the same number of patches, at least one and not all; "
                              f"the mask keeps {sorted(set(kept.tolist()))}")
    return mask.float()


def upsample_mask(mask: torch.Tensor, grid: tuple[int, int], factor: int) -> torch.Tensor:
    """The mask (N, L) at ``factor`` times the grid resolution, as (N, h * factor, w * factor)."""
    grid_mask = mask.reshape(-1, *grid)
    return grid_mask.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, L, patch_size**2 * C)."""
    n, c, h, w = images.shape
    p = patch_size
    x = images.reshape(n, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int], channels: int) -> torch.Tensor:
    """(N, L, patch_size**2 * C) -> (N, C, H, W), the inverse of ``patchify``."""
    n, p = patches.shape[0], patch_size
    x = patches.reshape(n, *grid, p, p, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(n, channels, grid[0] * p, grid[1] * p)
