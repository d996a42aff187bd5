"""benchmarks/gpu_suite: its code runs (on CPU, quick), its CUDA branch where a GPU exists, and without one the
shell script says there is nothing to measure."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(*args: str, device: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "gpu_suite.py"), "--device", device, "--quick", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def check_tables(out: str) -> None:
    rows = [line for line in out.splitlines() if line.startswith("| convnext_atto |")]
    settings = [r.split("|")[2].strip() for r in rows[:7]]
    assert settings == ["fp32", "bf16", "fast", "fp32", "bf16", "bf16 channels-last", "bf16 compile"]
    assert all(float(r.split("|")[3]) > 0 for r in rows[:7])  # images/s measured for every setting
    assert len(rows) == 8  # and the peak-memory row
    assert out.startswith("machine: ")


def test_the_suites_code_runs_quick_on_cpu():
    check_tables(run(device="cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA branch runs on a GPU machine")
def test_the_suite_runs_quick_on_cuda():
    out = run(device="cuda")
    check_tables(out)
    assert float(out.splitlines()[-1].split("|")[2]) > 0  # a peak memory measured


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the script measures instead")
def test_without_cuda_the_script_says_there_is_nothing_to_measure(tmp_path):
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_suite.sh")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OUT": str(tmp_path)})
    assert proc.returncode == 0 and "no CUDA device here; nothing to measure" in proc.stdout
    assert (tmp_path / "gpu_suite.txt").read_text().startswith("gpu_suite: no CUDA device")
