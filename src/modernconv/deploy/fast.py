"""The fast inference path: one call from a trained model to the fastest correct inference on this device.

``optimize_for_inference`` re-parameterises the model (the deploy form), puts it in channels-last memory, casts
its weights to bf16 where the device computes bf16 natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs from
Ampere on; fp32 elsewhere, with a warning), and compiles it with Inductor with weight freezing (constant-folded,
pre-packed oneDNN weights on CPU; LayerNorm, GRN's reductions and scale, GELU and the depthwise conv's epilogue
fused into the neighbouring kernels). The result takes and returns what the model did (float32 N,C,H,W in,
float32 logits out) and keeps the model's ``num_classes``, ``in_chans`` and ``data_config``.

Compiling costs tens of seconds once; it pays over many batches (``eval``, serving), not for a handful of
images. The compiled graph is specialised to one batch size: smaller batches are padded to it and larger ones
split, so a data set's short last batch costs no second compilation (eval mode computes every image on its
own, so padding changes nothing).
"""
from __future__ import annotations

import copy
import logging
import warnings

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..modalities import ModalityModel
from ..models.base import ModelWrapper
from ..reparam import reparameterize
from ..runtime import PRECISIONS, resolve_device

# Inductor's C++ build logs that a CUDA build found no CUDA runtime; on a CPU that is expected, not news
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

# compared with eager fp32: logits within this of each other (relative to the largest logit), the stated
# tolerance of the bf16 fast path; fp16 carries 3 more mantissa bits
TOLERANCE = {"bf16": 0.05, "fp16": 0.01, "fp32": 1e-4}


def native_dtype(device: torch.device, dtype: str) -> bool:
    """Whether ``device`` computes ``dtype`` natively (not by slow emulation)."""
    if dtype == "fp32":
        return True
    if device.type == "cuda":
        return dtype == "fp16" or torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        return (torch.ops.mkldnn._is_mkldnn_bf16_supported() if dtype == "bf16"
                else torch.ops.mkldnn._is_mkldnn_fp16_supported())
    return False


class FastInference(ModelWrapper):
    """A deploy-form model run in channels-last and ``dtype``, optionally compiled; inputs are cast to it and
    outputs back to the input's dtype. Inference only (no gradients)."""

    def __init__(self, model: nn.Module, precision: str, compile: bool) -> None:
        super().__init__()
        self.model = model
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        self.compiled = torch.compile(model, options={"freezing": True}) if compile else None
        self.batch_size: int | None = None  # the one batch size the compiled graph runs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        out_dtype = x.dtype if x.is_floating_point() else torch.float32
        x = x.to(device=device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            out = self._run_compiled(x) if self.compiled is not None else self.model(x)
        return _each(out, lambda t: t.to(out_dtype))

    def _run_compiled(self, x: torch.Tensor) -> torch.Tensor:
        """Run the compiled graph at its one batch size: pad smaller batches, split larger ones."""
        n = x.shape[0]
        if self.batch_size is None:
            self.batch_size = n
            try:
                return self.compiled(x)
            except Exception as e:  # no C++ compiler, an unsupported op...: the eager model still works
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                              "running eager", stacklevel=3)
                self.compiled = None
                return self.model(x)
        b = self.batch_size
        if n == b:
            return self.compiled(x)
        if n > b:
            parts = [self._run_compiled(chunk) for chunk in x.split(b)]
            return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [torch.cat(m) for m in zip(*parts)]
        padded = torch.cat([x, x.new_zeros((b - n, *x.shape[1:]))]).contiguous(memory_format=torch.channels_last)
        return _each(self.compiled(padded), lambda t: t[:n])


def _each(out: torch.Tensor | list[torch.Tensor], apply: Any) -> torch.Tensor | list[torch.Tensor]:
    """``apply`` to a model's output: one tensor, or each map of a ``features_only`` backbone's list."""
    return apply(out) if isinstance(out, torch.Tensor) else [apply(t) for t in out]


def optimize_for_inference(model: nn.Module, dtype: str = "bf16", compile: bool = True,
                           device: str | torch.device | None = None) -> FastInference | ModalityModel:
    """The fast path of ``model`` (a copy; the model itself is left as it was): see the module docstring.

    ``dtype`` is "bf16" (default), "fp16" or "fp32"; a reduced precision the device does not compute natively
    falls back to fp32 with a warning. ``compile=False`` skips torch.compile (no compilation wait). A modality
    model keeps its adapter in fp32 eager mode in front of its fast network.
    """
    if dtype not in PRECISIONS:
        raise ConfigError(f"dtype must be one of {', '.join(sorted(PRECISIONS))}, got {dtype!r}")
    if isinstance(model, ModalityModel):  # the network goes on the fast path; the adapter stays fp32 eager
        network = optimize_for_inference(model.model, dtype, compile, device)
        adapter = copy.deepcopy(model.adapter).eval().to(next(network.model.parameters()).device)
        return ModalityModel(adapter, network, model.modality, model.options)
    device = resolve_device(str(device) if device is not None else
                            str(next(model.parameters()).device))
    if not native_dtype(device, dtype):
        warnings.warn(f"{device.type} has no native {dtype}; the fast path runs in fp32", stacklevel=2)
        dtype = "fp32"
    fast = reparameterize(model).eval().requires_grad_(False)
    fast = fast.to(device=device, dtype=PRECISIONS[dtype], memory_format=torch.channels_last)
    return FastInference(fast, dtype, compile)
