"""Reading a config: a YAML recipe plus ``--key value`` overrides, each value coerced to its field's type, each
key checked (timm's names accepted or explained, another task's options refused)."""
from __future__ import annotations

import difflib
import math
import os
import typing
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .definitions import CONFIG_KINDS, RunConfig, TrainConfig, field_types, plain_type


def _number(kind: type, value: Any) -> int | float:
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise ValueError
    if kind is int:
        if float(number) != int(number):
            raise ValueError
        return int(number)
    return float(number)


def _items(value: Any) -> list:
    """A tuple option's items from a list, a YAML list string ("[0.9, 0.95]") or "0.9,0.95" / "0.9 0.95"."""
    if isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]
    if isinstance(value, str):
        parsed = yaml.safe_load(value)
        value = parsed if isinstance(parsed, list) else value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)):
        raise ValueError
    return list(value)


def coerce(name: str, value: Any, kind: type[RunConfig] = TrainConfig) -> Any:
    """Convert a YAML or command-line value to field ``name``'s type in config class ``kind``, or raise
    ConfigError."""
    hint, optional = plain_type(field_types(kind)[name][1])
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    try:
        if hint is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if typing.get_origin(hint) is tuple:
            items, kinds = _items(value), typing.get_args(hint)
            if len(items) != len(kinds):
                raise ValueError
            return tuple(_number(k, v) for k, v in zip(kinds, items))
        if hint is dict:
            value = yaml.safe_load(value) if isinstance(value, str) else value
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ValueError
            return value
        if hint in (int, float):
            return _number(hint, value)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError
        return str(value)
    except (TypeError, ValueError, OverflowError, yaml.YAMLError):
        raise ConfigError(f"{name}: cannot use {value!r} as {getattr(hint, '__name__', hint)}") from None


# timm's train.py names that mean one of our options exactly (accepted on the command line and in recipes)
TIMM_ALIASES = {"learning_rate": "lr", "drop_path": "drop_path_rate", "smoothing": "label_smoothing",
                "reprob": "random_erasing", "opt_eps": "eps", "opt_betas": "betas", "model_ema_decay": "ema_decay",
                "mixup_prob": "mix_prob", "mixup_switch_prob": "mix_switch_prob", "initial_checkpoint": "init",
                "aa": "auto_augment"}
# timm's names whose meaning needs another spelling here
TIMM_HINTS = {"amp": "--precision bf16 (or fp16)", "amp_dtype": "--precision bf16 or --precision fp16",
              "model_ema": "--ema-decay 0.9999",
              "num_classes": "nothing: the data sets the classes"}


def check_key(key: Any, kind: type[RunConfig] = TrainConfig) -> str:
    """The field name for option ``key`` ("--lr", "warmup-epochs", timm's "--smoothing", ...), or a ConfigError
    that suggests close names, says what a timm flag is called here, or which task the option belongs to."""
    if not isinstance(key, str):
        raise ConfigError(f"option names must be text, got {key!r}")
    name = key.lstrip("-").replace("-", "_")
    name = TIMM_ALIASES.get(name, name)
    if name in field_types(kind):
        return name
    if name in TIMM_HINTS:
        raise ConfigError(f"unknown option {name!r}; timm's --{name.replace('_', '-')} is {TIMM_HINTS[name]} here")
    if any(name in field_types(other) for other in CONFIG_KINDS):
        raise ConfigError(f"{name} does not apply to {kind.TASK}; remove it from the recipe")
    close = difflib.get_close_matches(name, list(field_types(kind)), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown option {name!r}{hint}")


def _read_recipe(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"recipe {path} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"recipe {path} must be a mapping of option: value")
    return loaded


def load_config(recipe: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                kind: type[RunConfig] = TrainConfig, defaults: dict[str, Any] | None = None) -> RunConfig:
    """A validated config of class ``kind`` (default TrainConfig) from a YAML recipe (optional) with
    ``overrides`` applied on top; ``defaults`` replace the class's own defaults beneath both."""
    values: dict[str, Any] = dict(defaults or {})
    if recipe is not None:
        values.update({check_key(k, kind): v for k, v in _read_recipe(Path(recipe)).items()})
    values.update({check_key(k, kind): v for k, v in (overrides or {}).items()})
    return kind(**{k: coerce(k, v, kind) for k, v in values.items()}).validate()
