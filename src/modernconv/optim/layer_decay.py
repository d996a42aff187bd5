"""Depth-ordered parameter groups from a model's ``group_matcher`` (for layer-wise lr decay)."""
from __future__ import annotations

import re

from torch import nn


def _group_key(name: str, matcher: dict[str, str | list]) -> tuple[float, ...] | None:
    """(group ordinal, captured indices..., suffix...) of the first rule matching ``name``."""
    for ordinal, spec in enumerate(matcher.values()):
        for pattern, suffix in ([(spec, None)] if isinstance(spec, str) else spec):
            match = re.match(pattern, name)
            if match:
                return (ordinal, *(int(g) for g in match.groups() if g is not None), *(suffix or ()))
    return None


def layer_ids(model: nn.Module, coarse: bool = False) -> dict[str, int]:
    """Layer index of every parameter: 0 for the stem, rising with depth, the largest for the head
    (parameters no rule matches)."""
    matcher = model.group_matcher(coarse)
    keys = {name: _group_key(name, matcher) for name, _ in model.named_parameters()}
    ordered = sorted({k for k in keys.values() if k is not None})
    rank = {k: i for i, k in enumerate(ordered)}
    return {name: rank[k] if k is not None else len(ordered) for name, k in keys.items()}
