"""Fault injection: kills at any moment, divergence, full disks, read-only folders, concurrent runs, truncated
records and signals. Nothing saved is lost and every restart works."""
import datetime
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import Interrupt, die_after_steps
from modernconv.config import load_config
from modernconv.tasks import train, trainer_for
from modernconv.engine import run_folder
from modernconv.engine import state as run_state
from modernconv.errors import ConfigError, TrainingDivergedError, UserError

QUICK = dict(model="convnext_atto", data="synthetic", synthetic_samples=96, synthetic_classes=4, img_size=32,
             epochs=2, batch_size=16, lr=2e-3, warmup_epochs=0.5, randaugment_magnitude=None, random_erasing=0.0,
             mixup=0.0, cutmix=0.0, progress=False)


def quick(tmp_path, name="run", **overrides):
    return load_config(None, {**QUICK, "output": str(tmp_path / name), **overrides})


def finite(path) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(str(path)).values() if t.is_floating_point())


def same_weights(a, b) -> bool:
    a, b = load_file(str(a)), load_file(str(b))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "modernconv", "train", *args]


def quick_args(run_dir, **overrides) -> list[str]:
    options = {**QUICK, "output": str(run_dir), **overrides}
    return [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # runs compared bit for bit use the same thread count


def run_cli(*args: str) -> None:
    proc = subprocess.run(cli(*args), env=ONE_THREAD, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def reached_training(run, since: float) -> bool:
    """Whether a run started at ``since`` got to its training loop (it writes config.yaml there)."""
    config = run / "config.yaml"
    return config.exists() and config.stat().st_mtime >= since


# ----- a kill at any moment -----
COMMITTED_NAMES = ("state.pt", "state.prev.pt", "last.safetensors")


@pytest.mark.parametrize("kill_before_rename", [5, 6, 7])
def test_a_kill_between_any_two_renames_of_a_save_leaves_a_resumable_run(tmp_path, monkeypatch, kill_before_rename):
    full = train(quick(tmp_path, "full", save_every_steps=1))
    trainer = trainer_for(quick(tmp_path, "cut", save_every_steps=1))
    renames, real_replace = {"n": 0}, os.replace

    def replace_or_die(src, dst):
        # the first save commits with 2 renames, later ones with 3: 5, 6, 7 are the three of the third save
        if os.path.basename(dst) in COMMITTED_NAMES:
            if renames["n"] == kill_before_rename:
                raise KeyboardInterrupt  # the process dies here: nothing after this rename happens
            renames["n"] += 1
        real_replace(src, dst)

    monkeypatch.setattr(run_state.os, "replace", replace_or_die)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    trainer.close()
    monkeypatch.setattr(run_state.os, "replace", real_replace)
    resumed = train(quick(tmp_path, "cut", save_every_steps=1, resume=True))
    assert same_weights(full.run_dir / "last.safetensors", resumed.run_dir / "last.safetensors")


def test_random_sigkills_always_leave_a_run_that_resumes_to_the_uninterrupted_weights(tmp_path):
    run_cli(*quick_args(tmp_path / "full", save_every_steps=1, epochs=3))
    run = tmp_path / "killed"
    rng, kills = random.Random(0), 0
    args = quick_args(run, save_every_steps=1, epochs=3)
    for attempt in range(30):
        started = time.time()
        proc = subprocess.Popen(cli(*args, "--resume", "auto"), env=ONE_THREAD,  # one command, as a requeued job
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not reached_training(run, started) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # let it get past start-up, then kill it at a random moment
        time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is None and kills < 4:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
    assert kills >= 2 and proc.returncode == 0
    assert same_weights(tmp_path / "full" / "last.safetensors", run / "last.safetensors")
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_time_based_checkpoints_save_the_same_set_when_the_minutes_have_passed(tmp_path, monkeypatch):
    from modernconv.engine import train as engine

    clock = {"now": 0.0}  # each optimizer step takes 40 s of this clock: 90 s have passed at every third step
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(monotonic=lambda: clock["now"],
                                                              perf_counter=time.perf_counter))
    longer = dict(synthetic_samples=192, epochs=1)  # 9 steps
    trainer = trainer_for(quick(tmp_path, save_every_minutes=1.5, **longer))
    step, save, saved = trainer._optimizer_step, trainer._save, []

    def slow_step():
        clock["now"] += 40
        return step()

    def save_at(progress):
        saved.append((progress.epoch, progress.batches_done))
        save(progress)

    monkeypatch.setattr(trainer, "_optimizer_step", slow_step)
    monkeypatch.setattr(trainer, "_save", save_at)
    die_after_steps(trainer, monkeypatch, 7)  # after the step-6 checkpoint
    with pytest.raises(Interrupt):
        trainer.fit()
    trainer.close()
    assert saved == [(0, 3), (0, 6)]
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert (state["progress"]["epoch"], state["progress"]["batches_done"]) == (0, 6)
    full = train(quick(tmp_path, "full", **longer))
    resumed = train(quick(tmp_path, "run", save_every_minutes=1.5, resume=True, **longer))
    assert same_weights(full.run_dir / "last.safetensors", resumed.run_dir / "last.safetensors")


class DiesInAWorker(torch.utils.data.Dataset):
    """A training set whose loader worker is killed (SIGKILL, as the kernel's OOM killer does) at one sample,
    once: ``flag`` records that it happened."""

    def __init__(self, data, at: int, flag) -> None:
        self.data, self.at, self.flag = data, at, flag

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        if index == self.at and not self.flag.exists():
            self.flag.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.data[index]


def test_a_killed_loader_worker_stops_the_run_with_one_line_and_it_resumes(tmp_path):
    # 9 steps; no random crop: worker augmentation after a mid-epoch resume is not the uninterrupted run's
    longer = dict(workers=1, save_every_steps=2, synthetic_samples=192, epochs=1, scale=(1.0, 1.0))
    trainer = trainer_for(quick(tmp_path, **longer))
    order = list(trainer._train_loader(0).batch_sampler)  # die loading the 8th batch (2 are loaded ahead)
    trainer.data.train = DiesInAWorker(trainer.data.train, order[7][0], tmp_path / "killed")
    with pytest.raises(UserError, match=r"DataLoader worker \(pid.*\) is killed by signal: Killed \(out of memory\?\)"
                                        r"\. The last good checkpoint is .*last.safetensors; lower --workers"):
        trainer.fit()
    trainer.close()
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["progress"]["batches_done"] >= 4  # a mid-epoch checkpoint is kept
    resumed = train(quick(tmp_path, resume="auto", **longer))
    full = train(quick(tmp_path, "full", **longer))
    assert same_weights(full.run_dir / "last.safetensors", resumed.run_dir / "last.safetensors")


# ----- divergence -----
def test_non_finite_weights_are_never_saved_and_the_message_names_a_good_file(tmp_path, monkeypatch):
    trainer = trainer_for(quick(tmp_path, save_every_steps=2))
    step, done = trainer._optimizer_step, {"n": 0}

    def step_then_poison():
        step()
        done["n"] += 1
        if done["n"] == 5:  # weights turn NaN while the loss of the step was still finite
            with torch.no_grad():
                trainer.model.stem[0].weight.fill_(float("nan"))

    monkeypatch.setattr(trainer, "_optimizer_step", step_then_poison)
    with pytest.raises(TrainingDivergedError) as err:
        trainer.fit()
    trainer.close()
    named = str(err.value).split("last good checkpoint is ")[1].split(" ")[0]
    assert named.endswith("last.safetensors") and finite(named)
    for name in ("last.safetensors", "best.safetensors"):
        assert finite(trainer.run_dir / name)
    assert load_file(str(trainer.run_dir / "last.safetensors")) is not None


def test_a_learning_rate_that_explodes_leaves_only_finite_checkpoints(tmp_path):
    with pytest.raises(TrainingDivergedError):
        train(quick(tmp_path, lr=1e6, min_lr=0.0, warmup_epochs=0, save_every_steps=1, epochs=3))
    for path in (tmp_path / "run").glob("*.safetensors"):
        assert finite(path), path.name


# ----- one run per folder -----
def test_a_folder_held_by_a_live_run_is_refused(tmp_path):
    first = trainer_for(quick(tmp_path))
    with pytest.raises(ConfigError, match="is in use by another run"):
        trainer_for(quick(tmp_path))
    first.close()
    second = trainer_for(quick(tmp_path))  # the lock went with the first run
    second.close()


def test_default_run_folders_started_in_the_same_second_are_distinct(tmp_path, monkeypatch):
    class SameSecond(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_folder, "datetime", SameSecond)
    a, b = trainer_for(quick(tmp_path, output=None)), trainer_for(quick(tmp_path, output=None))
    assert [a.run_dir.name, b.run_dir.name] == ["convnext_atto-20260102-030405", "convnext_atto-20260102-030405-2"]
    assert a.run_dir.parent == b.run_dir.parent == Path("runs")
    a.close()
    b.close()


# ----- full disks and read-only folders -----
def test_a_full_disk_keeps_the_previous_checkpoint_and_the_run_resumes(tmp_path, monkeypatch):
    trainer = trainer_for(quick(tmp_path, epochs=3))
    real_save = run_state.save_checkpoint
    calls = {"n": 0}

    def save_until_disk_full(model, path, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's checkpoint: half written, then the disk is full
            open(path, "wb").write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(model, path, metadata)

    monkeypatch.setattr(run_state, "save_checkpoint", save_until_disk_full)
    with pytest.raises(UserError, match="No space left on device") as err:
        trainer.fit()
    trainer.close()
    assert "\n" not in str(err.value) and "--resume" in str(err.value)
    monkeypatch.setattr(run_state, "save_checkpoint", real_save)
    resumed = train(quick(tmp_path, epochs=3, resume=True))
    assert [json.loads(r)["epoch"] for r in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_an_unwritable_output_folder_is_one_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    with pytest.raises(UserError, match=r"cannot create the run folder .* \(Permission denied\)"):
        trainer_for(quick(tmp_path, output=str(tmp_path / "ro" / "run")))


# ----- run records -----
def test_a_half_written_metrics_line_does_not_break_resume(tmp_path):
    train(quick(tmp_path, epochs=1))
    with (tmp_path / "run" / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "train_lo')  # killed in the middle of writing a row
    with pytest.warns(UserWarning, match="epochs changed from 1 to 2"):
        resumed = train(quick(tmp_path, epochs=2, resume=True))
    rows = [json.loads(r) for r in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_the_epoch_row_is_written_before_the_checkpoint_that_ends_the_epoch(tmp_path, monkeypatch):
    trainer = trainer_for(quick(tmp_path, epochs=2))
    save = trainer._save

    def save_then_die(progress):
        save(progress)
        if progress.epoch == 1 and progress.batches_done == 0:
            raise KeyboardInterrupt  # killed right after the end-of-epoch checkpoint

    monkeypatch.setattr(trainer, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    trainer.close()
    assert [json.loads(r)["epoch"] for r in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()] == [1]


# ----- graceful stop -----
LONGER = dict(epochs=3, synthetic_samples=480)  # 30 steps per epoch: the signal lands inside epoch 2


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The weights of the LONGER run never stopped (one run for every signal)."""
    folder = tmp_path_factory.mktemp("uninterrupted") / "full"
    run_cli(*quick_args(folder, **LONGER))
    return folder / "last.safetensors"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_finishes_the_step_saves_and_the_run_resumes_exactly(tmp_path, sig, uninterrupted):
    longer = LONGER
    run = tmp_path / "stopped"
    proc = subprocess.Popen(cli(*quick_args(run, **longer)), env=ONE_THREAD, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # stop it during the second epoch
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert err.startswith("modernconv: stopped") and err.count("\n") == 1 and "--resume" in err
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["progress"]["epoch"] == 1 and state["progress"]["batches_done"] > 0  # mid-epoch, not lost
    run_cli(*quick_args(run, resume=True, **longer))
    assert same_weights(uninterrupted, run / "last.safetensors")
