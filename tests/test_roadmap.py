"""The ResNet-50 -> ConvNeXt-T design roadmap: every step builds and trains, costs match the paper's Table 10,
the two ends are torchvision's ResNet-50 and our ConvNeXt-T exactly, and the experiment runs, skips and resumes."""
import csv
import json
import os

import pytest
import timm
import torch
import torchvision

import modernconv
from helpers import REFERENCE, Interrupt, die_after_steps, meta_model, randomize_
from modernconv.analysis import count_macs, count_params
from modernconv.checkpoint import load_checkpoint
from modernconv.checkpoint.load import fit_state_dict
from modernconv.cli import main
from modernconv.config import load_config
from modernconv.tasks import trainer_for
from modernconv.experiments import roadmap as experiment

TRACK = "resnet50_to_convnext_t"
STEPS = ["resnet50", "modern_recipe", "stage_ratio", "patchify_stem", "depthwise", "width_96", "inverted_bottleneck",
         "move_dw_up", "kernel_5", "kernel_7", "kernel_9", "kernel_11", "gelu", "fewer_activations", "fewer_norms",
         "layer_norm", "separate_downsampling"]
# the one step whose paper figure counts what ours does not (see benchmarks/RESULTS.md, "Design roadmap")
COUNTED_DIFFERENTLY = {"layer_norm"}


def paper_table() -> dict[tuple[str, str], dict[str, str]]:
    with (REFERENCE / "roadmap_table10.csv").open() as f:
        return {(r["track"], r["step"]): r for r in csv.DictReader(f)}


def test_the_steps_are_the_papers_in_order():
    assert modernconv.roadmap_steps() == STEPS
    assert modernconv.roadmap_steps("resnet200_to_convnext_b") == [s.replace("96", "128") for s in STEPS]


@pytest.mark.parametrize("step", STEPS)
def test_every_step_trains_on_64px(step):
    model = modernconv.create_model(TRACK, step=step, num_classes=5, in_chans=1, drop_path_rate=0.1)
    out = model(torch.randn(2, 1, 64, 64))
    out.sum().backward()
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert all(p.grad is not None for p in model.parameters())
    assert [f["num_chs"] for f in model.feature_info] == model.design.stage_dims()


@pytest.mark.parametrize("step", STEPS)
def test_params_and_gmacs_match_table_10(step):
    paper = float(paper_table()[TRACK, step]["gflops"])
    gmacs = count_macs(meta_model(TRACK, step=step)) / 1e9
    if step in COUNTED_DIFFERENTLY:  # BN -> LN changes no conv or matmul: our count stays that of fewer_norms
        assert gmacs == count_macs(meta_model(TRACK, step="fewer_norms")) / 1e9
    else:
        assert abs(gmacs - paper) / paper < 0.05


def test_the_ends_have_the_reference_sizes():
    start, end = meta_model(TRACK, step="resnet50"), meta_model(TRACK)
    with torch.device("meta"):
        tv = torchvision.models.resnet50()
    assert count_params(start) == count_params(tv)
    assert count_params(end) == count_params(meta_model("convnext_tiny"))
    assert count_macs(end) == count_macs(meta_model("convnext_tiny"))


@pytest.mark.isa_sensitive
def test_resnet50_step_is_torchvisions_resnet50(tmp_path):
    tv = torchvision.models.resnet50().eval()
    randomize_(tv)
    path = tmp_path / "resnet50.pth"
    torch.save(tv.state_dict(), path)
    ours = modernconv.create_model(TRACK, step="resnet50").eval()
    report = load_checkpoint(ours, path)
    assert report.clean and report.source_format == "torchvision-resnet"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=1e-4)
    # convert finds the step it is (it named none before)
    assert main(["convert", str(path), str(tmp_path / "ours.safetensors")]) == 0
    again = modernconv.load_model(tmp_path / "ours.safetensors")
    assert again.model_kwargs["step"] == "resnet50"
    with torch.no_grad():
        torch.testing.assert_close(again(x), tv(x), rtol=0, atol=1e-4)


@pytest.mark.isa_sensitive
def test_last_step_is_convnext_tiny_ours_or_torchvisions(tmp_path):
    tiny = modernconv.create_model("convnext_tiny").eval()
    randomize_(tiny)
    path = tmp_path / "convnext_tiny.pth"
    torch.save(tiny.state_dict(), path)
    end = modernconv.create_model(TRACK).eval()
    assert load_checkpoint(end, path).clean
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(end(x), tiny(x), rtol=0, atol=1e-4)
    tv = torchvision.models.convnext_tiny().eval()  # torchvision's layout: renamed to ours, then to the step's
    randomize_(tv)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    end = modernconv.create_model(TRACK).eval()
    report = load_checkpoint(end, tmp_path / "tv.pth")
    assert report.clean and report.source_format == "torchvision-convnext, convnext as roadmap"
    with torch.no_grad():
        torch.testing.assert_close(end(x), tv(x), rtol=0, atol=1e-4)


def test_resnet200_track_starts_at_resnet200_and_ends_at_convnext_base():
    with torch.device("meta"):
        resnet200 = timm.create_model("resnet200")
    start = meta_model("resnet200_to_convnext_b", step="resnet50")
    fitted, report = fit_state_dict(resnet200.state_dict(), start.state_dict())
    assert report.clean and len(fitted) == len(start.state_dict())
    end, base = meta_model("resnet200_to_convnext_b"), meta_model("convnext_base")
    assert count_params(end) == count_params(base) and count_macs(end) == count_macs(base)
    assert abs(count_macs(end) / 1e9 - float(paper_table()["resnet200_to_convnext_b", "separate_downsampling"]
                                              ["gflops"])) / 15.35 < 0.05


@pytest.mark.isa_sensitive
def test_batchnorm_steps_in_training_mode_match_torchvision():
    """Not only the eval forward: the training-mode forward (batch statistics) matches too."""
    tv = torchvision.models.resnet50(num_classes=4)
    ours = modernconv.create_model(TRACK, step="modern_recipe", num_classes=4)
    ours.load_state_dict(fit_state_dict(tv.state_dict(), ours.state_dict())[0])
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=1e-4)


def test_unknown_step_and_track_are_one_line(capsys):
    for argv in (["roadmap", "--list", "--steps", "kernel_13"], ["roadmap", "--list", "--track", "resnet18"],
                 ["roadmap", "--data", "/no/such/folder", "--output", "x"], ["roadmap", "--epochs", "1"],
                 ["roadmap", "--model", "convnext_atto", "--output", "x"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("modernconv: error:") and err.count("\n") == 1, (argv, err)
    with pytest.raises(modernconv.ConfigError, match="unknown roadmap step 'lite'"):
        modernconv.create_model(TRACK, step="lite")


def test_list_json_gives_every_steps_cost(capsys):
    assert main(["roadmap", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in rows] == STEPS
    assert set(rows[0]) == {"step", "params", "gmacs", "paper_gflops"}
    assert rows[0]["params"] == 25_557_032 and rows[-1]["paper_gflops"] == 4.49


def test_roadmap_runs_on_digits_and_skips_finished_steps(tmp_path, capsys):
    out = tmp_path / "roadmap"
    base = ["roadmap", "--output", str(out), "--progress", "false", "--batch-size", "32", "--data", "synthetic",
            "--synthetic-samples", "160", "--img-size", "32"]
    argv = [*base, "--epochs", "1"]
    assert main([*argv, "--steps", "depthwise"]) == 0
    assert main([*argv, "--steps", "resnet50"]) == 0  # the table keeps the folder's earlier steps
    with (out / "roadmap.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["step"] for r in table] == ["resnet50", "depthwise"]  # the roadmap's order
    assert all(0 <= float(r["top1"]) <= 100 and float(r["images_per_s"]) > 0 for r in table)
    assert (out / "roadmap.png").stat().st_size > 0
    first = load_config(out / "resnet50" / "seed0" / "config.yaml")
    second = load_config(out / "depthwise" / "seed0" / "config.yaml")
    assert (first.opt, first.sched, second.opt, second.sched) == ("sgd", "step", "adamw", "cosine")
    assert first.seed == second.seed and first.data == second.data
    weights = out / "depthwise" / "seed0" / "last.safetensors"
    written = weights.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*argv, "--steps", "depthwise,resnet50"]) == 0  # everything finished: nothing is trained again
    assert weights.stat().st_mtime_ns == written and "epoch 1/1" not in capsys.readouterr().out
    # finished runs of other settings are neither reused nor mixed into the table
    for changed in ([*argv[1:], "--lr", "0.5"], [*base[1:], "--epochs", "2"]):
        assert main([base[0], *changed, "--steps", "kernel_7"]) == 2
        err = capsys.readouterr().err
        assert "holds roadmap runs made with other settings" in err and f"{changed[-2][2:]} (saved" in err
    assert not (out / "kernel_7").exists() and len(list(csv.DictReader((out / "roadmap.csv").open()))) == 2
    assert main([*argv, "--steps", ""]) == 2 and "no roadmap step given" in capsys.readouterr().err


def test_an_interrupted_step_resumes_when_the_roadmap_runs_again(tmp_path, monkeypatch):
    quick = load_config(None, dict(data="synthetic", synthetic_samples=64, synthetic_classes=4, img_size=32, epochs=2,
                                   batch_size=16, progress=False, output=str(tmp_path)))
    original = experiment.train

    def dies_in_the_second_epoch(cfg, label=""):
        trainer = trainer_for(cfg, label)
        die_after_steps(trainer, monkeypatch, trainer.steps_per_epoch + 1)  # in the second epoch
        try:
            return trainer.fit()
        finally:
            trainer.close()

    monkeypatch.setattr(experiment, "train", dies_in_the_second_epoch)
    with pytest.raises(Interrupt):
        experiment.run_roadmap(quick, tmp_path, steps=["depthwise"])
    run = tmp_path / "depthwise" / "seed0"
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 1
    monkeypatch.setattr(experiment, "train", original)
    resumed = []
    monkeypatch.setattr(experiment, "train", lambda cfg, label: resumed.append(cfg.resume) or original(cfg, label))
    table = experiment.run_roadmap(quick, tmp_path, steps=["depthwise"])
    assert resumed == ["auto"] and table[0]["step"] == "depthwise"
    start = json.loads((run / "summary.json").read_text())["start"]
    assert start.startswith("resume auto: continued the saved run from epoch 2")
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert os.path.exists(tmp_path / "roadmap.csv")


def test_a_stopped_roadmap_says_to_run_it_again_not_to_resume(tmp_path, monkeypatch, capsys):
    import signal

    from modernconv.cli import main
    from modernconv.errors import RunStopped

    def stopped(*args, **kwargs):
        raise RunStopped(signal.SIGTERM, "SIGTERM after step 3 (epoch 1)", "continue with --output X --resume")
    monkeypatch.setattr(experiment, "run_roadmap", stopped)
    assert main(["roadmap", "--output", str(tmp_path)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM after step 3 (epoch 1); saved: run the same roadmap command again" in err and "--resume" not in err
