"""Experiment trackers a run also reports to (``--log-to mlflow,wandb``), through their own libraries and their
own settings (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``; ``wandb login``, ``WANDB_MODE=offline``,
``WANDB_PROJECT``). The run folder stays the record: a tracker that fails mid-run is warned about once and dropped,
and the run goes on. A resumed run continues the same tracker run (its id is kept in ``trackers.json``)."""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import ConfigError
from ..files import atomic_write_text

IDS_FILE = "trackers.json"  # tracker name -> its run id, so a resumed run reports to the same run
PROJECT = "modernconv"  # the MLflow experiment / W&B project when the environment names none
STEP_PREFIX = "step/"  # per-step scalars (loss, lr, images/s) beside the per-epoch rows
MAX_PARAM = 500  # MLflow's param values are short text
HINTS = {"mlflow": "MLFLOW_TRACKING_URI names the store or server", "wandb": "wandb login, or WANDB_MODE=offline"}


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as dotted keys (``model_kwargs.kernel_size``), values as text."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return flat


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Tracker(Protocol):
    """One tracker's run."""

    run_id: str

    def log(self, metrics: dict[str, float], step: int, per_step: bool) -> None: ...

    def upload(self, path: Path) -> None: ...

    def finish(self, ok: bool, best: dict[str, float]) -> None: ...


class MLflowRun:
    """An MLflow run through ``MlflowClient`` (the user's tracking URI; the experiment from
    ``MLFLOW_EXPERIMENT_NAME`` or ``modernconv``); per-epoch metrics at step = epoch, per-step ones under
    ``step/`` at the optimizer step."""

    def __init__(self, name: str, params: dict[str, str], tags: dict[str, str], run_id: str | None) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = client = MlflowClient()
        if run_id is None:
            experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
            experiment = client.get_experiment_by_name(experiment_name)
            experiment_id = (experiment.experiment_id if experiment is not None
                             else client.create_experiment(experiment_name))
            run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        known = client.get_run(run_id).data.params  # a resumed run keeps its first values (MLflow fixes them)
        new = [Param(k, v[:MAX_PARAM]) for k, v in params.items() if k not in known]
        for i in range(0, len(new), 100):  # MLflow takes at most 100 params a batch
            client.log_batch(run_id, params=new[i:i + 100])

    def log(self, metrics: dict[str, float], step: int, per_step: bool) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        prefix = STEP_PREFIX if per_step else ""
        self.client.log_batch(self.run_id, metrics=[Metric(prefix + k, v, now, step) for k, v in metrics.items()])

    def upload(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def finish(self, ok: bool, best: dict[str, float]) -> None:
        if best:
            self.log(best, 0, per_step=False)
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "KILLED")


class WandbRun:
    """A Weights & Biases run (``WANDB_PROJECT`` or ``modernconv``; its files under the run folder's ``wandb/``);
    per-epoch metrics against ``epoch``, per-step ones under ``step/`` against ``step/step``."""

    def __init__(self, name: str, params: dict[str, str], tags: dict[str, str], run_id: str | None,
                 run_dir: Path) -> None:
        import wandb

        self.run = run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), name=name, dir=str(run_dir),
                                    id=run_id, resume="allow",
                                    tags=[tags["model"], tags["task"]])
        run.config.update(params, allow_val_change=True)
        run.define_metric(f"{STEP_PREFIX}*", step_metric=f"{STEP_PREFIX}step")
        self.run_id = run.id
        self.run_dir = run_dir
        self.defined: set[str] = set()  # metrics told to plot against epoch

    def log(self, metrics: dict[str, float], step: int, per_step: bool) -> None:
        if per_step:
            self.run.log({f"{STEP_PREFIX}{k}": v for k, v in {**metrics, "step": step}.items()})
            return
        for key in metrics.keys() - self.defined - {"epoch"}:
            self.run.define_metric(key, step_metric="epoch")
            self.defined.add(key)
        self.run.log({**metrics, "epoch": step})

    def upload(self, path: Path) -> None:
        self.run.save(str(path), base_path=str(self.run_dir), policy="now")

    def finish(self, ok: bool, best: dict[str, float]) -> None:
        self.run.summary.update(best)
        self.run.finish(exit_code=0 if ok else 1)


class Trackers:
    """The trackers of one run (main process): started before the first step, fed the logbook's rows, finished
    with the run. A failing tracker is dropped with one warning; the run and its own files carry on."""

    def __init__(self, names: tuple[str, ...], run_dir: Path, params: dict[str, Any], tags: dict[str, str],
                 resuming: bool) -> None:
        ids_file = run_dir / IDS_FILE
        ids = json.loads(ids_file.read_text()) if resuming and ids_file.exists() else {}
        text = _flat(params)
        self.active: dict[str, Tracker] = {}
        for name in names:
            try:
                self.active[name] = (MLflowRun(run_dir.name, text, tags, ids.get(name)) if name == "mlflow" else
                                     WandbRun(run_dir.name, text, tags, ids.get(name), run_dir))
            except Exception as error:  # the library's own failure (no server, not logged in): one line
                self.finish(ok=False)  # the ones already started
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ConfigError(f"log_to {name}: could not start its run: {first} ({HINTS[name]})") from None
        atomic_write_text(ids_file, json.dumps({**ids, **{k: t.run_id for k, t in self.active.items()}}))

    def log(self, row: dict[str, Any], step: int, per_step: bool = False) -> None:
        """One per-epoch row (``step``: its epoch) or per-step row (``step``: the optimizer step)."""
        metrics = _numbers({k: v for k, v in row.items() if k != "step"})
        self._each(lambda t: t.log(metrics, step, per_step))

    def finish(self, ok: bool, files: tuple[Path, ...] = (), best: dict[str, float] | None = None) -> None:
        """Upload ``files`` that exist and close each run (finished, or killed when the run stopped early) with
        ``best`` (the best score and its epoch) as its summary."""
        def close(tracker: Tracker) -> None:
            for path in files:
                if path.exists():
                    tracker.upload(path)
            tracker.finish(ok, best or {})

        self._each(close)
        self.active = {}

    def _each(self, action: Callable[[Tracker], None]) -> None:
        for name, tracker in list(self.active.items()):
            try:
                action(tracker)
            except Exception as error:
                warnings.warn(f"log_to {name}: {str(error).strip() or type(error).__name__}; no longer reporting "
                              "to it (the run folder keeps every metric)", stacklevel=2)
                del self.active[name]
