"""A run's written record: metrics as JSONL and CSV (TensorBoard when installed) and a PNG of the curves."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..files import atomic_write_text
from ..plots import plot_curves

try:
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # tensorboard is optional
    SummaryWriter = None


class Logbook:
    """Appends one row of metrics per epoch and redraws the curves."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard")) if SummaryWriter else None

    def rows(self) -> list[dict[str, Any]]:
        """The logged rows; a line cut short by a kill in the middle of writing it is left out."""
        if not self.jsonl.exists():
            return []
        rows = []
        for line in self.jsonl.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("epoch"), int):
                rows.append(row)
        return rows

    def truncate(self, epochs_done: int) -> None:
        """Keep the whole rows of the first ``epochs_done`` epochs (a resumed run re-logs those it repeats)."""
        kept = [r for r in self.rows() if r["epoch"] < epochs_done]
        atomic_write_text(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept))
        self._write_csv(kept)

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
        plot_curves(rows, self.run_dir / "curves.png")

    def _write_csv(self, rows: list[dict[str, Any]]) -> None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.csv, text.getvalue())
