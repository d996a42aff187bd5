"""The model contract every modernconv network follows (timm-compatible method names)."""
from typing import Sequence

import torch
from torch import nn

from ..data.preprocessing import DataConfig
from ..errors import ConfigError, InputShapeError
from ..layers import ClassifierHead, init_head, init_trunc_normal


class ModernConvNet(nn.Module):
    """Shared contract: stem -> body (feature stages) -> head.

    Subclasses set ``stem``, ``in_chans``, ``input_stride`` and ``feature_info`` (timm-style dicts: num_chs,
    reduction, module), call ``set_head`` last, and implement ``feature_stages()`` and ``body`` (which runs those
    stages for ``forward_features``). With ``trunc_normal_init`` (the ConvNeXt papers' scheme) every conv and
    linear weight is trunc-normal(0.02), biases zero and the classifier scaled by ``head_init_scale``; without
    it the layers keep PyTorch's default initialisation (ConvMixer).
    """

    # (no class-level annotations: TorchScript would read them as the attributes' types; subclasses set stem
    # (an nn.Module), head (a ClassifierHead), stages_attr, feature_info and in_chans)
    stages_attr = ""  # the attribute holding the feature stages, an nn.Sequential
    input_stride = 1
    data_config = DataConfig()
    grad_checkpointing = False
    trunc_normal_init = False
    head_init_scale = 1.0
    __jit_unused_properties__ = ["pretrained_cfg", "default_cfg"]  # descriptions, not computation
    assigned_cfg: dict = {}  # keys of pretrained_cfg set from outside (timm's builder assigns the whole cfg)
    structure: dict = {}  # how this model departs from what its name and options build (prune_intermediate_layers)

    def __init__(self) -> None:
        super().__init__()
        self.feature_info = []
        self.model_name = type(self).__name__

    def set_head(self, num_features: int, num_classes: int, drop_rate: float, use_norm: bool = True,
                 global_pool: str = "avg") -> None:
        """Attach the pooled classifier head and initialise the whole network."""
        self.head = ClassifierHead(num_features, num_classes, use_norm=use_norm, drop_rate=drop_rate,
                                   pool_type=global_pool)
        if self.trunc_normal_init:
            init_trunc_normal(self)
        self.init_classifier(self.head.fc)

    # ----- structure -----
    def feature_stages(self) -> Sequence[nn.Module]:
        """The modules whose outputs are the entries of ``feature_info``, in order."""
        raise NotImplementedError

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Run every feature stage (with gradient checkpointing where enabled)."""
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        return self.head.in_features

    @property
    def head_hidden_size(self) -> int:
        """Width of the pre-logits features (timm's name; no hidden MLP in these heads)."""
        return self.head.in_features

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def pretrained_cfg(self) -> dict:
        """timm's description of the model's data and layout, every key timm's code reads, from this model's own
        values (so that ``timm.data.resolve_model_data_config(model)`` and timm's wrappers see them). Assignable,
        as timm's builder assigns it: the data keys become ``data_config``, the others are kept; what the model
        itself determines (sizes, classes) always says what it is."""
        cfg = self.data_config
        first_conv = next((name for name, m in self.named_modules() if isinstance(m, nn.Conv2d)), "")
        stride = self.feature_info[-1]["reduction"] if self.feature_info else 1
        described = {"architecture": self.model_name, "tag": "", "url": "", "hf_hub_id": "", "license": "",
                     "fixed_input_size": False, "crop_mode": "center", "first_conv": first_conv,
                     "classifier": "head.fc", **self.assigned_cfg}
        return {**described, "input_size": tuple(cfg.input_size), "mean": tuple(cfg.mean), "std": tuple(cfg.std),
                "pool_size": tuple(max(1, side // stride) for side in cfg.input_size[1:]),
                "crop_pct": cfg.crop_pct, "interpolation": cfg.interpolation, "num_classes": self.num_classes}

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg: dict) -> None:
        self.assigned_cfg = dict(cfg)
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()
                if k in ("input_size", "mean", "std", "crop_pct", "interpolation")}
        self.data_config = self.data_config.replace(**data)

    @property
    def default_cfg(self) -> dict:
        """timm's older name for ``pretrained_cfg`` (assignable too)."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict) -> None:
        self.pretrained_cfg = cfg

    # ----- forward -----
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a clear error when ``x`` cannot go through this model."""
        return checked_input(x, self.model_name, self.in_chans, self.input_stride)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled features of the last stage, N,C,H,W."""
        if not torch.jit.is_scripting():  # (a scripted model checks nothing: TorchScript has no such messages)
            x = self.check_input(x)
        return self.body(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool, normalise and classify features; ``pre_logits`` stops before the classifier."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Outputs of selected feature stages, with timm's arguments.

        ``indices``: None for all stages, an int n for the last n, or a sequence of stage indices (negative
        counts from the end). ``stop_early``: run no stage after the last selected one. ``output_fmt``: "NCHW"
        or "NHWC". ``norm`` is accepted for timm's signature: these models normalise only after pooling, so no
        norm applies to a feature map. Returns the list, or (final features, list).
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ConfigError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        stages = list(self.feature_stages())
        take = _take_indices(len(stages), indices)
        if stop_early or intermediates_only:
            stages = stages[: max(take) + 1]
        intermediates = []
        if not torch.jit.is_scripting():
            x = self.check_input(x)
        x = self.stem(x)
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take:
                intermediates.append(x.permute(0, 2, 3, 1) if output_fmt == "NHWC" else x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(self, indices: int | Sequence[int] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last of ``indices`` and, with ``prune_head`` or when stages were dropped, the
        whole head (norm, pooling, classifier: the model then returns the last kept stage's map, as timm's do);
        returns the kept indices. ``prune_norm`` alone removes the head's norm."""
        take = _take_indices(len(self.feature_info), indices)
        keep = max(take) + 1
        prune_end = keep < len(self.feature_info)
        setattr(self, self.stages_attr, getattr(self, self.stages_attr)[:keep])
        self.feature_info = self.feature_info[:keep]
        if prune_head or prune_end:  # as timm: the model ends at the last kept stage's map, unpooled, no norm
            self.head = ClassifierHead(self.feature_info[-1]["num_chs"], 0, use_norm=False, pool_type="")
        elif prune_norm:
            self.head.norm = nn.Identity()
        # recorded, so that a saved checkpoint rebuilds this structure (save_checkpoint, model_from_checkpoint)
        self.structure = {"pruned": {"indices": take, "prune_norm": prune_norm, "prune_head": prune_head}}
        return take

    # ----- classifier -----
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier (0 removes it: the model then returns pooled features); ``global_pool`` changes
        the pooling too ("avg", "max", "avgmax", or "" for none)."""
        ref = next(self.parameters())
        self.head.reset(num_classes, global_pool, device=ref.device, dtype=ref.dtype)
        self.init_classifier(self.head.fc)
        # recorded as built with them, so a saved checkpoint rebuilds this head (eval, predict, load_model)
        kwargs = getattr(self, "model_kwargs", None)
        if kwargs is not None:
            kwargs["num_classes"] = num_classes
            if global_pool is not None:
                kwargs["global_pool"] = global_pool

    def init_classifier(self, fc: nn.Module) -> None:
        """Initialise a new classifier layer (the paper's scheme with ``trunc_normal_init``)."""
        if self.trunc_normal_init:
            init_head(fc, self.head_init_scale)

    # ----- training helpers -----
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations block by block in backward to save memory."""
        for m in self.modules():
            if hasattr(m, "grad_checkpointing"):
                m.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, str | list]:
        """timm-style regexes that map parameter names to depth-ordered groups (for layer-wise lr decay)."""
        raise NotImplementedError


@torch.fx.wrap  # one node of a traced graph (torch.fx cannot branch on the input's shape), run on every call
def checked_input(x: torch.Tensor, name: str, in_chans: int, stride: int) -> torch.Tensor:
    """``x`` when it can go through model ``name`` (N, ``in_chans``, at least ``stride`` x ``stride``), else
    one clear error."""
    if x.ndim != 4:
        raise InputShapeError(f"{name} expects an N,C,H,W tensor, got shape {list(x.shape)}")
    _, c, h, w = x.shape
    if c != in_chans:
        raise InputShapeError(f"{name} expects {in_chans} input channels, got {c} (build it with in_chans={c} to "
                              "change the stem)")
    if h < stride or w < stride:
        raise InputShapeError(f"{name} needs inputs of at least {stride}x{stride} (its stride), got {h}x{w}")
    return x


def _take_indices(num_stages: int, indices: int | Sequence[int] | None) -> list[int]:
    if indices is None:
        return list(range(num_stages))
    if isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ConfigError(f"indices={indices}: can take the last 1..{num_stages} stages")
        return list(range(num_stages - indices, num_stages))
    take = []
    for i in indices:
        if not -num_stages <= i < num_stages:
            raise ConfigError(f"stage index {i} out of range for {num_stages} stages")
        take.append(i % num_stages)
    if not take:
        raise ConfigError("indices must select at least one stage")
    return take


class ModelWrapper(nn.Module):
    """A module around ``self.model`` (a backbone, an inference fast path) that describes its input and output
    as the wrapped model does."""

    model: ModernConvNet

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @property
    def in_chans(self) -> int:
        return self.model.in_chans

    @property
    def data_config(self) -> DataConfig:
        return self.model.data_config

    @property
    def model_name(self) -> str:
        return self.model.model_name

    @property
    def model_kwargs(self) -> dict:
        return self.model.model_kwargs

    @property
    def pretrained_cfg(self) -> dict:
        return self.model.pretrained_cfg

    @property
    def default_cfg(self) -> dict:
        return self.model.pretrained_cfg
