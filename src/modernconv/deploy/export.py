"""Export to ONNX, TorchScript and PT2 (torch.export), in the deploy form, checked before the file is kept.

Each export has a dynamic batch axis and, for an image network exported at a size where every stage's map is at
least 2x2, dynamic height and width (multiples of the model's input stride from that size up, to ``MAX_SIDE``;
below it the spatial size is fixed, as torch.export specialises maps of size 1). A modality model (audio, video,
point clouds, time series) is exported whole, adapter included: it takes batches of raw samples of its
``sample_shape``, whose axes other than the batch are fixed.
The written file is run right away (onnxruntime for ONNX, ``torch.jit.load`` / ``torch.export.load`` for the
others) on random inputs at the export size, at another batch size and (image networks) another spatial size,
and on real images when given; if any output differs from the PyTorch model's by more than
``allowed_difference`` (``atol`` per unit of the outputs' scale) the file is deleted and an ``ExportError`` says
by how much. Files are written in a temporary folder beside the output and moved into place only once checked,
so a failed or killed export never leaves a file under the final name.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..errors import UserError
from ..files import sync_folder
from ..modalities import ModalityModel
from ..modalities.spec import at_most, positive
from ..reparam import reparameterize

FORMATS = ("onnx", "torchscript", "pt2")
SUFFIXES = {".onnx": "onnx", ".pt2": "pt2", ".pt": "torchscript", ".ts": "torchscript"}
ONNX_OPSET = 18
ONNX_INLINE_LIMIT = 1_800_000_000  # bytes of weights above which ONNX keeps them in OUT.data (protobuf's 2 GB cap)
MAX_SIDE = 4096  # the largest height and width an export takes (and its dynamic axes accept)


class ExportError(UserError):
    """An export that could not be written or whose file does not reproduce the model."""


@dataclass
class ExportCheck:
    """One comparison of the exported file's outputs with PyTorch's."""

    inputs: str
    max_abs_diff: float
    allowed: float  # atol x max(1, largest |output| of the PyTorch model on these inputs)


@dataclass
class ExportReport:
    """What was written and how it was checked."""

    path: Path
    format: str
    input_size: tuple[int, ...]
    dynamic_spatial: bool
    atol: float
    checks: list[ExportCheck] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)


def allowed_difference(expected: torch.Tensor, atol: float) -> float:
    """The largest difference a correct file may show: ``atol`` for outputs of magnitude up to 1, ``atol`` times the
    largest |output| above that. Two correct fp32 implementations (another kernel order, another CPU's vector
    width) differ by rounding errors that grow with the outputs' magnitude, so a fixed absolute bound would refuse
    a correct network whose logits are large (a randomly initialised ResNet-50's are in the tens)."""
    return atol * max(1.0, expected.abs().max().item())


def export_model(model: nn.Module, path: str | os.PathLike, fmt: str, input_size: Sequence[int],
                 real_images: torch.Tensor | None = None, atol: float = 1e-4,
                 contract: Mapping[str, str] | None = None) -> ExportReport:
    """Write the deploy form of ``model`` to ``path`` in format ``fmt`` and check it (see the module docstring).

    ``input_size`` is what the model is traced at: (C, H, W) for an image network, a modality model's
    ``sample_shape``; ``real_images`` an optional N,C,H,W batch; ``atol`` the allowed difference per unit of
    output scale (``allowed_difference``). Sizes and ``atol`` are checked before any work. ``contract`` (default
    ``file_contract(model)``): what the file carries for whoever runs it, in an ONNX file's ``metadata_props``
    and in ``OUT.json`` beside a TorchScript or PT2 file.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; the formats are {', '.join(FORMATS)}")
    check_atol(atol)
    check_input_size(model, input_size)
    model = reparameterize(model).eval()
    example = torch.randn(2, *input_size)
    dynamic_spatial = has_dynamic_spatial(model, input_size)
    inputs = _check_inputs(example, getattr(model, "input_stride", 1), dynamic_spatial, real_images)
    with torch.no_grad():
        expected = {name: model(x) for name, x in inputs.items()}
    report = ExportReport(Path(path), fmt, tuple(input_size), dynamic_spatial, atol)

    contract = dict(file_contract(model) if contract is None else contract)

    def write_and_check(target: Path) -> None:
        WRITERS[fmt](model, example, target, contract)
        run = RUNNERS[fmt](target)
        for name, x in inputs.items():
            diff = (run(x) - expected[name]).abs().max().item()
            allowed = allowed_difference(expected[name], atol)
            report.checks.append(ExportCheck(name, diff, allowed))
            if not diff <= allowed:
                raise ExportError(f"the exported {fmt} file differs from the model by {diff:.3g} on {name} inputs "
                                  f"(allowed {allowed:.3g}: atol {atol:g} x the largest |output|); "
                                  "nothing was written")

    _write_checked(Path(path), write_and_check)
    return report


def check_atol(atol: float) -> None:
    """Refuse an ``atol`` that no comparison can mean: NaN, infinite or negative (0 asks for identical outputs)."""
    if not 0 <= atol < float("inf"):
        raise ExportError(f"atol must be a finite number >= 0, got {atol}")


def check_input_size(model: nn.Module, input_size: Sequence[int]) -> None:
    """Refuse an export size before anything is allocated: an image network takes (C, H, W) with sides up to
    ``MAX_SIDE``, a modality model its own raw sample shape."""
    size = tuple(input_size)
    if isinstance(model, ModalityModel):
        if size != model.sample_shape:
            raise ExportError(f"this {model.modality} model takes raw samples of shape {model.sample_shape}, "
                              f"got {size}")
        return
    if len(size) != 3:
        raise ExportError(f"the input size of an image network is C, H, W, got {size}")
    positive("export input size C, H, W", *size)
    at_most("export height and width", max(size[1:]), MAX_SIDE)


def has_dynamic_spatial(model: nn.Module, input_size: Sequence[int]) -> bool:
    """Whether the export frees height and width: an image network's, at a size where every stage's map is at
    least 2x2 (a modality model's raw samples keep their shape)."""
    return not isinstance(model, ModalityModel) and min(input_size[1:]) >= min_dynamic_side(model)


def format_from_name(path: str | os.PathLike) -> str | None:
    """The export format a file name implies (.onnx, .pt2, .pt / .ts), or None."""
    return SUFFIXES.get(Path(path).suffix.lower())


def _check_inputs(example: torch.Tensor, stride: int, dynamic: bool, real: torch.Tensor | None
                  ) -> dict[str, torch.Tensor]:
    """Inputs the file is checked on: the export size, another batch size, another spatial size (when that axis
    is dynamic), real images."""
    n, *sample = example.shape
    shape = "x".join(map(str, sample))
    inputs = {f"random {n}x{shape}": example, f"random 3x{shape}": torch.randn(3, *sample)}
    if dynamic:
        c, h, w = sample
        other = (h + stride if h + stride <= MAX_SIDE else h - stride,
                 w + 2 * stride if w + 2 * stride <= MAX_SIDE else w - 2 * stride)
        inputs[f"random 1x{c}x{other[0]}x{other[1]}"] = torch.randn(1, c, *other)
    if real is not None:
        inputs[f"{len(real)} real images"] = real
    return inputs


def min_dynamic_side(model: nn.Module) -> int:
    """The smallest height and width of a graph with dynamic spatial axes: every stage's map at least 2x2
    (torch.export specialises sizes of 1), a multiple of the input stride."""
    stride = getattr(model, "input_stride", 1)
    reduction = max([info["reduction"] for info in getattr(model, "feature_info", [])] + [stride])
    return -(-2 * reduction // stride) * stride


def _dynamic_shapes(model: nn.Module, spatial: bool) -> tuple[dict[int, object]]:
    """A free batch axis; with ``spatial``, free height and width (multiples of the input stride)."""
    shapes: dict[int, object] = {0: torch.export.Dim("batch", min=1, max=4096)}
    if spatial:
        stride = getattr(model, "input_stride", 1)
        low = min_dynamic_side(model) // stride
        shapes[2] = stride * torch.export.Dim("height", min=low, max=MAX_SIDE // stride)
        shapes[3] = stride * torch.export.Dim("width", min=low, max=MAX_SIDE // stride)
    return (shapes,)  # by position: a modality model names its input otherwise


def _export_program(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    spatial = has_dynamic_spatial(model, example.shape[1:])
    try:
        return torch.export.export(model, (example,), dynamic_shapes=_dynamic_shapes(model, spatial), strict=False)
    except Exception as e:  # torch.export reports its failures with many exception types
        raise ExportError(f"torch.export could not trace {type(model).__name__}: {str(e).splitlines()[0]}") from e


def file_contract(model: nn.Module, class_names: Sequence[str] | None = None) -> dict[str, str]:
    """What an exported file carries (checkpoint metadata's keys and form, so ``DataConfig.from_metadata`` reads
    it): the model's name, its class names, its evaluation preprocessing and the input and output they mean."""
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    modality = isinstance(model, ModalityModel)
    return {"model": str(getattr(model, "model_name", type(model).__name__)),
            "class_names": json.dumps(list(names) if names else []),
            "input": "samples: a batch of raw samples" if modality else
                     "images: N,C,H,W float32, after the preprocessing (resize, centre crop, normalise)",
            "output": "logits" if getattr(model, "num_classes", 1) else "features",
            **model.data_config.to_metadata()}


def _sidecar(target: Path, contract: Mapping[str, str]) -> None:
    """``OUT.json`` beside a TorchScript or PT2 file: its contract as plain JSON (the JSON values decoded)."""
    decoded = {k: json.loads(v) if k in JSON_KEYS else v for k, v in contract.items()}
    target.with_name(target.name + ".json").write_text(json.dumps(decoded, indent=1))


JSON_KEYS = ("class_names", "preprocessing")


def _name_axes(graph: Any) -> None:
    """The input's symbolic axes (torch.export's s0, s1, ...) renamed batch, height and width in every shape of
    an ONNX graph, so that onnxruntime and Netron show what they are."""
    import onnx_ir

    names: dict[str, str] = {}
    for axis, word in zip((0, 2, 3), ("batch", "height", "width")):
        if axis < len(graph.inputs[0].shape):
            for symbol in re.findall(r"\bs\d+\b", str(graph.inputs[0].shape[axis])):
                names.setdefault(symbol, word)

    def renamed(dim: Any) -> Any:
        if not isinstance(dim, onnx_ir.SymbolicDim) or dim.value is None:
            return dim
        return onnx_ir.SymbolicDim(re.sub(r"\bs\d+\b", lambda m: names.get(m[0], m[0]), dim.value))

    for value in [*graph.inputs, *graph.outputs, *(out for node in graph for out in node.outputs)]:
        if value.shape is not None:
            value.shape = onnx_ir.Shape([renamed(dim) for dim in value.shape])


def _write_onnx(model: nn.Module, example: torch.Tensor, target: Path, contract: Mapping[str, str]) -> None:
    _require("onnx", "onnxscript", "onnxruntime")
    program = torch.onnx.export(_export_program(model, example), dynamo=True, opset_version=ONNX_OPSET,
                                input_names=["samples" if isinstance(model, ModalityModel) else "images"],
                                output_names=["logits" if getattr(model, "num_classes", 1) else "features"],
                                verbose=False)
    _name_axes(program.model.graph)
    program.model.metadata_props.update(contract)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    program.save(str(target), external_data=weight_bytes > ONNX_INLINE_LIMIT)


def _write_torchscript(model: nn.Module, example: torch.Tensor, target: Path, contract: Mapping[str, str]) -> None:
    with warnings_silenced():
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(target))
    _sidecar(target, contract)


def _write_pt2(model: nn.Module, example: torch.Tensor, target: Path, contract: Mapping[str, str]) -> None:
    torch.export.save(_export_program(model, example), str(target))
    _sidecar(target, contract)


def _run_onnx(target: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def _run_torchscript(target: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    with warnings_silenced():
        return _no_grad(torch.jit.load(str(target)))


def _run_pt2(target: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    return _no_grad(torch.export.load(str(target)).module())


def _no_grad(module: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(x)
    return run


WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript, "pt2": _write_pt2}
RUNNERS = {"onnx": _run_onnx, "torchscript": _run_torchscript, "pt2": _run_pt2}


@contextlib.contextmanager
def warnings_silenced():
    """TorchScript warns that it is deprecated, and its tracer about Python conditions on shapes (our input
    checks, which do not change the graph)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: pip install 'modernconv[export]' "
                          f"(or pip install {' '.join(missing)})")


def _write_checked(path: Path, write_and_check: Callable[[Path], None]) -> None:
    """Write into a temporary folder beside ``path``, check, then move every file written into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        write_and_check(staging / path.name)
        for written in sorted(staging.iterdir(), key=lambda p: p.name == path.name):  # the main file last
            os.replace(written, path.parent / written.name)
        sync_folder(path.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
