"""The tasks the training loop runs, one file each: classification (any modality), forecasting (time series),
semantic segmentation (UperNet), detection / instance segmentation (Mask R-CNN and the other detectors) and FCMAE
pre-training.

A run's config names its task (``task:``; FCMAE's config is its own); ``build_task`` makes it, ``train`` runs it
in the one loop (``modernconv.engine.Trainer``). Adding a task is writing one file with a ``Task`` subclass
(see ``modernconv.engine.task``), its config options, and its line in ``TASKS``."""
from __future__ import annotations

from ..config import RunConfig
from ..engine import Trainer, TrainResult
from ..engine.task import Task
from .classification import ClassificationTask
from .detection import DetectionTask
from .fcmae import ENCODER_FILE, FCMAETask
from .forecasting import ForecastTask
from .segmentation import SegmentationTask

TASKS: dict[str, type[Task]] = {task.name: task for task in (ClassificationTask, ForecastTask, SegmentationTask,
                                                            DetectionTask, FCMAETask)}


def build_task(cfg: RunConfig) -> Task:
    """The task ``cfg`` describes (its ``task_name()``)."""
    return TASKS[cfg.task_name()](cfg)


def trainer_for(cfg: RunConfig, label: str = "") -> Trainer:
    """The training loop set up for ``cfg``'s task (data read, model built, run folder created); ``label``
    starts its epoch lines."""
    return Trainer(cfg, build_task(cfg), label)


def train(cfg: RunConfig, label: str = "") -> TrainResult:
    """Run the job ``cfg`` describes, whatever its task (also under torchrun); ``label`` starts its epoch lines
    (the roadmap names the step and seed)."""
    trainer = trainer_for(cfg, label)
    try:
        return trainer.fit()
    finally:
        trainer.close()


__all__ = ["ENCODER_FILE", "TASKS", "ClassificationTask", "DetectionTask", "FCMAETask", "ForecastTask", "SegmentationTask",
           "build_task", "train", "trainer_for"]
