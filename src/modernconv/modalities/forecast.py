"""Time-series forecasting data: one long series (T steps x D variables) cut into windows of ``length`` input steps
and ``horizon`` target steps, split in time (the first 80% of target steps train, the last 20% are held out;
held-out inputs may reach back into the training stretch, as in the forecasting benchmarks).

Every variable is standardised with the training stretch's mean and std; errors (MSE, MAE) are reported on
that scale, as the literature does. Sources: a CSV file (its numeric columns are the variables), ``aeon:NAME``
for the forecasting series inside aeon (Airline, Lynx, solar, Uschange, ...), or the built-in "seasonal"
series."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .spec import require
from .timeseries import AEON_PREFIX, TimeSeriesOptions, aeon_data

TRAIN_FRACTION = 0.8
DEFAULT_LENGTH = 48  # the paper's input window
SEASONAL_STEPS = 4000


@dataclass(frozen=True)
class Scaling:
    """Per-variable mean and std of the training stretch (to read forecasts back in the series' units)."""

    mean: list[float]
    std: list[float]


class ForecastWindows(Dataset):
    """(input window (length, D), target (horizon, D)) pairs starting at the given steps."""

    def __init__(self, series: np.ndarray, starts: np.ndarray, length: int, horizon: int) -> None:
        self.series = torch.from_numpy(series.astype(np.float32))
        self.starts, self.length, self.horizon = starts, length, horizon
        self.bad_images: list[str] = []

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = int(self.starts[index])
        return self.series[s:s + self.length], self.series[s + self.length:s + self.length + self.horizon]


def seasonal_series(steps: int = SEASONAL_STEPS) -> np.ndarray:
    """The built-in series: three hourly variables with daily and weekly cycles, a slow drift, AR(1) noise, and the
    second and third following the first with lags of 3 and 12 hours (fixed seed)."""
    rng = np.random.default_rng(0)
    t = np.arange(steps + 12)
    noise = np.zeros(len(t))
    for i in range(1, len(t)):
        noise[i] = 0.8 * noise[i - 1] + rng.normal(0, 0.3)
    base = 10 + 4 * np.sin(2 * np.pi * t / 24) + 2 * np.sin(2 * np.pi * t / 168) + t / 1000 + noise
    return np.stack([base[12:], 0.5 * base[9:-3] + rng.normal(0, 0.2, steps), -base[:-12] + 20], 1)


def read_table(source: str) -> tuple[np.ndarray, list[str]]:
    """The series (T, D) and its variable names from ``source``."""
    if source == "seasonal":
        return seasonal_series(), ["load", "lagged_3h", "mirror_12h"]
    path = Path(source)
    if source.startswith(AEON_PREFIX):
        path = aeon_data() / source[len(AEON_PREFIX):] / f"{source[len(AEON_PREFIX):]}.csv"
        if not path.is_file():
            known = sorted(p.parent.name for p in aeon_data().glob("*/*.csv"))
            raise DataError(f"aeon ships no forecasting series {source[len(AEON_PREFIX):]!r}; "
                            f"it ships: {', '.join(known)}")
    if not path.is_file():
        raise DataError(f"{source} is not a CSV file of a series (nor seasonal or aeon:NAME)")
    pandas = require("pandas", "reading a series from CSV")
    try:
        table = pandas.read_csv(path).select_dtypes("number")
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read series {path} ({e})") from None
    table = table.loc[:, [c for c in table.columns if not str(c).startswith("Unnamed")]]  # a saved index column
    if table.shape[1] == 0 or table.isna().all().any():
        raise DataError(f"{path} has no numeric column to forecast (or one without values)")
    infinite = np.isinf(table.to_numpy(np.float64))
    if infinite.any():  # (empty cells are missing values: interpolated)
        row, column = np.argwhere(infinite)[0]
        raise DataError(f"series {path} holds infinite values (first: column {table.columns[column]}, "
                                  f"row {row + 1})")
    return table.interpolate(limit_direction="both").to_numpy(np.float64), [str(c) for c in table.columns]


def forecast_splits(source: str, opts: TimeSeriesOptions) -> tuple[ForecastWindows, ForecastWindows, list[str],
                                                                  TimeSeriesOptions, Scaling]:
    """Train and held-out windows of ``source``, its variable names, the options completed (length, variables)
    and the training stretch's scaling."""
    series, names = read_table(source)
    length, horizon = opts.length or DEFAULT_LENGTH, opts.horizon
    if opts.variables not in (None, series.shape[1]):
        raise DataError(f"{source} has {series.shape[1]} variables, the model takes {opts.variables}")
    cut = int(len(series) * TRAIN_FRACTION)
    last_train = cut - length - horizon  # the last start whose target ends inside the training stretch
    last = len(series) - length - horizon
    if last_train < 0 or last < cut - length:
        raise DataError(f"{source} has {len(series)} steps: too few for windows of {length} + {horizon} with "
                        f"{100 - 100 * TRAIN_FRACTION:.0f}% held out; shorten length or horizon")
    mean, std = series[:cut].mean(0), series[:cut].std(0) + 1e-8
    scaled = (series - mean) / std
    opts = replace(opts, length=length, variables=series.shape[1])
    return (ForecastWindows(scaled, np.arange(0, last_train + 1), length, horizon),
            ForecastWindows(scaled, np.arange(cut - length, last + 1), length, horizon),  # targets after the cut
            names, opts, Scaling(mean.tolist(), std.tolist()))
