"""The forecasting task: a window of a series in, the next ``horizon`` steps of every variable out (a regression
head of horizon x D outputs behind the time-series adapter), trained with MSE, judged by the held-out MSE and
MAE on the standardised scale; the weights with the lowest held-out MSE (model or EMA) are kept."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoint import save_checkpoint
from ..config import TrainConfig
from ..data import DataSplit, build_loader
from ..modalities import create_modality_model, get_modality
from ..modalities.forecast import forecast_splits
from ..modalities.weights import load_modality_checkpoint
from ..runtime import autocast, eval_mode, to_device
from .distributed import DistInfo, all_reduce_sum
from .state import BEST_FILE, Progress
from .task import RunContext, Task, model_options


@dataclass
class ForecastResult:
    """Mean squared and absolute error over every predicted value of ``count`` windows."""

    mse: float
    mae: float
    count: int

    def summary(self) -> dict[str, float]:
        return {"loss": self.mse, "mse": self.mse, "mae": self.mae}


def forecasts(model: nn.Module, windows: torch.Tensor, horizon: int) -> torch.Tensor:
    """The model's (B, horizon, D) forecast for (B, length, D) windows."""
    return model(windows).view(windows.shape[0], horizon, windows.shape[-1])


@torch.no_grad()
def evaluate_forecast(model: nn.Module, loader: DataLoader, horizon: int, device: torch.device,
                      precision: str = "fp32", dist: DistInfo = DistInfo()) -> ForecastResult:
    """MSE and MAE of ``model`` over ``loader``'s windows (summed over the processes of a distributed run)."""
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # squared error, absolute error, values
    with eval_mode(model):
        for windows, targets in loader:
            windows, targets = to_device(windows, device, torch.contiguous_format), targets.to(device)
            with autocast(device, precision):
                error = forecasts(model, windows, horizon).float() - targets
            totals += torch.stack([error.pow(2).sum(), error.abs().sum(), torch.tensor(error.numel(), device=device)])
    totals = all_reduce_sum(totals, dist)
    values = max(totals[2].item(), 1)
    return ForecastResult(totals[0].item() / values, totals[1].item() / values, int(values // max(horizon, 1)))


class ForecastTask(Task):
    """Windows in, the next ``horizon`` steps out; the lowest held-out MSE (model or EMA) is kept."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.ema_decay = cfg.ema_decay
        self.options = get_modality("timeseries").make_options(cfg.modality_options)

    def model_options(self) -> dict[str, Any]:
        return {**model_options(self.cfg), "in_chans": get_modality("timeseries").in_chans}

    def build_data(self, ctx: RunContext) -> DataSplit:
        train, val, self.names, self.options, self.scaling = forecast_splits(self.cfg.data, self.options)
        self.val_loader = build_loader(val, self.cfg.batch_size, train=False, seed=self.cfg.seed,
                                       num_workers=self.cfg.workers, distributed=ctx.dist.enabled)
        return DataSplit(train, val, self.names)

    def build_model(self) -> nn.Module:
        horizon, variables = self.options.horizon, self.options.variables
        model = create_modality_model(self.cfg.model, "timeseries", self.options, num_classes=horizon * variables,
                                      **self.model_options())
        if self.cfg.init:
            load_modality_checkpoint(model, self.cfg.init)
        return model

    def loss(self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(forecasts(net, images, self.options.horizon).float(), labels)

    def end_epoch(self, ctx: RunContext, model: nn.Module, ema: nn.Module | None, epoch: int, row: dict,
                  progress: Progress) -> None:
        """Evaluate the model (and its EMA) into ``row`` and keep the weights of the lowest held-out MSE (stored
        as the run's best score, minus the MSE, so that higher is better as for accuracy)."""
        candidates = [("model", model)] + ([("ema", ema)] if ema is not None else [])
        scores = []
        for label, net in candidates:
            result = evaluate_forecast(net, self.val_loader, self.options.horizon, ctx.device, ctx.precision,
                                       ctx.dist)
            prefix = "val_" if label == "model" else "ema_val_"
            row.update({prefix + k: v for k, v in result.summary().items()})
            scores.append((-result.mse, label, net))
        score, label, best = max(scores, key=lambda s: s[0])
        if score > progress.best_top1 or progress.best_epoch == 0:
            progress.best_top1, progress.best_epoch = score, row["epoch"]
            if ctx.dist.is_main:
                save_checkpoint(best, ctx.run_dir / BEST_FILE, metadata={
                    **self.metadata(), "epoch": row["epoch"], "val_mse": -score, "weights": label})

    def metadata(self) -> dict[str, Any]:
        return {"class_names": self.names, "modality": "timeseries", "modality_options": dataclasses.asdict(self.options),
                "scaling": dataclasses.asdict(self.scaling)}

    def summary(self, row: dict) -> str:
        return f"  val MSE {row['val_mse']:.4f}  MAE {row['val_mae']:.4f}"

    def result_line(self, progress: Progress) -> str:
        return f"best val MSE {-progress.best_top1:.4f} at epoch {progress.best_epoch}"
