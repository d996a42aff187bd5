"""Time series as an image: a window of L steps x D variables -> one 1 x S x S map (C'=1).

The paper's adapter ("learned") embeds every step with a linear layer of E = ceil(S^2 / L) outputs, trained with
the network, and reshapes the L x E embedding into the square map (48 steps x 768 dims -> 192 x 192; when L x E
exceeds S^2 the tail is cut). The parameter-free baseline ("resize") resizes the L x D matrix to S x S
bilinearly.

Data: the UCR/UEA archive layout (a folder with NAME_TRAIN.ts and NAME_TEST.ts, read with aeon's loader; uni-
and multivariate; unequal lengths padded with zeros at the end) and ``aeon:NAME`` for the sets that ship inside
the aeon package. The TEST file is the held-out split, as in the archive's benchmarks."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError, UnreadableFileError
from .spec import ModalitySpec, positive, require

EMBEDDINGS = ("learned", "resize")
AEON_PREFIX = "aeon:"


@dataclass(frozen=True)
class TimeSeriesOptions:
    """The map side, the embedding, per-series standardisation, and the window (length and variables: taken
    from the training data when none, and recorded in checkpoints). A ``horizon`` makes the run a forecast of
    that many steps (see ``modalities.forecast``) instead of a classification."""

    side: int = 192
    embed: str = "learned"
    znorm: bool = True
    length: int | None = None
    variables: int | None = None
    horizon: int | None = None

    def __post_init__(self) -> None:
        positive("timeseries side", self.side)
        if self.horizon is not None and self.horizon < 1:
            raise ConfigError("timeseries horizon (the steps to forecast) must be positive")
        if self.embed not in EMBEDDINGS:
            raise ConfigError(f"timeseries embed must be one of {', '.join(EMBEDDINGS)}, got {self.embed!r}")
        if (self.length is not None and self.length < 1) or (self.variables is not None and self.variables < 1):
            raise ConfigError("timeseries length and variables must be positive")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One window: (length, variables), as the training data set them (checkpoints record them)."""
        if self.length is None or self.variables is None:
            raise ConfigError("timeseries options name no window length and variables; give them "
                              "(modality_options length and variables)")
        return (self.length, self.variables)


class StepEmbedding(nn.Module):
    """(B, L, D) -> (B, 1, S, S): each step embedded by one linear layer, the L x E result laid out row-major."""

    def __init__(self, length: int, variables: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.embed = nn.Linear(variables, math.ceil(side * side / length))

    def forward(self, series: torch.Tensor) -> torch.Tensor:
        flat = self.embed(series).flatten(1)[:, :self.side * self.side]
        return flat.view(-1, 1, self.side, self.side)


class ResizeMap(nn.Module):
    """(B, L, D) -> (B, 1, S, S): the L x D matrix resized bilinearly (no parameters)."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side

    def forward(self, series: torch.Tensor) -> torch.Tensor:
        return F.interpolate(series.unsqueeze(1), size=(self.side, self.side), mode="bilinear", align_corners=False)


def series_adapter(opts: TimeSeriesOptions) -> nn.Module:
    if opts.embed == "resize":
        return ResizeMap(opts.side)
    if opts.length is None or opts.variables is None:
        raise ConfigError("the learned time-series embedding needs the window's length and variables")
    return StepEmbedding(opts.length, opts.variables, opts.side)


def fit_series(series: np.ndarray, length: int, znorm: bool) -> torch.Tensor:
    """(D, L') -> float32 (length, D): standardised per variable (if ``znorm``), zero-padded or cut at the end."""
    series = np.nan_to_num(np.asarray(series, dtype=np.float64))
    if znorm:
        series = (series - series.mean(1, keepdims=True)) / (series.std(1, keepdims=True) + 1e-8)
    out = np.zeros((length, series.shape[0]), dtype=np.float32)
    take = min(length, series.shape[1])
    out[:take] = series[:, :take].T
    return torch.from_numpy(out)


class SeriesDataset(torch.utils.data.Dataset):
    """Fixed-size windows (length, D) and integer labels."""

    def __init__(self, series: list[np.ndarray], labels: list[int], opts: TimeSeriesOptions) -> None:
        self.windows = [fit_series(s, opts.length, opts.znorm) for s in series]
        self.labels = labels
        self.bad_images: list[str] = []

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.windows[index], self.labels[index]


def aeon_data() -> Path:
    """The folder of the data sets shipped inside the installed aeon package."""
    return Path(require("aeon.datasets", "reading time series").__file__).parent / "data"


def bundled_sets() -> list[str]:
    """The UCR/UEA sets shipped inside the installed aeon package."""
    root = aeon_data()
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())


def ts_files(source: str) -> tuple[Path, Path]:
    """NAME_TRAIN.ts and NAME_TEST.ts of a UCR/UEA folder or of ``aeon:NAME``."""
    if source.startswith(AEON_PREFIX):
        name = source[len(AEON_PREFIX):]
        known = bundled_sets()
        if name not in known:
            raise DataError(f"aeon ships no data set {name!r}; it ships: {', '.join(known)}")
        folder = aeon_data() / name
    else:
        folder = Path(source)
    trains = sorted(folder.glob("*_TRAIN.ts")) if folder.is_dir() else []
    if len(trains) > 1:  # e.g. JapaneseVowels_TRAIN.ts beside JapaneseVowels_eq_TRAIN.ts: the folder's own name
        trains = [t for t in trains if t.name == f"{folder.name}_TRAIN.ts"]
    if len(trains) != 1:
        raise DataError(f"{source} is not a UCR/UEA folder (one NAME_TRAIN.ts beside NAME_TEST.ts) nor aeon:NAME")
    test = trains[0].with_name(trains[0].name.replace("_TRAIN.ts", "_TEST.ts"))
    if not test.is_file():
        raise DataError(f"{folder} has {trains[0].name} but no {test.name}")
    return trains[0], test


def read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """The series (each D x L_i) and labels of one .ts file, read with aeon."""
    load_from_ts_file = require("aeon.datasets", "reading time series").load_from_ts_file
    try:
        x, y = load_from_ts_file(str(path))
    except Exception as e:  # aeon raises IOError, ValueError and its own types for a malformed file
        raise DataError(f"cannot read time series {path} ({type(e).__name__}: {e})") from None
    if not len(x):
        raise DataError(f"{path} holds no series")
    return [np.asarray(s) for s in x], [str(label) for label in y]


def finite_series(path: Path, series: list[np.ndarray], labels: list[str], skip_bad: bool
                  ) -> tuple[list[np.ndarray], list[str], list[str]]:
    """The series of one file without those holding infinite values (NaN is a missing value and reads as 0):
    such a series is a bad sample, refused with its file and index, or with ``skip_bad`` left out and listed."""
    bad = [i for i, s in enumerate(series) if np.isinf(s).any()]
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UnreadableFileError(f"{path}: series {bad[0]}{more} holds infinite values")
    keep = [i for i in range(len(series)) if i not in set(bad)]
    return [series[i] for i in keep], [labels[i] for i in keep], [f"{path} (series {i})" for i in bad]


def series_splits(source: str, opts: TimeSeriesOptions, class_names: list[str] | None = None, skip_bad: bool = False
                  ) -> tuple[SeriesDataset, SeriesDataset, list[str], TimeSeriesOptions]:
    """Train and held-out windows of a UCR/UEA set, its class names, and the options with the window's length
    and variables filled in from the training series (``skip_bad``: leave out series with infinite values)."""
    train_file, test_file = ts_files(source)
    train_x, train_y, train_bad = finite_series(train_file, *read_ts(train_file), skip_bad)
    test_x, test_y, test_bad = finite_series(test_file, *read_ts(test_file), skip_bad)
    names = class_names or sorted(set(train_y))
    unknown = sorted(set(train_y + test_y) - set(names))
    if unknown:
        raise DataError(f"{source} has labels the classes lack: {', '.join(unknown[:5])}")
    dims = {s.shape[0] for s in train_x + test_x}
    if len(dims) != 1:
        raise DataError(f"{source} mixes series of {sorted(dims)} variables")
    variables = dims.pop()
    if opts.variables not in (None, variables):
        raise DataError(f"{source} has {variables} variables, the model takes {opts.variables}")
    length = opts.length or max(s.shape[1] for s in train_x)
    opts = replace(opts, length=length, variables=variables)
    index = {n: i for i, n in enumerate(names)}
    train, test = (SeriesDataset(train_x, [index[v] for v in train_y], opts),
                   SeriesDataset(test_x, [index[v] for v in test_y], opts))
    train.bad_images, test.bad_images = train_bad, test_bad
    return train, test, names, opts


def read_series_file(path: str, opts: TimeSeriesOptions, train: bool = False) -> torch.Tensor:
    """Predicting on files is for one-sample modalities; a .ts file holds many series."""
    raise DataError("predict takes audio, video and point-cloud files; evaluate time series with "
                    "`modernconv eval --checkpoint CKPT --data FOLDER_OR_aeon:NAME`")


class TimeSeriesSpec(ModalitySpec):
    """Time series come as whole sets (a UCR/UEA folder or ``aeon:NAME``), not as files per class."""

    def split(self, source: str, split: str, options: Any, class_names: list[str] | None = None,
              skip_bad: bool = False, classes_from: str = "train/", transform: Callable | None = None
              ) -> tuple[Dataset, list[str], Any]:
        train, held_out, names, options = series_splits(source, options, class_names, skip_bad)
        return (train if split == "train" else held_out), names, options


TIMESERIES = TimeSeriesSpec("timeseries", 1, TimeSeriesOptions, series_adapter, read_series_file, (".ts",), {},
                            samples="series")
