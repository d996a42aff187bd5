"""Hostile and mistaken inputs: every bad checkpoint, config and data case ends in one `modernconv: error:` line and
a non-zero exit; nothing silently wrong (converted files keep labels and preprocessing, encoders are not run with
random heads, symlink loops are not followed, resumed runs keep their settings)."""
import json
import os
import random

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import modernconv
from modernconv.cli import main
from modernconv.conversion import checkpoint_info

QUICK = ["--model=convnext_atto", "--data=synthetic", "--img-size=32", "--epochs=1", "--batch-size=32",
         "--progress=false"]  # the synthetic set `eval --data synthetic` reads: 512 images, 10 classes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small classification run (its best.safetensors) and an encoder-only file of the same model."""
    root = tmp_path_factory.mktemp("trained")
    assert main(["train", f"--output={root / 'run'}", *QUICK]) == 0
    encoder = modernconv.create_model("convnext_atto").state_dict()
    modernconv.save_checkpoint({k: v for k, v in encoder.items() if not k.startswith("head.")},
                               root / "encoder.safetensors", metadata={"model": "convnext_atto"})
    return root


class Evil:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def bad_checkpoint(kind: str, folder) -> str:
    """A checkpoint file that must be refused, of the given kind."""
    path = folder / f"{kind}.pth"
    weights = {k: v.clone() for k, v in modernconv.create_model("convnext_atto", num_classes=4).state_dict().items()}
    meta = {"model": "convnext_atto", "model_kwargs": json.dumps({"num_classes": 4})}
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(random.Random(0).randbytes(300))
    elif kind == "truncated":
        path = folder / "truncated.safetensors"
        save_file(weights, path, metadata=meta)
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "code":
        torch.save({"model": weights, "x": Evil()}, path)
    elif kind == "kwargs":
        path = folder / "kwargs.safetensors"
        save_file(weights, path, metadata={**meta, "model_kwargs": "[1, 2]"})
    elif kind == "huge":
        path = folder / "huge.safetensors"
        pre = {"input_size": [3, 100000, 100000], "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 1.0,
               "interpolation": "bicubic"}
        save_file(weights, path, metadata={**meta, "preprocessing": json.dumps(pre)})
    elif kind in ("nan", "integer"):
        path = folder / f"{kind}.safetensors"
        name = "stages.0.blocks.0.mlp.fc1.weight"
        weights[name] = weights[name].fill_(float("nan")) if kind == "nan" else weights[name].long()
        save_file(weights, path, metadata=meta)
    return str(path)


BAD_FILES = [("empty", "not a readable PyTorch checkpoint"), ("garbage", "not a readable PyTorch checkpoint"),
             ("truncated", "corrupt or unreadable safetensors"), ("code", "refused to unpickle posix.system"),
             ("nan", "holds NaN or infinite values"),
             ("integer", "integer tensors where the model has floating-point weights")]
BAD_METADATA = [("kwargs", "corrupt metadata"), ("huge", "sides 1..8192")]  # what eval reads beside the weights


@pytest.mark.parametrize("command, kind, message", [("eval", k, m) for k, m in BAD_FILES + BAD_METADATA]
                         + [("convert", k, m) for k, m in BAD_FILES])
def test_bad_checkpoints_are_one_line(tmp_path, capsys, command, kind, message):
    path = bad_checkpoint(kind, tmp_path)
    argv = {"eval": ["eval", "--checkpoint", path, "--data", "synthetic"],
            "convert": ["convert", path, str(tmp_path / "out.safetensors"), "--model", "convnext_atto"]}[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("modernconv: error:") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("recipe, options, message", [
    ("1: 2\n", [], "option names must be text"),
    (None, ["--epochs", "inf"], "epochs: cannot use 'inf'"),
    (None, ["--device", "tpu:x"], "unknown device 'tpu:x'"),
    (None, ["--crop-pct", "0"], "crop_pct must be in (0, 1]"),
    (None, ["--lr", "0.1", "--min-lr", "1"], "min_lr (1.0) is above lr (0.1)"),
    (None, ["--workers", "100000"], "workers must be between 0 and 256"),
    (None, ["--lr", "nan"], "lr: cannot use 'nan'"),
    (None, ["--betas", "0.9"], "betas: cannot use"),
    (None, ["--model", "convmixer_256_8", "--img-size", "2", "--batch-size", "1", "--synthetic-samples", "20",
            "--synthetic-classes", "2", "--data", "synthetic"], "use a batch size above 1"),
])
def test_bad_configs_are_one_line(tmp_path, capsys, recipe, options, message):
    argv = ["train", "--output", str(tmp_path / "run"), "--epochs", "1", "--progress", "false"]
    if recipe is not None:
        (tmp_path / "r.yaml").write_text(recipe)
        argv += ["-c", str(tmp_path / "r.yaml")]
    code = main(argv + options)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_non_utf8_recipe_is_one_line(tmp_path, capsys):
    (tmp_path / "r.yaml").write_bytes("model: caf\xe9\n".encode("latin-1"))
    assert main(["train", "-c", str(tmp_path / "r.yaml")]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_a_destination_that_cannot_be_written_is_one_line(trained, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    code = main(["convert", str(trained / "run" / "best.safetensors"), str(tmp_path / "file" / "out.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("modernconv: error:") and err.count("\n") == 1, err


def test_conversion_keeps_class_names_and_preprocessing(trained, tmp_path, capsys):
    best = trained / "run" / "best.safetensors"
    assert main(["eval", "--checkpoint", str(best), "--data", "synthetic", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["convert", str(best), str(tmp_path / "deploy.safetensors"), "--reparameterize"]) == 0
    info = checkpoint_info(tmp_path / "deploy.safetensors")
    assert info.class_names == [f"class_{k}" for k in range(10)]
    assert info.preprocessing.input_size == (3, 32, 32)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / "deploy.safetensors"), "--data", "synthetic", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["top1"] == before["top1"] and after["loss"] == pytest.approx(before["loss"], rel=1e-4)


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_an_encoder_without_a_classifier_is_refused_not_run_with_a_random_head(trained, tmp_path, capsys, command):
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    extra = ["--data", "synthetic"] if command == "eval" else [str(tmp_path / "x.png")]
    code = main([command, "--checkpoint", str(trained / "encoder.safetensors"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and "holds an encoder without a classifier" in err and err.count("\n") == 1, err


def test_predict_reports_a_bad_file_keeps_the_others_and_never_blocks_on_a_fifo(trained, tmp_path, capsys):
    Image.new("RGB", (40, 30), (200, 30, 20)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    os.mkfifo(tmp_path / "pipe.png")
    files = [str(tmp_path / n) for n in ("good.png", "bad.png", "pipe.png", "missing.png")]
    code = main(["predict", "--checkpoint", str(trained / "run" / "best.safetensors"), *files, "--json"])
    out, err = capsys.readouterr()
    results = json.loads(out)
    assert code == 2 and [("top" in r, "error" in r) for r in results] == [(True, False)] + [(False, True)] * 3
    assert [r["image"] for r in results] == files and err.count("modernconv: error:") == 3
    assert "cannot read image" in results[1]["error"] and "skip_bad_images" not in err  # no option predict lacks


def test_resume_keeps_the_runs_settings(trained, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", f"--output={run}", *QUICK]) == 0
    capsys.readouterr()
    assert main(["train", f"--output={run}", "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--resume continues" in err and "lr (saved 0.002, now 0.5)" in err and err.count("\n") == 1
    assert main(["train", f"--output={run}", "--resume", "--epochs", "2"]) == 0  # a longer run is allowed
    assert "lr schedule is recomputed for 2 epochs" in capsys.readouterr().err


def test_resuming_into_another_model_is_one_line(trained, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", f"--output={run}", *QUICK]) == 0
    (run / "config.yaml").unlink()  # no saved settings to compare: the weights themselves must not fit
    capsys.readouterr()
    code = main(["train", f"--output={run}", "--resume", *QUICK, "--model=convnextv2_atto"])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit this run's model" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, message", [
    (["--batchsize", "3"], "unknown option --batchsize (did you mean --batch-size"),
    (["--scale", "0.5"], "scale: cannot use '0.5' as numbers (scale must be 2 numbers: RandomResizedCrop area"),
    (["--pretrained"], "timm's --pretrained is --init PATH_OR_NAME"),
])
def test_option_mistakes_name_the_flag_and_say_what_it_takes(argv, message, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_nothing_to_predict_is_a_mistake_and_collapse_keeps_existing_files(trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", "--checkpoint", str(trained / "run" / "best.safetensors"), str(tmp_path / "empty"),
                 "--output", str(tmp_path / "p.csv")]) == 2
    assert "no input files in" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
    (tmp_path / "c.csv").write_text("mine")
    argv = ["collapse", "convnext_atto", "--checkpoint", str(trained / "run" / "best.safetensors"), "--images", "8",
            "--csv", str(tmp_path / "c.csv"), "--plot", str(tmp_path / "c.png")]
    assert main(argv) == 2 and "pass --force" in capsys.readouterr().err
    assert (tmp_path / "c.csv").read_text() == "mine" and not (tmp_path / "c.png").exists()


def test_a_class_without_held_out_samples_has_no_accuracy_rather_than_zero():
    from modernconv.engine.evaluate import EvalResult

    confusion = torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2 has no held-out sample
    result = EvalResult(83.3, 100.0, 0.5, 6, confusion)
    assert result.per_class == [75.0, 100.0, None]
    assert json.loads(json.dumps(result.report(["a", "b", "c"])))["per_class"]["c"] is None
