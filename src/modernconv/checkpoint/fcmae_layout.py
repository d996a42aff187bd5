"""FCMAE pre-training checkpoints -> their encoder, as dense tensors.

A whole FCMAE checkpoint holds ``encoder.*`` next to the decoder (ours: ``decoder.*``; the authors':
``proj``, ``mask_token``, ``decoder.*``, ``pred``). The authors' encoder is their MinkowskiEngine model: its
convolutions store ``kernel`` tensors of shape (K*K, C_in, C_out), or (K*K, C) for the depthwise ones, with
the kernel offsets in column-major order; its LayerNorms and Linears sit one module deeper (``norm.ln.weight``,
``pwconv1.linear.weight``); its biases and GRN parameters are (1, C). Everything else is the authors' dense
layout, which ``formats.py`` knows.
"""
from __future__ import annotations

import math

import torch

from ..errors import CheckpointError

ENCODER_PREFIX = "encoder."
MASK_TOKENS = ("mask_token", "decoder.mask_token")  # the authors', ours
WRAPPERS = ("ln", "linear")  # MinkowskiLayerNorm.ln, MinkowskiLinear.linear


def is_fcmae_checkpoint(keys: list[str]) -> bool:
    """A whole FCMAE model: an ``encoder.`` part and a decoder's mask token."""
    return any(k in MASK_TOKENS for k in keys) and any(k.startswith(ENCODER_PREFIX) for k in keys)


def dense_kernel(key: str, kernel: torch.Tensor) -> torch.Tensor:
    """A MinkowskiEngine kernel (K*K, C_in, C_out) or depthwise kernel (K*K, C) as a conv weight
    (C_out, C_in, K, K), or (C, 1, K, K). Offset index = column * K + row."""
    if kernel.ndim == 2:
        kernel = kernel.unsqueeze(1)
    size = math.isqrt(kernel.shape[0])
    if kernel.ndim != 3 or size * size != kernel.shape[0]:
        raise CheckpointError(f"{key}: a MinkowskiEngine kernel must be (K*K, C) or (K*K, C_in, C_out), got "
                              f"{tuple(kernel.shape)}")
    _, c_in, c_out = kernel.shape
    return kernel.permute(2, 1, 0).reshape(c_out, c_in, size, size).transpose(2, 3)


def fcmae_encoder(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder of an FCMAE checkpoint (ours or the authors'), without the ``encoder.`` prefix and with the
    authors' sparse tensors made dense; the decoder, and the head that took no part (ours), are left out."""
    encoder = {}
    for key, value in source.items():
        if not key.startswith(ENCODER_PREFIX) or key.startswith(ENCODER_PREFIX + "head."):
            continue
        parts = key[len(ENCODER_PREFIX):].split(".")
        if parts[-1] == "kernel":
            value = dense_kernel(key, value)
            parts[-1] = "weight"
        elif len(parts) > 2 and parts[-2] in WRAPPERS:
            del parts[-2]
        encoder[".".join(parts)] = value
    return encoder
