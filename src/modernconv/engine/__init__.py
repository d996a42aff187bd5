"""The training loop shared by every task, the classification task, evaluation and prediction."""
from .classification import ClassificationTask
from .evaluate import EvalResult, evaluate
from .inference import evaluate_checkpoint, predict_images
from .task import RunContext, Task
from .train import TrainResult, Trainer, train

__all__ = ["ClassificationTask", "EvalResult", "RunContext", "Task", "TrainResult", "Trainer", "evaluate",
           "evaluate_checkpoint", "predict_images", "train"]
