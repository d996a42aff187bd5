"""The command line as a practitioner uses it: timm's flag names, job logs, per-step metrics, fp16, closed pipes,
unexpected errors, overwrite protection and finished runs."""
import json
import subprocess
import sys

import pytest
import torch

import modernconv
from modernconv.cli import main
from modernconv.config import load_config

QUICK = ["--model=convnext_atto", "--data=synthetic", "--synthetic-samples=96", "--synthetic-classes=4",
         "--img-size=32", "--epochs=1", "--batch-size=16"]


def test_timm_flag_names_are_aliases_or_say_what_to_use(tmp_path, capsys):
    from test_engine import cli_options
    cfg = load_config(None, cli_options(["--smoothing", "0.2", "--drop-path", "0.1", "--reprob", "0.25",
                                         "--learning-rate", "1e-3", "--opt-betas", "0.8", "0.9",
                                         "--model-ema-decay", "0.99"]))
    assert (cfg.label_smoothing, cfg.drop_path_rate, cfg.random_erasing, cfg.lr, cfg.betas, cfg.ema_decay) == (
        0.2, 0.1, 0.25, 1e-3, (0.8, 0.9), 0.99)
    for flag, hint in (("--amp", "--precision bf16"), ("--model-ema", "--ema-decay 0.9999")):
        assert main(["train", "--output", str(tmp_path / "x"), flag]) == 2
        err = capsys.readouterr().err
        assert hint in err and err.count("\n") == 1
    assert main(["pretrain", "--output", str(tmp_path / "y"), "--smoothing", "0.1"]) == 2
    assert "label_smoothing does not apply to pre-training" in capsys.readouterr().err


def test_a_job_log_gets_plain_lines_every_log_every_steps_and_steps_go_to_jsonl(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "modernconv", "train", f"--output={run}", *QUICK,
                           "--log-every-steps=2", "--clip-grad=1.0"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("epoch 1/1 batch")]
    assert len(lines) == 2 and "\r" not in proc.stdout + proc.stderr  # 5 steps: logged at steps 2 and 4
    steps = [json.loads(line) for line in (run / "metrics_steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [2, 4]
    assert {"loss", "lr", "images_per_s", "grad_norm", "epoch"} <= steps[0].keys()


def test_fp16_mixed_precision_trains_with_a_gradient_scaler_and_resumes(tmp_path):
    assert main(["train", f"--output={tmp_path / 'run'}", *QUICK, "--precision=fp16", "--progress=false"]) == 0
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0  # the scaler's state is part of the run
    assert main(["train", f"--output={tmp_path / 'run'}", "--resume", "--epochs=2", "--progress=false"]) == 0


def test_a_finished_run_says_so_on_resume(tmp_path, capsys):
    assert main(["train", f"--output={tmp_path / 'run'}", *QUICK, "--progress=false"]) == 0
    capsys.readouterr()
    assert main(["train", f"--output={tmp_path / 'run'}", "--resume"]) == 0
    assert "has finished its 1 epochs; nothing to do" in capsys.readouterr().out


def test_convert_refuses_to_overwrite_without_force(tmp_path, capsys):
    modernconv.save_checkpoint(modernconv.create_model("convnext_atto"), tmp_path / "a.safetensors")
    (tmp_path / "b.safetensors").write_text("keep me")
    assert main(["convert", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]) == 2
    assert "pass --force" in capsys.readouterr().err and (tmp_path / "b.safetensors").read_text() == "keep me"
    assert main(["convert", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pth"), "--force"]) == 0
    assert "name it *.safetensors" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.run(f"{sys.executable} -m modernconv models | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == modernconv.list_models()[0] and proc.stderr == ""


def test_an_unexpected_error_is_one_line_unless_debugging(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(modernconv.cli.models, "list_variants", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err == "modernconv: error: unexpected ZeroDivisionError: a bug (rerun with --debug for the traceback)\n"
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "models"])


def test_predict_takes_folders_and_globs_and_writes_csv_or_json(tmp_path, capsys):
    from PIL import Image
    net = modernconv.create_model("convnext_atto", num_classes=1000)
    modernconv.save_checkpoint(net, tmp_path / "in1k.safetensors")  # no class names: ImageNet's are used
    for name in ("a/1.png", "a/b/2.jpg", "c.png"):
        (tmp_path / "img" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 40), (10, 200, 30)).save(tmp_path / "img" / name)
    code = main(["predict", "--checkpoint", str(tmp_path / "in1k.safetensors"), str(tmp_path / "img" / "a"),
                 str(tmp_path / "img" / "*.png"), "--topk", "2", "--output", str(tmp_path / "out.csv"), "--json"])
    results = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["image"].split("img/")[1] for r in results] == ["a/1.png", "a/b/2.jpg", "c.png"]
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    assert all(t["class"] in _IMAGENET_CATEGORIES for r in results for t in r["top"])
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert rows[0] == "image,rank,class,probability,error" and len(rows) == 1 + 3 * 2
    assert main(["predict", "--checkpoint", str(tmp_path / "in1k.safetensors"), str(tmp_path / "img" / "c.png"),
                 "--output", str(tmp_path / "out.csv")]) == 2  # never overwritten silently
    assert main(["predict", "--checkpoint", str(tmp_path / "in1k.safetensors"), str(tmp_path / "nothing*.png")]) == 2


@pytest.mark.parametrize("in_chans", [3, 1])
def test_timms_randaugment_policy_string_trains(tmp_path, in_chans):
    assert main(["train", f"--output={tmp_path / 'run'}", *QUICK, "--aa", "rand-m9-mstd0.5-inc1",
                 f"--in-chans={in_chans}", "--progress=false"]) == 0
    assert load_config(tmp_path / "run" / "config.yaml").auto_augment == "rand-m9-mstd0.5-inc1"


@pytest.mark.parametrize("options, message", [
    (["--aa", "rand-m9", "--randaugment-magnitude", "9"], "not both"),
    (["--aa", "v0"], "give a timm RandAugment policy"),
    (["--aa", "rand-x9"], "is not a RandAugment policy timm reads"),
])
def test_bad_randaugment_policies_are_one_line(tmp_path, capsys, options, message):
    assert main(["train", f"--output={tmp_path / 'run'}", *QUICK, *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_timms_randaugment_at_its_top_magnitude_never_asks_pillow_for_zero_bits():
    from PIL import Image
    from modernconv.data.transforms import timm_rand_augment
    augment = timm_rand_augment("rand-m10-mstd0-inc1-n4", 32, (0.5, 0.5, 0.5))  # posterize at 0 bits, unclamped
    image = Image.new("RGB", (32, 32), (120, 60, 200))
    for _ in range(300):
        augment(image)


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_every_option_of_eval_and_predict_says_what_it_is(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for option, meaning in (("--checkpoint PATH", "written by `modernconv train`"), ("--batch-size", "(default 64)"),
                            ("--workers", "(default 0"), ("--device", "cuda when available")):
        assert option in text and meaning in " ".join(text.split()), (option, meaning)
    if command == "predict":
        assert "most probable first (default 5)" in " ".join(text.split())


def test_roadmap_help_shows_its_own_defaults_and_not_the_options_it_refuses(capsys):
    with pytest.raises(SystemExit):
        main(["roadmap", "--help"])
    text = capsys.readouterr().out
    assert "--model " not in text and "--resume" not in text and "--init " not in text
    flat = " ".join(text.split())
    assert "RandAugment magnitude 0..10 (none = off) [default: 5]" in flat  # the modern recipe's m5
    assert main(["roadmap", "--model", "convnext_atto", "--output", "x"]) == 2
    assert "roadmap does not take --model" in capsys.readouterr().err
