"""Video as an image: T frames tiled row by row into one g x g grid image, g = ceil(sqrt(T)) (UniRepLKNet on
Kinetics: 16 frames of 224 -> a 4x4 grid of 896 x 896, C'=3); unused cells stay zero.

Frames are sampled uniformly over the clip, or by TSN's segments (a random frame of each of T equal segments
while training, each segment's middle frame otherwise). Video files are decoded with PyAV; a folder of image
files is one clip too. Frames are resized (shorter side) and centre-cropped to ``frame_size`` in [0, 1]; the
adapter normalises them with the model's mean and std and tiles them."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.v2 import functional as TF

from ..data.images import read_image
from ..data.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ConfigError, DataError, UnreadableFileError
from .generated import GeneratedSet
from ..data.preprocessing import MAX_SIDE
from .spec import ModalitySpec, at_most, positive, require

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
SAMPLINGS = ("uniform", "segment")


@dataclass(frozen=True)
class VideoOptions:
    """How many frames, their side, and how they are picked from a clip."""

    frames: int = 16
    frame_size: int = 224
    sampling: str = "segment"

    def __post_init__(self) -> None:
        positive("video frames and frame_size", self.frames, self.frame_size)
        at_most("video frames", self.frames, 1024)
        at_most("video frame_size x grid side", self.frame_size * math.ceil(math.sqrt(self.frames)), MAX_SIDE)
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"video sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")

    @property
    def grid(self) -> int:
        return math.ceil(math.sqrt(self.frames))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One clip: (frames, 3, frame_size, frame_size)."""
        return (self.frames, 3, self.frame_size, self.frame_size)


class TileFrames(nn.Module):
    """(B, T, 3, H, W) frames in [0, 1] -> (B, 3, gH, gW): normalised, frame t in grid cell (t // g, t % g)."""

    def __init__(self, opts: VideoOptions, mean: tuple[float, ...] = IMAGENET_MEAN,
                 std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.grid = opts.grid
        self.register_buffer("mean", torch.tensor(mean).view(1, 1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 1, -1, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = frames.shape
        g = self.grid
        if t > g * g:
            raise ConfigError(f"{t} frames do not fit a {g}x{g} grid")
        x = (frames - self.mean) / self.std
        x = torch.cat([x, x.new_zeros(b, g * g - t, c, h, w)], 1)
        return x.view(b, g, g, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * h, g * w)


def frame_indices(total: int, count: int, sampling: str, train: bool) -> list[int]:
    """Which of ``total`` frames to keep (``count`` of them, repeating frames of a short clip)."""
    if total < 1:
        raise DataError("the clip has no frames")
    edges = np.linspace(0, total, count + 1)
    if sampling == "segment" and train:
        picks = edges[:-1] + np.random.rand(count) * (edges[1:] - edges[:-1])
    elif sampling == "segment":
        picks = (edges[:-1] + edges[1:]) / 2
    else:
        picks = np.linspace(0, total - 1, count) + 0.5
    return [min(int(p), total - 1) for p in picks]


def fit_frame(frame: torch.Tensor, size: int) -> torch.Tensor:
    """A uint8 (3, H, W) frame resized (shorter side) and centre-cropped to size x size, as floats in [0, 1]."""
    frame = TF.center_crop(TF.resize(frame, size, antialias=True), [size, size])
    return frame.float() / 255


def _decode(path: str, opts: VideoOptions, train: bool) -> torch.Tensor:
    av = require("av", "decoding video files")
    with av.open(path) as container:
        if not container.streams.video:
            raise DataError("it has no video stream")
        stream = container.streams.video[0]
        total = stream.frames or sum(1 for _ in container.decode(stream))
        if not total:
            raise DataError("its video stream holds no frames")
        keep = frame_indices(total, opts.frames, opts.sampling, train)
        container.seek(0)
        wanted, frames = set(keep), {}
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                frames[i] = fit_frame(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1),
                                      opts.frame_size)
            if i >= max(keep):
                break
    if len(frames) < len(wanted):  # the header over-counted its frames
        raise DataError(f"video {path} has fewer frames than it declares")
    return torch.stack([frames[i] for i in keep])


def read_video(path: str, opts: VideoOptions, train: bool = False) -> torch.Tensor:
    """A video file or a folder of frame images as (frames, 3, frame_size, frame_size) in [0, 1]."""
    if Path(path).is_dir():
        files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        keep = frame_indices(len(files), opts.frames, opts.sampling, train) if files else []
        if not keep:
            raise DataError(f"frame folder {path} holds no images")
        return torch.stack([fit_frame(TF.pil_to_tensor(read_image(str(files[i]), 3)), opts.frame_size)
                            for i in keep])
    try:
        return _decode(path, opts, train)
    except DataError as e:
        raise UnreadableFileError(f"cannot read video {path} ({e})") from None
    except Exception as e:  # PyAV's errors (FFmpegError and its kin) share no base we can name without av
        if type(e).__module__.startswith("av"):
            raise UnreadableFileError(f"cannot read video {path} ({e})") from None
        raise


# ----- the built-in set: digits moving in eight directions -----
DIRECTIONS = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")
MOVING_SAMPLES = 60  # per class


class MovingDigits(GeneratedSet):
    """The built-in "moving-digits" set: a bundled digit slides across the frame; the class is its direction
    (so a single frame cannot tell it)."""

    classes = len(DIRECTIONS)

    def __init__(self, opts: VideoOptions, indices: np.ndarray, train: bool = False) -> None:
        from ..data.generated import digits_images

        super().__init__(opts, indices, train)
        self.digits = digits_images(1)[0]

    def sample(self, index: int, label: int) -> torch.Tensor:
        size = self.opts.frame_size
        g = torch.Generator().manual_seed(index)
        side = max(2, size // 2)
        digit = TF.resize(self.digits[index % len(self.digits)], [side, side], antialias=True).float() / 255
        colour = 0.4 + 0.6 * torch.rand(3, 1, 1, generator=g)
        angle = 2 * math.pi * label / len(DIRECTIONS)
        travel = (size - side) * torch.tensor([math.cos(angle), -math.sin(angle)])  # (x, y), y down
        total = 3 * self.opts.frames
        steps = frame_indices(total, self.opts.frames, self.opts.sampling, self.train)
        video = 0.05 * torch.rand(self.opts.frames, 3, size, size, generator=g)
        for t, step in enumerate(steps):
            x, y = ((size - side) / 2 + (step / (total - 1) - 0.5) * travel).round().int().tolist()
            cell = video[t, :, y:y + side, x:x + side]
            video[t, :, y:y + side, x:x + side] = torch.maximum(cell, colour * digit)
        return video


def moving_digits(opts: VideoOptions) -> tuple[MovingDigits, MovingDigits, list[str]]:
    """Train (80%) and val (20%) of the moving digits."""
    return (*MovingDigits.stratified(opts, MOVING_SAMPLES), list(DIRECTIONS))


VIDEO = ModalitySpec("video", 3, VideoOptions, TileFrames, read_video, VIDEO_EXTENSIONS,
                     {"moving-digits": moving_digits}, sample_is_folder=True, samples="videos")
