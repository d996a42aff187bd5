"""The training loop shared by every task, its task interface, evaluation and prediction. The tasks themselves are
in ``modernconv.tasks``."""
from .evaluate import EvalResult, evaluate
from .inference import evaluate_checkpoint, predict_images
from .task import RunContext, Task, TaskData
from .train import TrainResult, Trainer

__all__ = ["EvalResult", "RunContext", "Task", "TaskData", "TrainResult", "Trainer", "evaluate",
           "evaluate_checkpoint", "predict_images"]
