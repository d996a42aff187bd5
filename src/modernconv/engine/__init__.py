"""Training, evaluation and prediction."""
from .evaluate import EvalResult, evaluate
from .inference import evaluate_checkpoint, predict_images
from .logbook import plot_confusion
from .train import TrainResult, Trainer, train

__all__ = ["EvalResult", "TrainResult", "Trainer", "evaluate", "evaluate_checkpoint", "plot_confusion",
           "predict_images", "train"]
