"""--log-to mlflow,wandb: a run's rows reach the trackers through their own libraries (MLflow's file store, W&B's
offline mode), a resumed run continues the same tracker run, a tracker failing mid-run never stops training, and
mistakes are one line."""
import glob
import json
import struct
import warnings

import pytest

from helpers import Interrupt, die_after_steps
from modernconv.cli import main
from modernconv.config import load_config
from modernconv.errors import ConfigError
from modernconv.files import read_jsonl_rows
from modernconv.tasks import train, trainer_for

mlflow = pytest.importorskip("mlflow")  # both are in the test extra; the skip is for a trimmed environment
wandb = pytest.importorskip("wandb")

QUICK = dict(model="convnext_atto", data="synthetic", synthetic_samples=64, synthetic_classes=4, img_size=32,
             epochs=2, batch_size=16, lr=2e-3, warmup_epochs=0.5, randaugment_magnitude=None, random_erasing=0.0,
             mixup=0.0, cutmix=0.0, progress=False, log_every_steps=1)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """An MLflow file store in the test's folder (the library's own opt-in for it)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
    return mlflow.tracking.MlflowClient()


def quick(tmp_path, **overrides):
    return load_config(None, {**QUICK, "output": str(tmp_path / "run"), **overrides})


def the_run(client):
    (experiment,) = [e for e in client.search_experiments() if e.name == "tests"]
    (run,) = client.search_runs([experiment.experiment_id])
    return run


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_mlflow_gets_the_config_every_epoch_every_step_the_files_and_the_best(tmp_path, mlflow_store):
    result = train(quick(tmp_path, log_to="mlflow"))
    run = the_run(mlflow_store)
    rows = read_jsonl_rows(result.run_dir / "metrics.jsonl", "epoch")
    steps = read_jsonl_rows(result.run_dir / "metrics_steps.jsonl", "step")
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["model"] == "convnext_atto" and run.data.params["batch_size"] == "16"
    assert run.data.params["run.train_samples"] == str(json.loads((result.run_dir / "summary.json").read_text())
                                                       ["train_samples"])
    assert run.data.tags["task"] == "classification"
    for key in ("train_loss", "val_top1", "val_loss"):
        assert history(mlflow_store, run.info.run_id, key) == pytest.approx([(r["epoch"], r[key]) for r in rows])
    assert history(mlflow_store, run.info.run_id, "step/loss") == pytest.approx([(s["step"], s["loss"])
                                                                                 for s in steps])
    assert run.data.metrics["best_val_top1"] == pytest.approx(result.best_score)
    assert run.data.metrics["best_epoch"] == result.best_epoch
    uploaded = {a.path for a in mlflow_store.list_artifacts(run.info.run_id)}
    assert {"curves.png", "metrics.csv", "config.yaml", "summary.json"} <= uploaded
    assert json.loads((result.run_dir / "trackers.json").read_text()) == {"mlflow": run.info.run_id}


def test_a_killed_run_resumed_reports_to_the_same_mlflow_run(tmp_path, mlflow_store, monkeypatch):
    trainer = trainer_for(quick(tmp_path, log_to="mlflow"))
    die_after_steps(trainer, monkeypatch, trainer.steps_per_epoch)  # dies after the first epoch's checkpoint
    with pytest.raises(Interrupt):
        trainer.fit()
    trainer.close()
    assert the_run(mlflow_store).info.status == "KILLED"
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tests")
    train(quick(tmp_path, log_to="mlflow", resume=True))
    run = the_run(mlflow_store)  # one run: the same one, continued
    assert run.info.status == "FINISHED"
    assert [step for step, _ in history(mlflow_store, run.info.run_id, "val_top1")][-2:] == [1, 2]


def wandb_records(run_dir):
    """The records of W&B's offline run file (LevelDB-style log: 32 KiB blocks of crc32, length, type-framed
    chunks of protobuf ``Record`` messages)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = glob.glob(str(run_dir / "wandb" / "offline-run-*" / "run-*.wandb"))
    data, position, block, pending, records = open(path, "rb").read(), 7, 32768, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or its last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def named(items):
    """W&B's key/value items (flat or nested keys) as a dict."""
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def test_wandb_offline_gets_the_config_and_every_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = train(quick(tmp_path, log_to="wandb"))
    records = wandb_records(result.run_dir)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "run" and run.project == "modernconv"
    assert run.run_id == json.loads((result.run_dir / "trackers.json").read_text())["wandb"]
    config = {k: v for r in records if r.WhichOneof("record_type") == "config"
              for k, v in named(r.config.update).items()}
    assert config["model"] == "convnext_atto" and config["epochs"] == "2"
    logged = [named(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    epochs = [h for h in logged if "val_top1" in h]
    rows = read_jsonl_rows(result.run_dir / "metrics.jsonl", "epoch")
    assert [(h["epoch"], h["val_top1"]) for h in epochs] == pytest.approx([(r["epoch"], r["val_top1"]) for r in rows])
    steps = read_jsonl_rows(result.run_dir / "metrics_steps.jsonl", "step")
    assert [h["step/loss"] for h in logged if "step/loss" in h] == pytest.approx([s["loss"] for s in steps])
    summary = {k: v for r in records if r.WhichOneof("record_type") == "summary"
               for k, v in named(r.summary.update).items()}
    assert summary["best_val_top1"] == pytest.approx(result.best_score)


def test_a_tracker_failing_mid_run_is_dropped_with_a_warning_and_the_run_goes_on(tmp_path, mlflow_store,
                                                                                  monkeypatch):
    from modernconv.engine import trackers

    def lost(*_):
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(trackers.MLflowRun, "log", lost)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(quick(tmp_path, log_to="mlflow"))
    said = [str(w.message) for w in caught if "log_to mlflow" in str(w.message)]
    assert len(said) == 1 and "tracking server went away" in said[0]
    assert len(read_jsonl_rows(result.run_dir / "metrics.jsonl", "epoch")) == 2  # the run folder has it all


def test_tracker_mistakes_are_one_line(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match="unknown tracker 'tensorboard'"):
        quick(tmp_path, log_to="mlflow,tensorboard")
    real = __import__("importlib").util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match="log_to wandb needs the wandb package: pip install wandb"):
        quick(tmp_path, log_to="wandb")
    monkeypatch.undo()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    assert main(["train", "--data", "synthetic", "--synthetic-samples", "32", "--img-size", "32", "--epochs", "1",
                 "--batch-size", "8", "--output", str(tmp_path / "bad"), "--log-to", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modernconv: error: log_to mlflow: could not start its run:") and err.count("\n") == 1
