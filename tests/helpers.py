"""Shared test helpers: model size classes, valid input sizes, weight randomisation and a crash mid-run."""
from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

import torch
from torch import nn

import modernconv
from modernconv.analysis import count_params

LARGE_PARAMS = 60_000_000  # above this a model gets a 32-pixel forward only
REFERENCE = Path(__file__).parent / "reference"


@functools.cache
def reference_rows() -> tuple[dict[str, str], ...]:
    """The rows of tests/reference/model_table.csv (the papers' and reference implementations' figures)."""
    with (REFERENCE / "model_table.csv").open() as f:
        return tuple(csv.DictReader(f))


def reference(name: str, form: str = "-") -> dict[str, str]:
    """The reference row of model ``name`` (``form`` "train" or "deploy" for UniRepLKNet, else "-")."""
    return next(r for r in reference_rows() if r["name"] == name and r["form"] == form)


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return modernconv.create_model(name, **kwargs)


def is_large(name: str) -> bool:
    return count_params(meta_model(name))[0] > LARGE_PARAMS


def side_for(model: nn.Module, at_least: int) -> int:
    """The smallest side >= ``at_least`` the model's stride allows."""
    s = model.input_stride
    return math.ceil(at_least / s) * s


def randomize_(model_or_state: nn.Module | dict[str, torch.Tensor], seed: int = 0) -> None:
    """Fill every tensor with values that keep activations O(1) and make every branch matter:
    weights ~ N(0, 1/fan_in), norm/BN scales ~ U(0.5, 1.5), layer scale ~ U(0.5, 1), GRN ~ N(0, 0.5),
    biases ~ N(0, 0.1), BN running statistics randomised."""
    state = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    g = torch.Generator().manual_seed(seed)

    with torch.no_grad():
        for name, t in state.items():
            if not t.is_floating_point():
                continue
            if "running_var" in name:
                t.uniform_(0.5, 2.0, generator=g)
            elif "running_mean" in name:
                t.normal_(0, 0.2, generator=g)
            elif "grn" in name:
                t.normal_(0, 0.5, generator=g)
            elif name.endswith("gamma"):
                t.uniform_(0.5, 1.0, generator=g)
            elif name.endswith("bias"):
                t.normal_(0, 0.1, generator=g)
            elif t.ndim == 1:
                t.uniform_(0.5, 1.5, generator=g)
            else:
                fan_in = t[0].numel()
                t.normal_(0, fan_in ** -0.5, generator=g)


def calibrate_batchnorm_(model: nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of batch ``x`` so eval outputs stay O(1)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    was_training = model.training
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.train(was_training)


class Interrupt(Exception):
    """A run dying in the middle (raised by ``die_after_steps``)."""


def die_after_steps(trainer, monkeypatch, steps: int) -> None:
    """Make ``trainer`` raise Interrupt in place of optimizer step ``steps + 1`` (after its checkpoints so far)."""
    original, done = trainer._optimizer_step, {"n": 0}

    def step_then_die() -> None:
        if done["n"] == steps:
            raise Interrupt
        done["n"] += 1
        original()

    monkeypatch.setattr(trainer, "_optimizer_step", step_then_die)


def resumed_equals_uninterrupted(cfg: dict, folder: Path, monkeypatch, die_after: int = 5) -> bool:
    """Train ``cfg`` whole, and again killed after ``die_after`` optimizer steps and resumed, in two run folders
    under ``folder``: whether the two final weights are equal."""
    from safetensors.torch import load_file

    from modernconv.config import load_config
    from modernconv.tasks import train, trainer_for

    train(load_config(None, {**cfg, "output": str(folder / "full")}))
    cut = trainer_for(load_config(None, {**cfg, "output": str(folder / "cut")}))
    die_after_steps(cut, monkeypatch, die_after)
    try:
        cut.fit()
    except Interrupt:
        pass
    else:
        raise AssertionError(f"the run ended before step {die_after + 1}")
    finally:
        cut.close()
    train(load_config(None, {**cfg, "output": str(folder / "cut"), "resume": True}))
    a, b = (load_file(str(folder / n / "last.safetensors")) for n in ("full", "cut"))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@functools.cache
def has_cxx_compiler() -> bool:
    """Whether torch.compile's CPU backend (Inductor) finds a C++ compiler on this machine."""
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        return bool(get_cpp_compiler())
    except Exception:  # Inductor raises its own error types when none is found
        return False


def scaled_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest difference relative to the expected outputs' scale (their largest magnitude, or 1): how two
    numerically different but correct fp32 paths are compared, since rounding grows with the values."""
    return (actual - expected).abs().max().item() / max(1.0, expected.abs().max().item())
