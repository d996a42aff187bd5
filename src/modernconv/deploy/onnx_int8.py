"""int8 ONNX files: onnxruntime's static quantization (QDQ format) of the float export, checked by prediction.

The float ONNX file is written as ``export_model`` writes it, then quantized by onnxruntime on calibration images:
per-channel int8 weights and uint8 activations (min/max ranges) for the convolutions and matrix products, with the
depthwise convolutions kept in float as on the PyTorch int8 path (``modernconv.deploy.quantize``: their int8 form
loses speed); LayerNorm, GELU and GRN stay float. The int8 file is then run in onnxruntime on held-out images and
kept only if its top-1 agrees with the float PyTorch model's on at least ``AGREEMENT["int8"]`` of them (an int8
file cannot match float logits to an fp32 tolerance; its predictions can match).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..reparam import reparameterize
from .export import ExportError, _require, _write_checked, _write_onnx, check_input_size, file_contract
from .fast import AGREEMENT
from .quantize import calibration_batches


@dataclass
class Int8Report:
    """What was written and how its predictions compare with the float model's."""

    path: Path
    images: int  # held-out images compared
    agreement: float  # share of them with the same top-1 as the float PyTorch model
    max_logit_error: float  # largest |logit difference| / largest |float logit|


def _calibration_reader(name: str, batches: list[torch.Tensor]):  # an onnxruntime CalibrationDataReader
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{name: b.numpy()} for b in batches])

        def get_next(self):  # noqa: ANN201 (onnxruntime's interface)
            return next(self.items, None)

    return Reader()


def depthwise_nodes(model_path: Path) -> list[str]:
    """The names of the depthwise Conv nodes of an ONNX file (group > 1, one input channel per group)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {init.name: init.dims for init in graph.initializer}
    found = []
    for node in graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv" and group > 1 and weights.get(node.input[1], [0, 0])[1] == 1:
            found.append(node.name)
    return found


def write_int8_onnx(model: nn.Module, target: Path, input_size: tuple[int, int, int], batches: list[torch.Tensor],
                    contract: Mapping[str, str]) -> None:
    """The int8 QDQ ONNX file of ``model`` (deploy form, eval mode) at ``target``, calibrated on ``batches``,
    unchecked (``export_int8_onnx`` checks it)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    exported, float_file = target.with_name(target.stem + ".export.onnx"), target.with_name(target.stem + ".float.onnx")
    # the metadata written here passes through onnxruntime's pre-processing and quantization into the int8 file
    _write_onnx(model, torch.randn(2, *input_size), exported,
                {**contract, "quantization": "int8 QDQ (onnxruntime static; depthwise convs float)"})
    quant_pre_process(str(exported), str(float_file))  # shapes inferred, graph optimised: what quantizes well
    exported.unlink()
    quantize_static(str(float_file), str(target), _calibration_reader("images", list(torch.cat(batches).split(32))),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                    nodes_to_exclude=depthwise_nodes(float_file), calibrate_method=CalibrationMethod.MinMax)
    float_file.unlink()


def export_int8_onnx(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int, int],
                     calibration: torch.Tensor, held_out: torch.Tensor,
                     contract: Mapping[str, str] | None = None) -> Int8Report:
    """Write the int8 QDQ ONNX file of ``model`` (an image classifier) at ``path``, calibrated on
    ``calibration`` images (N,C,H,W at ``input_size``) and checked on ``held_out`` ones (see the module
    docstring); an ``ExportError`` and nothing written when the check fails."""
    _require("onnx", "onnxscript", "onnxruntime")
    import onnxruntime

    check_input_size(model, input_size)
    batches = calibration_batches(calibration, model.in_chans)
    if tuple(batches[0].shape[1:]) != tuple(input_size) or tuple(held_out.shape[1:]) != tuple(input_size):
        raise ExportError(f"calibration and held-out images must be {'x'.join(map(str, input_size))}")
    model = reparameterize(model).eval()
    contract = dict(file_contract(model) if contract is None else contract)
    with torch.no_grad():
        expected = model(held_out)
    report = Int8Report(Path(path), len(held_out), 0.0, 0.0)

    def write_and_check(target: Path) -> None:
        write_int8_onnx(model, target, input_size, batches, contract)
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"images": held_out.numpy()})[0])
        report.agreement = (got.argmax(1) == expected.argmax(1)).float().mean().item()
        report.max_logit_error = ((got - expected).abs().max() / expected.abs().max()).item()
        if report.agreement < AGREEMENT["int8"]:
            raise ExportError(f"the int8 file agrees with the float model on {100 * report.agreement:.1f}% of "
                              f"{len(held_out)} held-out images (at least {100 * AGREEMENT['int8']:.0f}% needed); "
                              "nothing was written")

    _write_checked(Path(path), write_and_check)
    return report
