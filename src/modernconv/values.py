"""The one coercer: a value from a YAML recipe, the command line or a checkpoint's metadata turned into the type
a field declares (int, float, bool, str, dict, a tuple of numbers of fixed or any length, each optionally None),
or one line saying what was expected. Run configs and modality options both use it, so an option keeps one type from the config to
the checkpoint and back."""
from __future__ import annotations

import math
import types
import typing
from typing import Any

import yaml

from .errors import ConfigError

WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "text", dict: "a mapping"}


def plain_type(hint: Any) -> tuple[Any, bool]:
    """(the type without ``| None``, whether None is allowed)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def coerce(what: str, value: Any, hint: Any, meaning: str | None = None) -> Any:
    """``value`` as the type ``hint`` names; ``what`` names the option in the error ("epochs", "video option
    frames"), ``meaning`` (its help line) says there what it is. Strings are parsed as the command line gives them
    ("none", "true", "0.9,0.95", "{a: 1}")."""
    kind, optional = plain_type(hint)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # a tuple option's one word on the command line ("--base-size none")
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    try:
        return _convert(kind, value)
    except (TypeError, ValueError, OverflowError, yaml.YAMLError):
        name = what.split()[-1]
        kind_name = "numbers" if typing.get_origin(kind) is tuple else getattr(kind, "__name__", kind)
        about = f": {meaning}" if meaning else ""
        raise ConfigError(f"{what}: cannot use {value!r} as {kind_name} ({name} must be {_describe(kind)}{about})"
                          ) from None


def _convert(kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ValueError
        return value
    if typing.get_origin(kind) is tuple:
        items, kinds = _items(value), typing.get_args(kind)
        if kinds[-1] is Ellipsis:  # tuple[int, ...]: one or more
            kinds = (kinds[0],) * len(items)
        if not items or len(items) != len(kinds):
            raise ValueError
        return tuple(_number(k, v) for k, v in zip(kinds, items))
    if kind is dict:
        value = yaml.safe_load(value) if isinstance(value, str) else value
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError
        return value
    if kind in (int, float):
        return _number(kind, value)
    if isinstance(value, bool):  # a YAML true/false in a text field (resume: true)
        return str(value).lower()
    if not isinstance(value, (str, int, float)):
        raise ValueError
    return str(value)


def _number(kind: type, value: Any) -> int | float:
    """A finite int or float; an int field takes 3 and 3.0 but not 2.5, and no field takes true/false."""
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


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        kinds = typing.get_args(kind)
        return "one or more numbers" if kinds[-1] is Ellipsis else f"{len(kinds)} numbers"
    return WORDS.get(kind, getattr(kind, "__name__", str(kind)))
