"""The command line's options and help, generated from the config definitions (one ``--key`` per field, timm's
names as aliases)."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from ..values import plain_type
from .definitions import RunConfig, field_types
from .loading import TIMM_ALIASES


def _type_name(hint: Any) -> str:
    plain, optional = plain_type(hint)
    if typing.get_origin(plain) is tuple:
        name = " ".join("..." if a is Ellipsis else a.__name__ for a in typing.get_args(plain))
    else:
        name = {dict: "YAML"}.get(plain, getattr(plain, "__name__", str(plain)))
    return name + (" or none" if optional else "")


def option_rows(kind: type[RunConfig], defaults: dict[str, Any] | None = None) -> list[tuple[str, str, str, str]]:
    """(option, type, default, help) of every field of ``kind``: the CLI's help and the README's table.
    ``defaults``: a command's own defaults over the fields' (the roadmap's modern recipe)."""
    rows = []
    for name, (f, hint) in field_types(kind).items():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        default = (defaults or {}).get(name, default)
        shown = "none" if default is None else " ".join(map(str, default)) if isinstance(default, tuple) else default
        text = f.metadata["help"] + (f" (one of: {', '.join(f.metadata['choices'])})" if f.metadata["choices"] else "")
        rows.append((f"--{name.replace('_', '-')}", _type_name(hint), str(shown), text))
    return rows


def add_config_options(parser: argparse.ArgumentParser, kind: type[RunConfig], defaults: dict[str, Any] | None = None,
                       hidden: tuple[str, ...] = ()) -> None:
    """One ``--key`` option per field of ``kind`` (help, type and default from its definition; ``defaults``: the
    command's own, shown instead). Given options land in the namespace as strings under the field's name; absent
    ones are absent (the recipe or the default applies). ``hidden``: fields the command refuses, parsed (so the
    command can say why) but left out of ``--help``."""
    group = parser.add_argument_group(f"{kind.TASK} options (also YAML keys of a recipe)")
    rows = option_rows(kind, defaults)
    for (flag, type_name, default, text), (name, (f, hint)) in zip(rows, field_types(kind).items()):
        plain, _ = plain_type(hint)
        extra: dict[str, Any] = {}
        if plain is bool or "true" in (f.metadata["choices"] or ()):  # --flag alone means true
            extra = dict(nargs="?", const="true")
        elif typing.get_origin(plain) is tuple:
            extra = dict(nargs="+")
        aliases = [f"--{alias.replace('_', '-')}" for alias, target in TIMM_ALIASES.items() if target == name]
        shown = argparse.SUPPRESS if name in hidden else f"{text} [default: {default}]"
        group.add_argument(flag, *aliases, dest=name, default=argparse.SUPPRESS,
                           metavar=type_name.split()[0].upper(), help=shown, **extra)


def overrides_from(namespace: argparse.Namespace, kind: type[RunConfig]) -> dict[str, Any]:
    """The config options given on the command line (see ``add_config_options``)."""
    return {k: v for k, v in vars(namespace).items() if k in field_types(kind)}
