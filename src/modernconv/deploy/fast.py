"""The fast inference path: one call from a trained model to the fastest correct inference on this device.

``optimize_for_inference`` re-parameterises the model (the deploy form), puts it in channels-last memory, runs
it in the chosen precision, and compiles it with Inductor with weight freezing (constant-folded, pre-packed
oneDNN weights on CPU; LayerNorm, GRN's reductions and scale, GELU and the depthwise conv's epilogue fused into
the neighbouring kernels; on CPU a C++ wrapper calls the kernels, with no Python call per layer: 1.03-1.14x as
fast at batch 1, RESULTS.md "The C++ wrapper"). Precisions: bf16 or fp16 weights where the device computes them
natively (CPUs with AVX512-BF16 or AMX, CUDA GPUs; fp32 elsewhere, with a warning); int8 on x86 CPUs from
calibration images (``modernconv.deploy.quantize``); "auto" picks by ``choose_precision``. The result takes and
returns what the model did (float32 N,C,H,W in, float32 logits out) and keeps the model's ``num_classes``,
``in_chans`` and ``data_config``.

Compiling costs tens of seconds once; it pays over many batches (``eval``, serving), not for a handful of
images. The compiled graph is specialised to one batch size: smaller batches are padded to it and larger ones
split, so a data set's short last batch costs no second compilation (eval mode computes every image on its
own, so padding changes nothing).
"""
from __future__ import annotations

import copy
import logging
import platform
import time
import warnings

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..modalities import ModalityModel
from ..models.base import ModelWrapper
from ..reparam import reparameterize
from ..runtime import PRECISIONS, resolve_device
from ..variants import FAST_PRECISION_NAMES

# Inductor's C++ build logs that a CUDA build found no CUDA runtime; on a CPU that is expected, not news
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

# compared with eager fp32: logits within this of each other (relative to the largest logit), the stated
# tolerance of each precision (fp16 carries 3 more mantissa bits than bf16; int8 measured in RESULTS.md "int8");
# and the top-1 agreement with eager fp32 each keeps over a real evaluation
TOLERANCE = {"bf16": 0.05, "fp16": 0.01, "fp32": 1e-4, "int8": 0.05}
AGREEMENT = {"bf16": 0.995, "fp16": 0.995, "fp32": 0.999, "int8": 0.99}
AUTO_TIMING_BATCH = 16  # "auto" times int8 against the float path on this many calibration images


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


def choose_precision(device: torch.device) -> tuple[str, str]:
    """The fastest float precision that keeps the fast path's tolerance on ``device``, and why: on CUDA bf16
    (fp16 without native bf16); on a CPU bf16 where native (AMX, AVX512-BF16), else fp32. With calibration
    images, "auto" also measures int8 against it (``optimize_for_inference``)."""
    if device.type == "cuda":
        return ("bf16", "CUDA computes bf16 natively") if native_dtype(device, "bf16") else \
            ("fp16", "this GPU has no native bf16")
    if native_dtype(device, "bf16"):
        return "bf16", f"native bf16 ({'AMX' if torch.cpu._is_amx_tile_supported() else 'AVX512-BF16'})"
    return "fp32", f"{device.type}: no native bf16"


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _int8_units() -> str:
    """The CPU's int8 dot-product units oneDNN uses here."""
    if torch.cpu._is_amx_tile_supported():
        return "AMX"
    if torch.backends.cpu.get_cpu_capability() == "AVX512" and torch.cpu._is_vnni_supported():
        return "AVX512-VNNI"
    return "AVX2"


class FastInference(ModelWrapper):
    """A deploy-form model run in channels-last and ``precision``, optionally compiled; inputs are cast to it and
    outputs back to the input's dtype. Inference only (no gradients). ``graph`` is what runs: the model itself,
    or for int8 its quantized graph (``model`` then describes it)."""

    def __init__(self, model: nn.Module, precision: str, compile: bool, graph: nn.Module | None = None,
                 reason: str = "") -> None:
        super().__init__()
        self.model = model
        self.graph = graph if graph is not None else model
        self.precision = precision
        self.reason = reason  # why this precision ("auto"'s choice, or a fallback)
        self.dtype = torch.float32 if precision == "int8" else PRECISIONS[precision]
        self.device = next(model.parameters()).device
        self.input_size = getattr(graph, "meta", {}).get("input_size")  # an int8 graph's one image size
        self.compiled = torch.compile(self.graph, dynamic=False) if compile else None  # frozen: see forward
        self.batch_size: int | None = None  # the one batch size the compiled graph runs

    def seconds_per_batch(self, x: torch.Tensor, repeats: int = 3) -> float:
        """The median time of a call on ``x`` (after one call that compiles)."""
        self(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self(x)
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    def train(self, mode: bool = True) -> "FastInference":
        """The wrapped model stays in eval mode (an exported int8 graph has no modes at all)."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and tuple(x.shape[1:]) != self.input_size:
            raise ConfigError(f"the int8 graph takes {'x'.join(map(str, self.input_size))} inputs (its calibration "
                              f"images' size); got {'x'.join(map(str, x.shape[1:]))}")
        out_dtype = x.dtype if x.is_floating_point() else torch.float32
        # the graph always sees inference tensors, whether the caller runs under no_grad or inference_mode: one
        # compilation serves both (each would otherwise compile its own); weight freezing and the CPU's C++ wrapper
        # are set for the call, not through torch.compile's options, which do not reach the int8 weight pre-packing
        with torch.inference_mode(), torch._inductor.config.patch(freezing=True,
                                                                 cpp_wrapper=self.device.type == "cpu"):
            x = x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=torch.channels_last)
            if not x.is_inference():
                x = x.clone(memory_format=torch.channels_last)
            out = self._run_compiled(x) if self.compiled is not None else self.graph(x)
        return _each(out, lambda t: _ordinary(t.to(out_dtype)))

    def _run_compiled(self, x: torch.Tensor) -> torch.Tensor:
        """Run the compiled graph at its one batch size: pad smaller batches, split larger ones."""
        n = x.shape[0]
        if self.batch_size is None:
            self.batch_size = n
            try:
                with warnings.catch_warnings():  # torchao's int8 weight packing warns once per layer
                    warnings.filterwarnings("ignore", message="To copy construct from a tensor")
                    return self.compiled(x)
            except Exception as e:  # no C++ compiler, an unsupported op...: the eager model still works
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                              "running eager", stacklevel=3)
                self.compiled = None
                return self.graph(x)
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


def _ordinary(t: torch.Tensor) -> torch.Tensor:
    """``t`` as an ordinary tensor for the caller (an inference tensor cannot be changed in place outside
    inference mode); a cast made outside it already is one."""
    return t.clone() if t.is_inference() else t


def optimize_for_inference(model: nn.Module, dtype: str = "auto", compile: bool = True,
                           device: str | torch.device | None = None, calibration: Any = None,
                           batch_size: int | None = None) -> FastInference | ModalityModel:
    """The fast path of ``model`` (a copy; the model itself is left as it was): see the module docstring.

    ``dtype`` is "auto" (default), "bf16", "fp16", "fp32" or "int8". "auto" takes ``choose_precision``'s float
    precision, and on an x86 CPU given ``calibration`` also builds the int8 path, times both on calibration
    images at ``batch_size`` (the batch the caller will run; 16 when not given) and keeps the faster
    (``reason`` says which and by how much). A reduced float precision the device does not compute natively
    falls back to fp32 with a warning. "int8" needs ``calibration`` (a tensor of images, a list of them, or a
    loader of (images, labels) batches from the data to be served) and an x86 CPU; elsewhere it falls back to
    "auto"'s float choice with a warning. ``compile=False`` skips torch.compile (no compilation wait; int8 then
    runs its reference arithmetic, slowly). A modality model keeps its adapter in fp32 eager mode in front of its
    fast network, which is calibrated on the adapter's outputs.
    """
    if dtype not in FAST_PRECISION_NAMES:
        raise ConfigError(f"dtype must be one of {', '.join(FAST_PRECISION_NAMES)}, got {dtype!r}")
    if isinstance(model, ModalityModel):  # the network goes on the fast path; the adapter stays fp32 eager
        adapter = copy.deepcopy(model.adapter).eval()
        if calibration is not None:
            calibration = [_adapted(adapter, item) for item in _as_batches(calibration)]
        network = optimize_for_inference(model.model, dtype, compile, device, calibration, batch_size)
        return ModalityModel(adapter.to(network.device), network, model.modality, model.options)
    device = resolve_device(str(device) if device is not None else
                            str(next(model.parameters()).device))
    if dtype == "int8" and (device.type != "cpu" or not _x86()):
        fallback, why = choose_precision(device)
        warnings.warn(f"int8 runs on x86 CPUs; on this {device.type} the fast path runs {fallback} ({why})",
                      stacklevel=2)
        return _float_path(model, fallback, compile, device, f"int8 needs an x86 CPU; {why}")
    if dtype == "int8":
        if calibration is None:
            raise ConfigError("int8 needs calibration images (calibration=...; --calibrate DATA on the command "
                              "line)")
        return _int8_path(model, calibration, compile, device, "asked for")
    if dtype != "auto":
        if not native_dtype(device, dtype):
            warnings.warn(f"{device.type} has no native {dtype}; the fast path runs in fp32", stacklevel=2)
            return _float_path(model, "fp32", compile, device, f"{device.type} has no native {dtype}")
        return _float_path(model, dtype, compile, device, "asked for")
    precision, why = choose_precision(device)
    fast = _float_path(model, precision, compile, device, why)
    if calibration is None or device.type != "cpu" or not _x86():
        return fast
    if not compile:
        fast.reason += "; int8 not tried: it pays only compiled"
        return fast
    calibration = _as_batches(calibration)  # a loader is read twice: to calibrate, to time
    int8 = _int8_path(model, calibration, compile, device, "")
    x = _timing_batch(calibration, batch_size or AUTO_TIMING_BATCH)
    faster = fast.seconds_per_batch(x) / int8.seconds_per_batch(x)
    chosen = int8 if faster > 1 else fast
    chosen.reason = (f"measured here on batches of {len(x)}: int8 {faster:.2f}x as fast as {precision} "
                     f"({why}; {_int8_units()} int8)")
    if batch_size is None:  # timed at a guessed size: the first real call compiles for its own
        chosen.batch_size, chosen.compiled = None, torch.compile(chosen.graph, dynamic=False)
    return chosen


def _timing_batch(calibration: list[Any], size: int) -> torch.Tensor:
    """``size`` calibration images (repeated where there are fewer)."""
    images = torch.cat([item[0] if isinstance(item, (tuple, list)) else item for item in calibration])
    return images.repeat((size + len(images) - 1) // len(images), 1, 1, 1)[:size]


def _float_path(model: nn.Module, precision: str, compile: bool, device: torch.device, reason: str
                ) -> FastInference:
    fast = reparameterize(model).eval().requires_grad_(False)
    fast = fast.to(device=device, dtype=PRECISIONS[precision], memory_format=torch.channels_last)
    return FastInference(fast, precision, compile, reason=reason)


def _int8_path(model: nn.Module, calibration: Any, compile: bool, device: torch.device, reason: str
               ) -> FastInference:
    try:  # torchao is imported only when int8 is asked for
        from .quantize import quantize_int8
    except ModuleNotFoundError as e:
        raise ConfigError(f"int8 needs {e.name}: pip install 'modernconv[export]'") from None
    fast = reparameterize(model).eval().requires_grad_(False).to(device=device, memory_format=torch.channels_last)
    return FastInference(fast, "int8", compile, graph=quantize_int8(fast, calibration), reason=reason)


def _as_batches(calibration: Any) -> list[Any]:
    return [calibration] if isinstance(calibration, torch.Tensor) else list(calibration)


def _adapted(adapter: nn.Module, item: Any) -> torch.Tensor:
    """A modality's raw calibration batch (or (batch, labels)) as the image maps its network sees."""
    with torch.no_grad():
        return adapter(item[0] if isinstance(item, (tuple, list)) else item)
