"""Reading a config: a YAML recipe plus ``--key value`` overrides, each value coerced to its field's type, each
key checked (timm's names accepted or explained, another task's options refused)."""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..values import coerce as coerce_value
from .definitions import CONFIG_KINDS, MODALITY_DEFAULTS, TASK_DEFAULTS, RunConfig, TrainConfig, field_types


def coerce(name: str, value: Any, kind: type[RunConfig] = TrainConfig) -> Any:
    """Convert a YAML or command-line value to field ``name``'s type in config class ``kind`` (the one coercer,
    ``modernconv.values.coerce``), or raise ConfigError."""
    spec, hint = field_types(kind)[name]
    value = coerce_value(name, value, hint, meaning=spec.metadata["help"])
    choices = spec.metadata["choices"] or ()
    if isinstance(value, str) and value not in choices:  # a choice in any case (BF16); resume's yes/no/1/0 too
        word = value.lower()
        word = {"yes": "true", "1": "true", "no": "false", "0": "false"}.get(word, word) if "true" in choices else word
        value = word if word in choices else value
    return value


# timm's train.py names that mean one of our options exactly (accepted on the command line and in recipes)
TIMM_ALIASES = {"learning_rate": "lr", "drop_path": "drop_path_rate", "smoothing": "label_smoothing",
                "reprob": "random_erasing", "opt_eps": "eps", "opt_betas": "betas", "model_ema_decay": "ema_decay",
                "mixup_prob": "mix_prob", "mixup_switch_prob": "mix_switch_prob", "initial_checkpoint": "init",
                "aa": "auto_augment"}
# timm's names whose meaning needs another spelling here
TIMM_HINTS = {"amp": "--precision bf16 (or fp16)", "amp_dtype": "--precision bf16 or --precision fp16",
              "model_ema": "--ema-decay 0.9999",
              "num_classes": "nothing: the data sets the classes",
              "pretrained": "--init PATH_OR_NAME (a checkpoint file, or a released weights name such as "
                            "convnext_atto.d2_in1k: the network's starting weights)"}


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
    if key.startswith("--"):  # asked on the command line: answer with flags
        close = [f"--{c.replace('_', '-')}" for c in close]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown option {key if key.startswith('--') else repr(name)}{hint}")


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
    ``overrides`` applied on top; ``defaults`` replace the class's own defaults beneath both, and so do the
    recipe defaults of the task and the modality they name (``TASK_DEFAULTS``, ``MODALITY_DEFAULTS``)."""
    given = {check_key(k, kind): v for k, v in _read_recipe(Path(recipe)).items()} if recipe is not None else {}
    given.update({check_key(k, kind): v for k, v in (overrides or {}).items()})
    values: dict[str, Any] = {**(defaults or {}), **TASK_DEFAULTS.get(str(given.get("task")), {}),
                              **MODALITY_DEFAULTS.get(str(given.get("modality")), {}), **given}
    return kind(**{k: coerce(k, v, kind) for k, v in values.items()}).validate()
