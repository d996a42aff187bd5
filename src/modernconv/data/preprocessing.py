"""How a model expects its images: one small type for input size, normalisation and evaluation crop, carried by
models, written into checkpoints and turned into the evaluation transform."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from torchvision.transforms import v2

from ..errors import ConfigError
from .transforms import eval_transform, interpolation_mode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SIDE = 8192  # larger inputs are refused: an untrusted checkpoint cannot ask for a giant image
METADATA_KEY = "preprocessing"
LEGACY_METADATA_KEY = "eval"  # {"img_size", "mean", "std", "crop_pct", "interpolation"}, before METADATA_KEY


@dataclass(frozen=True)
class DataConfig:
    """Input size (C, H, W), per-channel mean and std, the evaluation crop fraction and the resize
    interpolation (timm's ``pretrained_cfg`` fields of the same names)."""

    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        c, h, w = self.input_size
        if not (0 < c and 0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
            raise ConfigError(f"input size {tuple(self.input_size)} must be C, H, W with sides 1..{MAX_SIDE}")
        if len(self.mean) != c or len(self.std) != c:
            raise ConfigError(f"mean {tuple(self.mean)} and std {tuple(self.std)} need one value per channel ({c})")
        if not all(math.isfinite(v) for v in self.mean) or not all(math.isfinite(v) and v > 0 for v in self.std):
            raise ConfigError(f"mean {tuple(self.mean)} must be finite and std {tuple(self.std)} positive")
        if not 0 < self.crop_pct <= 1:
            raise ConfigError(f"crop_pct {self.crop_pct} must be in (0, 1]")
        interpolation_mode(self.interpolation)

    @property
    def img_size(self) -> int:
        """The side of the (square) evaluation crop."""
        return self.input_size[-1]

    def replace(self, **changes: Any) -> "DataConfig":
        """A copy with ``changes``; ``img_size`` sets both sides, ``in_chans`` the channels (mean and std are
        then their averages, repeated: how a 3-channel recipe carries over to another channel count)."""
        size = changes.pop("img_size", None)
        if size is not None:
            changes["input_size"] = (self.input_size[0], int(size), int(size))
        chans = changes.pop("in_chans", None)
        if chans is not None and chans != self.input_size[0]:
            changes.setdefault("mean", (sum(self.mean) / len(self.mean),) * chans)
            changes.setdefault("std", (sum(self.std) / len(self.std),) * chans)
            changes["input_size"] = (chans, *changes.get("input_size", self.input_size)[1:])
        return dataclasses.replace(self, **changes)

    def eval_transform(self) -> v2.Compose:
        """Resize the short side to ``img_size / crop_pct``, centre-crop ``img_size``, normalise."""
        return eval_transform(self.img_size, self.mean, self.std, self.crop_pct, self.interpolation)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_metadata(self) -> dict[str, str]:
        """The checkpoint metadata entry that ``from_metadata`` reads back."""
        return {METADATA_KEY: json.dumps(self.to_dict())}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], fallback: "DataConfig") -> "DataConfig":
        """The preprocessing recorded in checkpoint ``metadata`` (also the older "eval" entry), else
        ``fallback``. Malformed or out-of-range values raise ConfigError."""
        try:
            if METADATA_KEY in metadata:
                fields = json.loads(metadata[METADATA_KEY])
                return cls(tuple(int(v) for v in fields["input_size"]), tuple(map(float, fields["mean"])),
                           tuple(map(float, fields["std"])), float(fields["crop_pct"]), str(fields["interpolation"]))
            if LEGACY_METADATA_KEY in metadata:
                old = json.loads(metadata[LEGACY_METADATA_KEY])
                return fallback.replace(img_size=int(old["img_size"]), mean=tuple(map(float, old["mean"])),
                                        std=tuple(map(float, old["std"])), crop_pct=float(old["crop_pct"]),
                                        interpolation=str(old["interpolation"]))
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise ConfigError(f"malformed preprocessing metadata ({type(e).__name__}: {e})") from None
        return fallback
