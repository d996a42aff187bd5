"""A hierarchical ConvNeXt encoder run on the visible patches only: FCMAE's sparse semantics, two executions.

Semantics (submanifold sparse convolution): masked positions do not exist. Every stage sees the input mask
upsampled to its resolution; since the patch size equals the total stride, each 2x2 downsampling window is all
visible or all masked, so nothing leaks into a masked position and nothing leaves one. GRN statistics are per
sample over that sample's visible positions.

- ``masked``: the reference. Dense tensors, masked positions zeroed after every operation that could make them
  non-zero (stem, depthwise conv, LayerNorm, Linear, GELU, GRN, the downsampling layers).
- ``sparse``: the fast path. The residual stream lives on the visible rows only, a (N, V, 1, C) tensor (V
  visible positions per sample, the same for every sample; the singleton axis lets GRN's (H, W) statistics
  run over V). Everything pointwise (LayerNorms, both Linears, GELU, GRN, layer scale) runs on those rows.
  The stem and downsampling convs have kernel = stride, so each visible output is a Linear of its own
  visible input patch: they run on rows too (the stem on the visible pixel patches; the downsampling on
  groups of four consecutive rows, as rows are kept in Z order within each patch). Only the depthwise conv
  needs a neighbourhood: rows are scattered into a zero map for it and its output is gathered back.

Both call the encoder's own modules, so they share one set of weights and parameter names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import FCMAE_MODES
from ..errors import ConfigError
from ..models.convnext import ConvNeXt, ConvNeXtBlock
from .masking import patchify, upsample_mask


def check_mode(mode: str) -> str:
    if mode not in FCMAE_MODES:
        raise ConfigError(f"FCMAE mode must be one of {', '.join(FCMAE_MODES)}, got {mode!r}")
    return mode


def z_order(side: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, column) of the ``side`` x ``side`` positions of a patch in Z order (side a power of two): every
    aligned 2x2 block is four consecutive positions, in (row, column) order."""
    k = torch.arange(side * side, device=device)
    row, col = torch.zeros_like(k), torch.zeros_like(k)
    for bit in range(max(side.bit_length() - 1, 0)):
        row |= ((k >> (2 * bit + 1)) & 1) << bit
        col |= ((k >> (2 * bit)) & 1) << bit
    return row, col


@dataclass(frozen=True)
class Visible:
    """The visible positions of one resolution, ``factor`` times finer than the patch grid."""

    keep: torch.Tensor  # (N, 1, H, W), 1 = visible
    rows: torch.Tensor  # indices among the N * H * W positions: by sample, by visible patch, in Z order
    count: int  # visible positions per sample

    @classmethod
    def from_mask(cls, mask: torch.Tensor, grid: tuple[int, int], factor: int) -> "Visible":
        keep = 1 - upsample_mask(mask, grid, factor).unsqueeze(1)
        sample, patch = (mask == 0).nonzero().unbind(1)
        top, left = patch // grid[1] * factor, patch % grid[1] * factor
        row, col = z_order(factor, mask.device)
        h, w = grid[0] * factor, grid[1] * factor
        rows = ((sample * h + top)[:, None] + row) * w + left[:, None] + col
        return cls(keep, rows.flatten(), rows.numel() // mask.shape[0])


def visible_per_stage(encoder: ConvNeXt, mask: torch.Tensor, grid: tuple[int, int]) -> list[Visible]:
    """One ``Visible`` per stage (the stem's resolution is stage 0's). Thanks to the Z order, the 2x2 patch
    under each visible position of stage i + 1 is four consecutive rows of stage i."""
    num_stages = len(encoder.stages)
    return [Visible.from_mask(mask, grid, 2 ** (num_stages - 1 - i)) for i in range(num_stages)]


def patch_linear(conv: nn.Conv2d, patches: torch.Tensor) -> torch.Tensor:
    """A kernel = stride conv applied to flattened patches (..., k * k * C_in) ordered (row, column, channel)."""
    return F.linear(patches, conv.weight.permute(0, 2, 3, 1).flatten(1), conv.bias)


def stem_rows(conv: nn.Conv2d, images: torch.Tensor, vis: Visible) -> torch.Tensor:
    """The stem conv at the visible positions only: (N, V, 1, C)."""
    patches = patchify(images, conv.stride[0])
    rows = patches.reshape(-1, patches.shape[-1]).index_select(0, vis.rows)
    return patch_linear(conv, rows).view(images.shape[0], vis.count, 1, -1)


def downsample_rows(conv: nn.Conv2d, rows: torch.Tensor) -> torch.Tensor:
    """The 2x2 stride-2 downsampling conv on visible rows (N, V, 1, C) in Z order: each group of four
    consecutive rows is one output position's patch. Returns (N, V / 4, 1, C_out)."""
    n, v, _, c = rows.shape
    return patch_linear(conv, rows.reshape(n, v // 4, 1, 4 * c))


def gather(x: torch.Tensor, vis: Visible) -> torch.Tensor:
    """Dense (N, C, H, W) -> visible rows (N, V, 1, C); free of copies for channels-last maps."""
    n, c = x.shape[:2]
    return x.permute(0, 2, 3, 1).reshape(-1, c).index_select(0, vis.rows).view(n, vis.count, 1, c)


def scatter(rows: torch.Tensor, vis: Visible) -> torch.Tensor:
    """Visible rows (N, V, 1, C) -> dense (N, C, H, W), channels-last, zero at masked positions."""
    n, _, h, w = vis.keep.shape
    c = rows.shape[-1]
    dense = rows.new_zeros(n * h * w, c).index_put((vis.rows,), rows.reshape(-1, c))
    return dense.view(n, h, w, c).permute(0, 3, 1, 2)


def channel_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm``'s LayerNorm over the last dimension (also for a LayerNorm2d, whose forward expects NCHW)."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def sparse_block(block: ConvNeXtBlock, rows: torch.Tensor, vis: Visible) -> torch.Tensor:
    """One block on the visible rows: the depthwise conv on the dense map, the rest on the rows."""
    y = gather(block.conv_dw(scatter(rows, vis)), vis)
    return rows + block.drop_path(block.mix_channels(y))


def masked_block(block: ConvNeXtBlock, x: torch.Tensor, vis: Visible) -> torch.Tensor:
    """One block on a dense map: the channel part zeroes the masked positions before GRN (whose per-sample
    statistics then cover the visible positions only) and in its output."""
    y = block.mix_channels(block.conv_dw(x).permute(0, 2, 3, 1), keep=vis.keep.permute(0, 2, 3, 1))
    return x + block.drop_path(y.permute(0, 3, 1, 2))


def _run_blocks(blocks: nn.Sequential, step: Callable, x: torch.Tensor, vis: Visible) -> torch.Tensor:
    use_ckpt = getattr(blocks, "grad_checkpointing", False) and torch.is_grad_enabled()
    for block in blocks:
        x = checkpoint(step, block, x, vis, use_reentrant=False) if use_ckpt else step(block, x, vis)
    return x


def _downsample_layers(stage: nn.Module) -> tuple[nn.LayerNorm, nn.Conv2d] | None:
    return None if isinstance(stage.downsample, nn.Identity) else (stage.downsample[0], stage.downsample[1])


def encode_sparse(encoder: ConvNeXt, images: torch.Tensor, visible: list[Visible]) -> list[torch.Tensor]:
    """Each stage's output as visible rows (N, V_i, 1, C_i)."""
    stem_conv, stem_norm = encoder.stem
    rows = channel_norm(stem_norm, stem_rows(stem_conv, images, visible[0]))
    outputs = []
    for i, stage in enumerate(encoder.stages):
        down = _downsample_layers(stage)
        if down is not None:
            norm, conv = down
            rows = downsample_rows(conv, channel_norm(norm, rows))
        rows = _run_blocks(stage.blocks, sparse_block, rows, visible[i])
        outputs.append(rows)
    return outputs


def encode_masked(encoder: ConvNeXt, images: torch.Tensor, visible: list[Visible]) -> list[torch.Tensor]:
    """Each stage's output as a dense map (N, C_i, H_i, W_i), zero at masked positions."""
    stem_conv, stem_norm = encoder.stem
    x = stem_norm(stem_conv(images) * visible[0].keep) * visible[0].keep
    outputs = []
    for i, stage in enumerate(encoder.stages):
        down = _downsample_layers(stage)
        if down is not None:
            norm, conv = down
            x = conv(norm(x) * visible[i - 1].keep) * visible[i].keep
        x = _run_blocks(stage.blocks, masked_block, x, visible[i])
        outputs.append(x)
    return outputs


def check_encoder(encoder: nn.Module) -> ConvNeXt:
    """FCMAE runs hierarchical ConvNeXt encoders (V1 or V2)."""
    if not isinstance(encoder, ConvNeXt):
        raise ConfigError(f"FCMAE needs a hierarchical ConvNeXt encoder (convnext_* or convnextv2_*), got "
                          f"{getattr(encoder, 'model_name', type(encoder).__name__)}")
    return encoder


def encode(encoder: ConvNeXt, images: torch.Tensor, mask: torch.Tensor, grid: tuple[int, int], mode: str,
           all_stages: bool = False) -> list[torch.Tensor]:
    """Dense outputs (zero at masked positions) of the last stage, or of every stage with ``all_stages``,
    computed in ``mode`` ("sparse" or "masked") from ``images`` and the patch ``mask`` (N, L)."""
    visible = visible_per_stage(encoder, mask, grid)
    if check_mode(mode) == "masked":
        outputs = encode_masked(encoder, images, visible)
        return outputs if all_stages else outputs[-1:]
    outputs = encode_sparse(encoder, images, visible)
    if not all_stages:
        return [scatter(outputs[-1], visible[-1])]
    return [scatter(rows, vis) for rows, vis in zip(outputs, visible)]
