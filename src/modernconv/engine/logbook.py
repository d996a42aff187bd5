"""A run's written record: per-epoch metrics as JSONL and CSV, per-step scalars as JSONL (TensorBoard when
installed), and a PNG of the curves; the same rows to the experiment trackers the run names."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..files import atomic_write_text, read_jsonl_rows
from ..plots import plot_curves
from .trackers import Trackers

try:
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # tensorboard is optional
    SummaryWriter = None


class Logbook:
    """Appends one row of metrics per epoch and redraws the curves."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.trackers: Trackers | None = None  # the run's experiment trackers, once it has started them
        self.jsonl = run_dir / "metrics.jsonl"
        self.steps = run_dir / "metrics_steps.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.curves = run_dir / "curves.png"
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard")) if SummaryWriter else None

    def rows(self) -> list[dict[str, Any]]:
        """The logged epoch rows."""
        return read_jsonl_rows(self.jsonl, "epoch")

    def truncate(self, epochs_done: int, steps_done: int) -> None:
        """Keep the whole rows of the first ``epochs_done`` epochs and ``steps_done`` steps (a resumed run
        re-logs those it repeats; a new run, 0 and 0, drops what a run killed before its first checkpoint
        logged). Files not there yet are not created."""
        if self.jsonl.exists():
            kept = [r for r in self.rows() if r["epoch"] <= epochs_done]
            atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept))
            self._write_csv(kept)
        if self.steps.exists():
            steps = [r for r in read_jsonl_rows(self.steps, "step") if r["step"] <= steps_done]
            atomic_write_text(self.steps, "".join(json.dumps(r) + "\n" for r in steps))

    def log_step(self, row: dict[str, Any]) -> None:
        """Append one step's scalars (step, epoch, loss, lr, images/s, grad norm when measured)."""
        with self.steps.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tensorboard is not None:
            for key, value in row.items():
                if key not in ("step", "epoch"):
                    self.tensorboard.add_scalar(f"step/{key}", value, row["step"])
        if self.trackers is not None:
            self.trackers.log(row, row["step"], per_step=True)

    def log(self, row: dict[str, Any]) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows = self.rows()
        self._write_csv(rows)
        if self.tensorboard is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.tensorboard.add_scalar(key, value, row["epoch"])
            self.tensorboard.flush()
        plot_curves(rows, self.curves)
        if self.trackers is not None:
            self.trackers.log(row, row["epoch"])

    def close(self, ok: bool, files: tuple[Path, ...] = (), best: dict[str, float] | None = None) -> None:
        """End the trackers' runs (``ok``: the run finished, else it stopped early) with the run's ``best`` scores
        as their summary, uploading the curves, the metrics table and ``files``."""
        if self.trackers is not None:
            self.trackers.finish(ok, (self.curves, self.csv, *files), best or {})
            self.trackers = None

    def _write_csv(self, rows: list[dict[str, Any]]) -> None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.csv, text.getvalue())
