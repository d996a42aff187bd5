"""Run configuration: one flat, typed record read from a YAML recipe plus `--key value` overrides."""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class TrainConfig:
    """Everything a training run needs. Field names are the YAML keys and the `--key` options.

    The defaults are the small CPU recipe for the built-in digits set (configs/digits_convnext.yaml); the
    papers' recipes in configs/ set every value they depend on (image size, augmentation, schedule)."""

    # model
    model: str = "convnext_atto"
    model_kwargs: dict = field(default_factory=dict)  # family options, e.g. {kernel_size: 5}
    drop_path_rate: float = 0.0
    layer_scale_init_value: float | None = None  # None = the model's default
    head_init_scale: float = 1.0
    in_chans: int = 3
    init: str | None = None  # checkpoint to fine-tune from (any format load_checkpoint reads)
    sync_bn: bool = True  # BatchNorm -> SyncBatchNorm when training on several processes
    # data
    data: str = "digits"  # digits | synthetic | PATH with train/ and val/
    img_size: int | None = 32  # None = the model's data config (the paper recipes use 224)
    synthetic_samples: int = 512
    synthetic_classes: int = 10
    skip_bad_images: bool = False
    workers: int = 0
    # augmentation and regularisation
    scale: tuple[float, float] = (0.6, 1.0)
    hflip: float = 0.0
    randaugment_magnitude: int | None = None
    randaugment_ops: int = 2
    color_jitter: float = 0.0
    random_erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    label_smoothing: float = 0.1
    crop_pct: float | None = None  # None = the model's data config
    # optimisation
    epochs: int = 20
    batch_size: int = 64  # per process
    accum_steps: int = 1
    lr: float = 2e-3
    lr_base_batch: int | None = None  # if set, lr is scaled by global batch / lr_base_batch
    min_lr: float = 1e-6
    warmup_epochs: float = 1.0  # onecycle: epochs to the peak
    sched: str = "cosine"  # cosine | onecycle
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    layer_decay: float | None = None
    clip_grad: float | None = None
    ema_decay: float | None = None  # e.g. 0.9999; the EMA weights are evaluated alongside
    # execution
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    channels_last: bool = False
    grad_checkpointing: bool = False
    compile: bool = False
    device: str | None = None  # None = cuda when available
    deterministic: bool = False
    # run
    seed: int = 0
    output: str | None = None  # None = a new folder under runs/
    resume: bool = False
    save_every_steps: int = 0  # 0 = at the end of each epoch only
    log_every_steps: int = 10
    progress: bool = True

    def validate(self) -> "TrainConfig":
        """Raise ConfigError with a clear message for impossible values."""
        positive = ("epochs", "batch_size", "accum_steps", "img_size", "synthetic_samples", "synthetic_classes",
                    "in_chans")
        for name in positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        non_negative = ("lr", "min_lr", "warmup_epochs", "weight_decay", "drop_path_rate", "color_jitter",
                        "mixup", "cutmix", "label_smoothing", "workers", "save_every_steps", "log_every_steps")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        probabilities = ("hflip", "random_erasing", "mix_prob", "mix_switch_prob", "label_smoothing",
                         "drop_path_rate")
        for name in probabilities:
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.sched not in ("cosine", "onecycle"):
            raise ConfigError(f"sched must be cosine or onecycle, got {self.sched!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ConfigError(f"clip_grad must be positive, got {self.clip_grad}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ConfigError(f"scale must be two numbers 0 < min <= max <= 1, got {list(self.scale)}")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved configuration as YAML (readable back with ``load_config``)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    """The field types of config class ``kind`` (TrainConfig or a subclass such as PretrainConfig)."""
    names = {f.name for f in dataclasses.fields(kind)}
    return {k: v for k, v in typing.get_type_hints(kind).items() if k in names}


def _coerce(name: str, value: Any, kind: type = TrainConfig) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise ConfigError."""
    hint = _hints(kind)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else []
    if args:  # X | None
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        hint = args[0]
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "yes", "1")
            return bool(value)
        if typing.get_origin(hint) is tuple:
            items = yaml.safe_load(value) if isinstance(value, str) else value
            kinds = typing.get_args(hint)
            if not isinstance(items, (list, tuple)) or len(items) != len(kinds):
                raise ValueError
            return tuple(k(v) for k, v in zip(kinds, items))
        if hint is dict:
            value = yaml.safe_load(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise ValueError
            return value
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if hint in (int, float) and isinstance(value, str):
            return hint(float(value)) if hint is int else float(value)
        return hint(value)
    except (TypeError, ValueError, yaml.YAMLError):
        raise ConfigError(f"{name}: cannot use {value!r} as {getattr(hint, '__name__', hint)}") from None


def _check_key(key: str, kind: type = TrainConfig) -> str:
    name = key.replace("-", "_")
    if name not in _hints(kind):
        close = difflib.get_close_matches(name, list(_hints(kind)), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown option {key!r}{hint}")
    return name


def parse_overrides(args: list[str], kind: type = TrainConfig) -> dict[str, str]:
    """``['--lr', '1e-3', '--epochs=5']`` -> {'lr': '1e-3', 'epochs': '5'}; a flag alone means true.
    Keys must be fields of config class ``kind``."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"expected --key value, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
            else:
                value = "true"
        out[_check_key(key, kind)] = value
        i += 1
    return out


def load_config(recipe: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                kind: type[TrainConfig] = TrainConfig) -> TrainConfig:
    """A validated config of class ``kind`` (default TrainConfig) from a YAML recipe (optional) with
    ``overrides`` applied on top."""
    values: dict[str, Any] = {}
    if recipe is not None:
        path = Path(recipe)
        if not path.is_file():
            raise ConfigError(f"recipe {str(path)!r} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"recipe {path} must be a mapping of option: value")
        values.update({_check_key(k, kind): v for k, v in loaded.items()})
    values.update({_check_key(k, kind): v for k, v in (overrides or {}).items()})
    return kind(**{k: _coerce(k, v, kind) for k, v in values.items()}).validate()
