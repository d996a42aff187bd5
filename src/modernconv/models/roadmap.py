"""The ResNet -> ConvNeXt design roadmap (ConvNeXt paper, Section 2 and Table 10) as buildable models.

Every step is a point of one design space (``Design``) that changes one thing of the step before, and every
step's network is built from the same pieces: a stem, a residual block whose conv order, kernel, grouping,
widths, norms and activations are parameters, and the stage downsampling (inside the first block of a stage
as in ResNet, or as separate layers as in ConvNeXt).

Steps, each including all earlier changes (the kernel sizes 5, 9 and 11 are the paper's side branches; the path
continues from ``kernel_7``):

- ``resnet50``: torchvision's ResNet-50 (v1.5: stride on the 3x3 conv, 1x1 projection shortcuts).
- ``modern_recipe``: the same network; the training recipe is the change (``modernconv roadmap`` trains it
  with AdamW and the papers' augmentation and regularisation, the ``resnet50`` step with SGD and step decay).
- ``stage_ratio``: blocks per stage (3, 4, 6, 3) -> (3, 3, 9, 3).
- ``patchify_stem``: 7x7 s2 conv + max-pool -> a 4x4 s4 conv and its norm.
- ``depthwise``: the 3x3 conv becomes depthwise (ResNeXt with one channel per group).
- ``width_96``: the base width 64 -> 96 (Swin-T's).
- ``inverted_bottleneck``: 4C -> C -> C -> 4C becomes C -> 4C -> 4C -> C.
- ``move_dw_up``: the depthwise conv first: kxk dw at C -> 1x1 C -> 4C -> 1x1 4C -> C.
- ``kernel_5`` / ``kernel_7`` / ``kernel_9`` / ``kernel_11``: the depthwise kernel size.
- ``gelu``: ReLU -> GELU.
- ``fewer_activations``: one activation per block, between the two 1x1 convs (none after the residual add).
- ``fewer_norms``: one norm per block, after the depthwise conv.
- ``layer_norm``: BatchNorm -> LayerNorm (over channels) everywhere.
- ``separate_downsampling``: 2x2 s2 convs between stages, with a LayerNorm before each, and a LayerNorm after
  the pooling; the blocks keep their resolution. This is ConvNeXt-T (``convnext_tiny``'s function and
  parameter count; its checkpoints load).

Initialisation follows the norm: the BatchNorm steps are initialised as torchvision's ResNet (He-normal convs,
fan-out; PyTorch's default classifier), the LayerNorm steps as ConvNeXt (truncated normal, std 0.02). (Under SGD a
BatchNorm network's small weights act as a large learning rate: ConvNeXt's std 0.02 makes the ResNet diverge.)

Layer scale (initial value 1e-6) is part of the papers' training recipe, not of these architectures: the steps
have none by default except the last, which is ConvNeXt-T and has it; ``modernconv roadmap`` gives it to every
step it trains with the modern recipe. Parameter names follow ConvNeXt's layout (``stem``, ``stages.i.downsample``,
``stages.i.blocks.j``, ``head``); a block's layers are ``conv1..3`` and ``norm1..3`` in execution order, its
projection shortcut ``downsample``, as in torchvision's ResNet, whose checkpoints load into the first steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..layers import CheckpointSequential, DropPath, LayerNorm2d, drop_path_rates, layer_scale
from ..variants import ROADMAP
from .hierarchical import HierarchicalConvNet
from .registry import register_model

LAYER_SCALE = 1e-6  # ConvNeXt's initial value


@dataclass(frozen=True)
class Design:
    """One point of the roadmap's design space."""

    depths: tuple[int, ...]  # blocks per stage
    width: int = 64  # the stem's output and stage 1's base width; stage i uses width * 2**i
    stem: str = "resnet"  # "resnet": 7x7 s2 conv, norm, act, 3x3 s2 max-pool | "patchify": 4x4 s4 conv, norm
    inverted: bool = False  # False: residual width 4 * base, inner width base | True: base, inner 4 * base
    depthwise: bool = False  # the kxk conv has one channel per group
    dw_first: bool = False  # kxk conv first (then 1x1 up, 1x1 down), else between the two 1x1 convs
    kernel_size: int = 3
    act: str = "relu"  # "relu" | "gelu"
    one_act: bool = False  # one activation (after the middle conv) instead of after every norm but the last
    one_norm: bool = False  # one norm (after the first conv) instead of after every conv
    norm: str = "bn"  # "bn" (BatchNorm) | "ln" (LayerNorm over channels)
    separate_downsampling: bool = False  # LayerNorm + 2x2 s2 conv between stages, LayerNorm in the head

    def stage_dims(self) -> list[int]:
        """The residual stream's width in each stage."""
        return [self.width * 2 ** i * (1 if self.inverted else 4) for i in range(len(self.depths))]

    def inner_dim(self, dim: int) -> int:
        """The width inside a block whose residual width is ``dim``."""
        return dim * 4 if self.inverted else dim // 4


def _steps(resnet_depths: tuple[int, ...], depths: tuple[int, ...], width: int) -> dict[str, Design]:
    """The roadmap's designs in order, for a track that starts at a ResNet with ``resnet_depths`` and ends at
    the ConvNeXt with ``depths`` and base width ``width``."""
    steps = {"resnet50": Design(resnet_depths)}
    steps["modern_recipe"] = steps["resnet50"]
    changes = (("stage_ratio", "modern_recipe", dict(depths=depths)),
               ("patchify_stem", "stage_ratio", dict(stem="patchify")),
               ("depthwise", "patchify_stem", dict(depthwise=True)),
               (f"width_{width}", "depthwise", dict(width=width)),
               ("inverted_bottleneck", f"width_{width}", dict(inverted=True)),
               ("move_dw_up", "inverted_bottleneck", dict(dw_first=True)),
               ("kernel_5", "move_dw_up", dict(kernel_size=5)),
               ("kernel_7", "move_dw_up", dict(kernel_size=7)),
               ("kernel_9", "move_dw_up", dict(kernel_size=9)),
               ("kernel_11", "move_dw_up", dict(kernel_size=11)),
               ("gelu", "kernel_7", dict(act="gelu")),
               ("fewer_activations", "gelu", dict(one_act=True)),
               ("fewer_norms", "fewer_activations", dict(one_norm=True)),
               ("layer_norm", "fewer_norms", dict(norm="ln")),
               ("separate_downsampling", "layer_norm", dict(separate_downsampling=True)))
    for name, base, change in changes:
        steps[name] = dataclasses.replace(steps[base], **change)
    return steps


def roadmap_designs(track: str = "resnet50_to_convnext_t") -> dict[str, Design]:
    """Step name -> design, in the roadmap's order, for a registered track."""
    if track not in ROADMAP:
        raise ConfigError(f"unknown roadmap track {track!r}; the tracks are {', '.join(ROADMAP)}")
    arch = ROADMAP[track]
    return _steps(arch["resnet_depths"], arch["depths"], arch["width"])


def roadmap_steps(track: str = "resnet50_to_convnext_t") -> list[str]:
    """The roadmap's step names in order (the ResNet-200 -> ConvNeXt-B track has ``width_128``)."""
    return list(roadmap_designs(track))


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "bn" else LayerNorm2d(channels)


def _act(kind: str) -> nn.Module:
    return nn.ReLU(inplace=True) if kind == "relu" else nn.GELU()


def _projection(in_dim: int, dim: int, stride: int, norm: str) -> nn.Sequential:
    """ResNet's shortcut when the width or resolution changes: 1x1 conv (stride ``stride``) and a norm."""
    return nn.Sequential(nn.Conv2d(in_dim, dim, 1, stride=stride, bias=norm != "bn"), _norm(norm, dim))


class RoadmapBlock(nn.Module):
    """A residual block of three convs (two 1x1, one kxk) whose order, widths, grouping, norms and
    activations follow a ``Design``; with ``stride`` 2 or a change of width it has a projection shortcut."""

    def __init__(self, in_dim: int, dim: int, design: Design, stride: int = 1, drop_path: float = 0.0,
                 layer_scale_init_value: float | None = None) -> None:
        super().__init__()
        inner, k = design.inner_dim(dim), design.kernel_size
        spatial = 0 if design.dw_first else 1  # which of the three convs is the kxk one
        widths = (in_dim, in_dim, inner, dim) if design.dw_first else (in_dim, inner, inner, dim)
        for i in range(3):
            c_in, c_out = widths[i], widths[i + 1]
            has_norm = i == 0 or not design.one_norm
            bias = not (has_norm and design.norm == "bn")  # a bias before BatchNorm would be cancelled by it
            if i == spatial:
                conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=bias,
                                 groups=c_in if design.depthwise else 1)
            else:
                conv = nn.Conv2d(c_in, c_out, 1, bias=bias)
            self.add_module(f"conv{i + 1}", conv)
            self.add_module(f"norm{i + 1}", _norm(design.norm, c_out) if has_norm else nn.Identity())
        # an activation after the first two convs (and their norms) and after the sum, or after the middle conv alone;
        # each its own module (one module called at several places is one partition to torch.export's consumers,
        # which the int8 quantizer refuses)
        self.act1 = nn.Identity() if design.one_act else _act(design.act)
        self.act2 = _act(design.act)
        self.act_out = nn.Identity() if design.one_act else _act(design.act)
        self.gamma = layer_scale(dim, layer_scale_init_value)
        self.drop_path = DropPath(drop_path)
        self.downsample = (_projection(in_dim, dim, stride, design.norm) if stride != 1 or in_dim != dim
                           else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.norm1(self.conv1(x)))
        y = self.act2(self.norm2(self.conv2(y)))
        y = self.norm3(self.conv3(y))
        if self.gamma is not None:
            y = y * self.gamma.view(-1, 1, 1)
        return self.act_out(self.drop_path(y) + self.downsample(x))


class RoadmapStage(nn.Module):
    """Optional separate downsampling (LayerNorm -> 2x2 s2 conv), then the blocks."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = CheckpointSequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class RoadmapNet(HierarchicalConvNet):
    """One step of a roadmap track (see the module docstring); ``step`` names it."""

    def __init__(self, step: str = "separate_downsampling", resnet_depths: Sequence[int] = (3, 4, 6, 3),
                 depths: Sequence[int] = (3, 3, 9, 3), width: int = 96, in_chans: int = 3,
                 num_classes: int = 1000, drop_path_rate: float = 0.0, drop_rate: float = 0.0,
                 layer_scale_init_value: float | None = None, head_init_scale: float = 1.0) -> None:
        super().__init__()
        designs = _steps(tuple(resnet_depths), tuple(depths), width)
        if step not in designs:
            raise ConfigError(f"unknown roadmap step {step!r}; the steps are {', '.join(designs)}")
        design = self.design = designs[step]
        self.step = step
        self.in_chans = in_chans
        self.head_init_scale = head_init_scale
        self.input_stride = 32
        if layer_scale_init_value is None and step == "separate_downsampling":
            layer_scale_init_value = LAYER_SCALE  # ConvNeXt-T's
        self.stem = self._stem(design, in_chans)
        dims = design.stage_dims()
        rates = drop_path_rates(drop_path_rate, design.depths)
        stages, prev = [], design.width
        for i, (dim, depth) in enumerate(zip(dims, design.depths)):
            separate = design.separate_downsampling and i > 0
            downsample = (nn.Sequential(LayerNorm2d(prev), nn.Conv2d(prev, dim, 2, stride=2)) if separate
                          else nn.Identity())
            in_dim = dim if separate else prev
            stride = 2 if i > 0 and not design.separate_downsampling else 1
            blocks = [RoadmapBlock(in_dim if j == 0 else dim, dim, design, stride if j == 0 else 1, rates[i][j],
                                   layer_scale_init_value) for j in range(depth)]
            stages.append(RoadmapStage(downsample, blocks))
            prev = dim
        self.trunc_normal_init = design.norm == "ln"
        self.init_body(stages, dims, num_classes, drop_rate, use_norm=design.separate_downsampling)
        if design.norm == "bn":
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stem(design: Design, in_chans: int) -> nn.Sequential:
        width, bias = design.width, design.norm != "bn"
        if design.stem == "patchify":
            return nn.Sequential(nn.Conv2d(in_chans, width, 4, stride=4, bias=bias), _norm(design.norm, width))
        return nn.Sequential(nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=bias),
                             _norm(design.norm, width), _act(design.act), nn.MaxPool2d(3, stride=2, padding=1))


for _name, _arch in ROADMAP.items():
    register_model(_name, "roadmap", RoadmapNet, **_arch)
