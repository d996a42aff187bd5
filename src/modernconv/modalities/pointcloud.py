"""Point clouds as an image: N x 3 points -> three depth maps seen along the x, y and z axes, one per channel
(C'=3; UniRepLKNet on ModelNet-40 projects to multi-view 224 x 224 maps). Random rotation about the up (z)
axis, anisotropic scaling and jitter are the training augmentation, applied batched in the adapter.

Projection along axis k: the image plane holds the two other axes (a, b) = ((k+1) % 3, (k+2) % 3), column from
a and row from b, both mapped from [-1, 1] to pixels 0..S-1; a pixel holds the largest (c_k + 1) / 2 of its
points (the surface nearest a viewer on the +k side), 0 where no point falls. ``splat`` > 1 widens each point
to a splat x splat square so sparse clouds give solid maps.

Files: ``.off`` meshes (ModelNet's layout; points sampled on the surface, by area, with trimesh) and ``.npy`` /
``.txt`` arrays whose first three columns are x, y, z. Every cloud is centred and scaled into the unit ball."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError, UnreadableFileError
from .generated import GeneratedSet
from ..data.preprocessing import MAX_SIDE
from .spec import ModalitySpec, at_most, positive, require

POINT_EXTENSIONS = (".off", ".npy", ".txt")


@dataclass(frozen=True)
class PointCloudOptions:
    """Points per cloud, the view side, splat size, and the training augmentation (rotation about z, scale
    range per axis, jitter std; off with false / (1, 1) / 0)."""

    points: int = 1024
    view_size: int = 224
    splat: int = 3
    rotate: bool = True
    scale: tuple[float, float] = (0.8, 1.25)
    jitter: float = 0.01

    def __post_init__(self) -> None:
        positive("pointcloud points, view_size, splat and scale", self.points, self.view_size, self.splat, *self.scale)
        if self.scale[0] > self.scale[1] or self.jitter < 0 or self.splat % 2 == 0:
            raise ConfigError("pointcloud scale must be min <= max, jitter >= 0 and splat odd")
        at_most("pointcloud view_size", self.view_size, MAX_SIDE)
        at_most("pointcloud points", self.points, 10_000_000)
        at_most("pointcloud splat", self.splat, self.view_size)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One cloud: (points, 3)."""
        return (self.points, 3)


def augment_points(points: torch.Tensor, opts: PointCloudOptions) -> torch.Tensor:
    """(B, N, 3) clouds rotated about z by a random angle, scaled per axis and jittered (each cloud its own)."""
    b = points.shape[0]
    if opts.rotate:
        angle = torch.rand(b, device=points.device) * 2 * math.pi
        cos, sin, zero, one = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
        rotation = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], 1).view(b, 3, 3)
        points = points @ rotation.transpose(1, 2)
    low, high = opts.scale
    points = points * (low + (high - low) * torch.rand(b, 1, 3, device=points.device))
    if opts.jitter:
        points = points + (opts.jitter * torch.randn_like(points)).clamp(-5 * opts.jitter, 5 * opts.jitter)
    return points


class MultiViewDepth(nn.Module):
    """(B, N, 3) points in [-1, 1] -> (B, 3, S, S) depth maps (see the module notes); augmented in training."""

    def __init__(self, opts: PointCloudOptions) -> None:
        super().__init__()
        self.opts = opts

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if self.training:
            points = augment_points(points, self.opts)
        b, n, _ = points.shape
        s = self.opts.view_size
        points = points.float().clamp(-1, 1)
        pixel = ((points + 1) / 2 * (s - 1)).round().long()
        depth = (points + 1) / 2
        views = []
        for k in range(3):
            a, c = (k + 1) % 3, (k + 2) % 3
            views.append(pixel[..., c] * s + pixel[..., a] + k * s * s)
        index = torch.stack(views, 1) + (torch.arange(b, device=points.device) * 3 * s * s).view(b, 1, 1)
        flat = points.new_zeros(b * 3 * s * s)
        flat.scatter_reduce_(0, index.flatten(), depth.transpose(1, 2).flatten(), "amax")
        maps = flat.view(b, 3, s, s)
        if self.opts.splat > 1:
            maps = F.max_pool2d(maps, self.opts.splat, stride=1, padding=self.opts.splat // 2)
        return maps


def normalise_cloud(points: np.ndarray, count: int, train: bool) -> torch.Tensor:
    """``count`` of the points (a random choice while training, a fixed one otherwise; with repeats when there
    are fewer), centred and scaled into the unit ball, as float32 (count, 3)."""
    rng = np.random if train else np.random.default_rng(0)
    chosen = points[rng.choice(len(points), count, replace=len(points) < count)]
    chosen = chosen - chosen.mean(0)
    radius = np.linalg.norm(chosen, axis=1).max()
    return torch.from_numpy((chosen / (radius if radius > 0 else 1)).astype(np.float32))


def _load_points(path: str, opts: PointCloudOptions, train: bool) -> np.ndarray:
    suffix = Path(path).suffix.lower()
    if suffix == ".off":
        trimesh = require("trimesh", "reading .off meshes")
        mesh = trimesh.load(path, file_type="off", force="mesh", process=False)
        if len(mesh.faces) == 0 or mesh.area <= 0:
            raise DataError("the mesh has no faces")
        points, _ = trimesh.sample.sample_surface(mesh, opts.points, seed=None if train else 0)
        return np.asarray(points)
    if suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    else:
        with open(path) as f:
            comma = "," in f.readline()
        array = np.loadtxt(path, delimiter="," if comma else None, ndmin=2)
    if array.ndim != 2 or array.shape[1] < 3 or not len(array):
        raise DataError(f"expected an N x 3 (or wider) array of points, got shape {array.shape}")
    return array[:, :3]


def read_points(path: str, opts: PointCloudOptions, train: bool = False) -> torch.Tensor:
    """A mesh or point file as (points, 3) float32 in the unit ball."""
    try:
        points = np.asarray(_load_points(path, opts, train), dtype=np.float64)
    except (DataError, OSError, ValueError, IndexError, KeyError) as e:
        raise UnreadableFileError(f"cannot read point cloud {path} ({e})") from None
    if not np.isfinite(points).all():
        raise DataError(f"point cloud {path} holds NaN or infinite coordinates")
    return normalise_cloud(points, opts.points, train)


# ----- the built-in set: eight generated shapes -----
SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid", "disc", "helix")
SHAPE_SAMPLES = 60  # per class


def shape_points(shape: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points on the surface of a unit-sized ``shape``."""
    u, v = rng.random(n), rng.random(n)
    theta = 2 * np.pi * u
    if shape == "sphere":
        z = 2 * v - 1
        r = np.sqrt(1 - z ** 2)
        return np.stack([r * np.cos(theta), r * np.sin(theta), z], 1)
    if shape == "cube":
        p = rng.uniform(-1, 1, (n, 3))
        face = rng.integers(0, 3, n)
        p[np.arange(n), face] = rng.choice([-1.0, 1.0], n)
        return p
    if shape == "cylinder":
        return np.stack([np.cos(theta), np.sin(theta), 2 * v - 1], 1)
    if shape == "cone":
        r = np.sqrt(v)
        return np.stack([r * np.cos(theta), r * np.sin(theta), 1 - 2 * r], 1)
    if shape == "torus":
        phi = 2 * np.pi * v
        return np.stack([(1 + 0.4 * np.cos(phi)) * np.cos(theta), (1 + 0.4 * np.cos(phi)) * np.sin(theta),
                         0.4 * np.sin(phi)], 1)
    if shape == "pyramid":
        corners = np.array([[1, 1, -1], [1, -1, -1], [-1, -1, -1], [-1, 1, -1]], float)
        apex = np.array([0, 0, 1.0])
        side = rng.integers(0, 4, n)
        a, b = corners[side], corners[(side + 1) % 4]
        s, t = np.sqrt(u)[:, None], v[:, None]
        return (1 - s) * apex + s * ((1 - t) * a + t * b)
    if shape == "disc":
        r = np.sqrt(v)
        return np.stack([r * np.cos(theta), r * np.sin(theta), 0.02 * rng.standard_normal(n)], 1)
    turns = 3 * u  # helix
    surface = np.stack([np.cos(2 * np.pi * turns), np.sin(2 * np.pi * turns), 2 * u - 1], 1)
    return surface + 0.05 * rng.standard_normal((n, 3))


class GeneratedShapes(GeneratedSet):
    """The built-in "shapes" set: eight surfaces, each sample randomly stretched and turned about z."""

    classes = len(SHAPES)

    def sample(self, index: int, label: int) -> torch.Tensor:
        rng = np.random.default_rng([11, index])
        points = shape_points(SHAPES[label], self.opts.points, rng) * rng.uniform(0.7, 1.3, 3)
        angle = rng.uniform(0, 2 * np.pi)
        turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        points = points @ turn.T + 0.01 * rng.standard_normal(points.shape)
        return normalise_cloud(points, self.opts.points, train=False)


def generated_shapes(opts: PointCloudOptions) -> tuple[GeneratedShapes, GeneratedShapes, list[str]]:
    """Train (80%) and val (20%) of the generated shapes."""
    return (*GeneratedShapes.stratified(opts, SHAPE_SAMPLES), list(SHAPES))


POINTCLOUD = ModalitySpec("pointcloud", 3, PointCloudOptions, MultiViewDepth, read_points, POINT_EXTENSIONS,
                          {"shapes": generated_shapes}, samples="point clouds")
