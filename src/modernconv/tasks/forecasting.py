"""The forecasting task: a window of a series in, the next ``horizon`` steps of every variable out (a regression
head of horizon x D outputs behind the time-series adapter), trained with MSE, judged by the held-out MSE (lower
is better) and MAE on the standardised scale."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint
from ..config import TrainConfig
from ..data import build_loader
from ..engine.evaluate import evaluate_forecast, forecasts
from ..engine.task import RunContext, Task, TaskData, model_options
from ..modalities import create_modality_model, get_modality
from ..modalities.forecast import forecast_splits


class ForecastTask(Task):
    """Windows in, the next ``horizon`` steps out; the lowest held-out MSE (model or EMA) is kept."""

    name = "forecasting"
    metric = "mse"
    higher_is_better = False

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.ema_decay = cfg.ema_decay
        self.options = get_modality("timeseries").make_options(cfg.modality_options)

    def model_options(self) -> dict[str, Any]:
        return {**model_options(self.cfg), "in_chans": get_modality("timeseries").in_chans}

    def build_data(self, ctx: RunContext) -> TaskData:
        train, val, names, self.options, self.scaling = forecast_splits(self.cfg.data, self.options)
        self.val_loader = build_loader(val, self.cfg.batch_size, train=False, seed=self.cfg.seed,
                                       num_workers=self.cfg.workers, distributed=ctx.dist.enabled)
        return TaskData(train, val, names, ctx.preprocessing, self.options)

    def build_model(self, data: TaskData) -> nn.Module:
        opts = data.modality_options
        model = create_modality_model(self.cfg.model, "timeseries", opts, num_classes=opts.horizon * opts.variables,
                                      **self.model_options())
        if self.cfg.init:
            load_checkpoint(model, self.cfg.init_file())
        return model

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        windows, targets = batch
        return F.mse_loss(forecasts(net, windows, self.options.horizon).float(), targets)

    def evaluate(self, ctx: RunContext, model: nn.Module) -> dict[str, float]:
        return evaluate_forecast(model, self.val_loader, self.options.horizon, ctx.device, ctx.precision,
                                 ctx.dist).summary()

    def metadata(self, data: TaskData) -> dict[str, Any]:
        return {**super().metadata(data), "class_names": data.class_names, "modality": "timeseries",
                "modality_options": dataclasses.asdict(data.modality_options),
                "scaling": dataclasses.asdict(self.scaling)}

    def summary(self, row: dict) -> str:
        return f"  val MSE {row['val_mse']:.4f}  MAE {row['val_mae']:.4f}"

    def result_line(self, best_score: float | None, best_epoch: int, last: dict, run_dir) -> str:
        return f"best val MSE {best_score:.4f} at epoch {best_epoch}"
