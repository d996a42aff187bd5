"""Post-training static int8 quantization of a deploy-form model for x86 CPUs.

The model is captured with ``torch.export`` and quantized with PT2E and torchao's x86 Inductor quantizer:
per-channel symmetric int8 weights, per-tensor uint8 activations whose ranges a histogram observer sets on
calibration images (clipping rare outliers where that lowers the error), then lowered by Inductor to oneDNN's
int8 convolutions and matmuls (VNNI or AMX where the CPU has them). Each conv and linear layer has a *role* read
from the graph: what feeds it ("after LayerNorm", "after GRN", ...), or "stem", "depthwise", "head". The layers
whose role is in ``keep_float`` stay in float; the default, ``KEEP_FLOAT``, was chosen from the per-role
sensitivity measured on each family (benchmarks/int8_sensitivity.py) and the speed of each choice
(benchmarks/bench_int8.py; both in RESULTS.md "int8").
"""
from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..layers.depthwise import DepthwiseConv2d

# torchao registers the x86 int8 lowering passes when its quantizer is imported; it also logs deprecations of
# torch internals it uses, which are not the user's concern
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

ROLES = ("stem", "depthwise", "after LayerNorm", "after BatchNorm", "after GRN", "after activation",
         "after SE", "other", "head")
KEEP_FLOAT = ("depthwise",)  # RESULTS.md "int8": no role costs accuracy; int8 depthwise convs cost speed
MIN_CALIBRATION = 8  # fewer images give activation ranges that miss the data's spread
_PASS_THROUGH = {"permute", "view", "reshape", "contiguous", "clone", "dropout", "flatten", "_unsafe_view"}
_PRODUCER_ROLES = (("LayerNorm", "after LayerNorm"), ("BatchNorm", "after BatchNorm"),
                   ("GlobalResponseNorm", "after GRN"), ("SqueezeExcite", "after SE"),
                   ("GELU", "after activation"), ("ReLU", "after activation"))


def calibration_batches(calibration: Any, in_chans: int) -> list[torch.Tensor]:
    """The calibration images as float N,C,H,W batches: from one tensor, a sequence of tensors, or a loader of
    (images, labels) batches. A set that cannot calibrate (empty, too small, wrong shape, not finite, all one
    value) is a ConfigError naming the problem."""
    if isinstance(calibration, torch.Tensor):
        calibration = [calibration]
    batches = []
    for item in calibration:
        images = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise ConfigError("calibration data must be float image batches N,C,H,W (or (images, labels) batches), "
                              f"got {type(images).__name__}{tuple(images.shape) if hasattr(images, 'shape') else ''}")
        if images.shape[1] != in_chans:
            raise ConfigError(f"calibration images have {images.shape[1]} channels; the model takes {in_chans}")
        if not torch.isfinite(images).all():
            raise ConfigError("calibration images hold NaN or infinite values")
        batches.append(images.float())
    count = sum(len(b) for b in batches)
    if count < MIN_CALIBRATION:
        raise ConfigError(f"int8 needs at least {MIN_CALIBRATION} calibration images to measure activation ranges; "
                          f"got {count}")
    if len({b.shape[1:] for b in batches}) > 1:
        raise ConfigError("calibration images must share one size, got " +
                          ", ".join(sorted({'x'.join(map(str, b.shape[2:])) for b in batches})))
    if all(b.min() == b.max() for b in batches) and len({b.min().item() for b in batches}) == 1:
        raise ConfigError("calibration images are all one value; give real images of the data to be served")
    return batches


def _op_name(node: torch.fx.Node) -> str:
    return getattr(node.target, "__name__", str(node.target)).split(".")[0]


def _innermost_module(node: torch.fx.Node) -> tuple[str, str]:
    """The module path and class name that produced ``node`` in the exported graph ("" for the input)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    return path, cls if isinstance(cls, str) else cls.__name__


def _weight(gm: torch.fx.GraphModule, node: torch.fx.Node) -> torch.Tensor:
    weight = node.args[1]
    return gm.get_parameter(weight.target) if weight.op == "get_attr" else weight.meta["val"]


def layer_roles(gm: torch.fx.GraphModule) -> dict[str, str]:
    """Module path -> role of each conv and linear layer of an exported model (see the module docstring)."""
    roles = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or _op_name(node) not in ("conv2d", "linear"):
            continue
        path, _ = _innermost_module(node)
        source = node.args[0]
        while source.op == "call_function" and _op_name(source) in _PASS_THROUGH:
            source = source.args[0]
        if path.split(".")[0] == "head":
            role = "head"
        elif _op_name(node) == "conv2d" and _weight(gm, node).shape[1] == 1 and _weight(gm, node).shape[0] > 1:
            role = "depthwise"
        elif source.op == "placeholder":
            role = "stem"
        else:
            cls = _innermost_module(source)[1]
            role = next((r for key, r in _PRODUCER_ROLES if key in cls), "other")
        roles[path] = role
    return roles


def _plain_depthwise(model: nn.Module) -> nn.Module:
    """``model`` with each DepthwiseConv2d as a plain nn.Conv2d (same weights), which the quantizer recognises."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is DepthwiseConv2d:
                plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, padding=child.padding,
                                  dilation=child.dilation, groups=child.groups, bias=child.bias is not None)
                plain.load_state_dict(child.state_dict())
                setattr(module, child_name, plain)
    return model


def _explicit_padding(model: nn.Module) -> nn.Module:
    """``model`` with each conv padded "same" (ConvMixer's) given the equal number per side instead (odd kernels,
    stride 1: the same output), the conv form the quantizer takes."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.padding == "same" and all(k % 2 for k in module.kernel_size):
            module.padding = tuple(d * (k - 1) // 2 for d, k in zip(module.dilation, module.kernel_size))
    return model


def export_graph(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """``model`` (eval mode, deploy form) captured by torch.export for any batch size."""
    batch = torch.export.Dim.AUTO
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},)).module()


def quantize_int8(model: nn.Module, calibration: Any, keep_float: Sequence[str] = KEEP_FLOAT,
                  ) -> torch.fx.GraphModule:
    """The int8 graph of ``model`` (a deploy-form fp32 model in eval mode; left unchanged), calibrated on
    ``calibration`` (see ``calibration_batches``), with the layers whose role is in ``keep_float`` in float.
    The graph takes any batch size at the calibration images' size. Run it compiled (``torch.compile`` with
    freezing) for int8 kernels; eagerly it computes the reference quantize-dequantize arithmetic in fp32."""
    unknown = set(keep_float) - set(ROLES)
    if unknown:
        raise ConfigError(f"keep_float takes roles among {', '.join(ROLES)}; got {', '.join(sorted(unknown))}")
    batches = calibration_batches(calibration, model.in_chans)
    model = _explicit_padding(copy.deepcopy(model).eval())
    if "depthwise" not in keep_float:
        model = _plain_depthwise(model)
    device = next(model.parameters()).device
    with torch.no_grad():
        graph = export_graph(model, batches[0][:2].to(device))
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    for path, role in layer_roles(graph).items():
        if role in keep_float:
            quantizer.set_module_name_qconfig(path, None)
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for images in batches:
            prepared(images.to(device))
    quantized = convert_pt2e(prepared)
    move_exported_model_to_eval(quantized)
    quantized.meta["input_size"] = tuple(batches[0].shape[1:])  # the graph's one image size
    return quantized

