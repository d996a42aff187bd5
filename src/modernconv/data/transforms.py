"""Train and evaluation pipelines (torchvision.transforms.v2): PIL image or uint8 tensor -> normalised float.

Geometric and colour steps run before ``ToImage`` so PIL inputs (what the data sets yield) use PIL's fast
kernels; uint8 tensor inputs go through the same steps with torchvision's tensor kernels.

The channel count of the output is ``len(mean)``: inputs with another count (a grayscale digit for an RGB
model, RGB for a 4-channel stem) are adapted by ``MatchChannels`` after the colour augmentations."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2

from ..errors import ConfigError

RANDAUGMENT_LEVELS = 10  # magnitudes 0..10 as in timm's "rand-m9" and the papers' recipes
TIMM_SAFE_MAGNITUDE_MAX = 9.99  # timm's RandAugment clamps sampled magnitudes here instead of at 10 (see below)


class MatchChannels(torch.nn.Module):
    """Repeat or truncate channels cyclically to ``num_channels`` (output channel i = input channel i mod C)."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        channels = image.shape[-3]
        if channels == self.num_channels:
            return image
        index = torch.arange(self.num_channels, device=image.device) % channels
        return image.index_select(-3, index)


def interpolation_mode(name: str) -> InterpolationMode:
    """The torchvision interpolation mode called ``name`` ("bilinear", "bicubic", "nearest", ...)."""
    try:
        return InterpolationMode(name)
    except ValueError:
        choices = ", ".join(m.value for m in InterpolationMode)
        raise ConfigError(f"unknown interpolation {name!r}; choose one of {choices}") from None


def _to_normalised(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform | torch.nn.Module]:
    """PIL or uint8 image -> float in [0, 1] -> ``len(mean)`` channels -> (x - mean) / std."""
    if len(mean) != len(std) or not mean:
        raise ConfigError(f"mean {tuple(mean)} and std {tuple(std)} must have one value per input channel")
    if min(std) <= 0:
        raise ConfigError(f"std {tuple(std)} must be positive")
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), MatchChannels(len(mean)),
            v2.Normalize(list(mean), list(std))]


def timm_rand_augment(policy: str, img_size: int, mean: Sequence[float]) -> Callable:
    """timm's RandAugment for ``policy`` on PIL images, with timm's own hyper-parameters (translation 45% of the
    image side, fill with the mean colour)."""
    try:
        from timm.data.auto_augment import rand_augment_transform
    except ImportError:
        raise ConfigError(f"auto_augment {policy!r} needs timm: pip install timm (or use randaugment_magnitude)"
                          ) from None
    fill = tuple(min(255, round(255 * m)) for m in mean[:3])  # images are RGB here, or "L" for one channel
    fill = fill[0] if len(fill) == 1 else fill
    hparams = {"translate_const": int(img_size * 0.45), "img_mean": fill}
    if "-mmax" not in policy:  # at timm's top level (10) posterize keeps 0 bits, which Pillow >= 9 refuses
        hparams["magnitude_max"] = TIMM_SAFE_MAGNITUDE_MAX
    try:
        return rand_augment_transform(policy, hparams)
    except (ValueError, KeyError, AssertionError) as e:
        raise ConfigError(f"auto_augment {policy!r} is not a RandAugment policy timm reads ({e})") from None


def train_transform(img_size: int, mean: Sequence[float], std: Sequence[float],
                    scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                    hflip: float = 0.5, randaugment_magnitude: int | None = 9, randaugment_ops: int = 2,
                    color_jitter: float = 0.0, random_erasing: float = 0.25,
                    interpolation: str = "bicubic", auto_augment: str | None = None) -> v2.Compose:
    """The papers' training augmentation: random resized crop, flip, RandAugment (magnitude on timm's 0..10
    scale; None disables) or timm's own RandAugment from a policy string (``auto_augment``, e.g.
    "rand-m9-mstd0.5-inc1", as the papers ran it; needs timm), colour jitter (0 disables), normalisation, then
    random erasing with noise fill."""
    mode = interpolation_mode(interpolation)
    if randaugment_magnitude is not None and not 0 <= randaugment_magnitude <= RANDAUGMENT_LEVELS:
        raise ConfigError(f"randaugment magnitude {randaugment_magnitude} must be in 0..{RANDAUGMENT_LEVELS}")
    for name, p in (("hflip", hflip), ("random_erasing", random_erasing)):
        if not 0 <= p <= 1:
            raise ConfigError(f"{name} probability {p} must be in [0, 1]")
    steps: list[v2.Transform | torch.nn.Module] = [
        v2.RandomResizedCrop(img_size, scale=scale, ratio=ratio, interpolation=mode, antialias=True)]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if randaugment_magnitude is not None:
        steps.append(v2.RandAugment(num_ops=randaugment_ops, magnitude=randaugment_magnitude,
                                    num_magnitude_bins=RANDAUGMENT_LEVELS + 1,
                                    interpolation=InterpolationMode.BILINEAR))  # tensors allow no bicubic here
    if auto_augment is not None:
        steps.append(timm_rand_augment(auto_augment, img_size, mean))
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    steps += _to_normalised(mean, std)
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value="random"))
    return v2.Compose(steps)


def eval_transform(img_size: int, mean: Sequence[float], std: Sequence[float], crop_pct: float = 0.875,
                   interpolation: str = "bicubic") -> v2.Compose:
    """The papers' evaluation: resize the short side to ``int(img_size / crop_pct)``, centre-crop ``img_size``."""
    if not 0 < crop_pct <= 1:
        raise ConfigError(f"crop_pct {crop_pct} must be in (0, 1]")
    resize = v2.Resize(int(img_size / crop_pct), interpolation=interpolation_mode(interpolation), antialias=True)
    return v2.Compose([resize, v2.CenterCrop(img_size), *_to_normalised(mean, std)])
