"""The command line: output formats, exit codes and one-line errors for user mistakes."""
import json
import subprocess
import sys

import pytest
import torch

import modernconv
from helpers import reference, scaled_error
from modernconv.cli import main
from test_model_table import convmixer_params


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_models_lists_and_filters(capsys):
    code, out, _ = run(capsys, "models", "convnextv2_*")
    assert code == 0 and out.split() == modernconv.list_models("convnextv2_*")
    code, _, err = run(capsys, "models", "vit*")
    assert code == 2 and err.count("\n") == 1


def test_info_json_matches_the_reference_table(capsys):
    code, out, _ = run(capsys, "info", "convnext_tiny", "--json")
    info, ref = json.loads(out), reference("convnext_tiny")
    assert code == 0 and info["params"] == int(ref["params"]) and info["trainable_params"] == int(ref["params"])
    assert abs(info["gmacs"] - float(ref["gmacs_224"])) / float(ref["gmacs_224"]) < 0.01
    assert [f["channels"] for f in info["features"]] == [96, 192, 384, 768]
    assert [f["reduction"] for f in info["features"]] == [4, 8, 16, 32]


def test_info_input_size_changes_macs_and_channels(capsys):
    _, out, _ = run(capsys, "info", "convnext_tiny", "--json", "--input-size", "1", "448", "448")
    info = json.loads(out)
    assert info["input_size"] == [1, 448, 448]
    assert abs(info["gmacs"] / float(reference("convnext_tiny")["gmacs_224"]) - 4) < 0.05
    _, out, _ = run(capsys, "info", "convmixer_256_8")
    assert f"params           {convmixer_params(256, 8, 5, 2, 10):,}" in out


def test_bench_reports_throughput_and_memory(capsys):
    code, out, _ = run(capsys, "bench", "convnext_atto", "--input-size", "3", "64", "64", "--batch-size", "2",
                       "--warmup", "1", "--steps", "2", "--channels-last", "--json")
    result = json.loads(out)
    assert code == 0 and result["images_per_s"] > 0 and result["peak_memory_mb"] > 0
    code, out, _ = run(capsys, "bench", "convmixer_256_8", "--mode", "train", "--dtype", "bf16", "--batch-size", "2",
                       "--warmup", "0", "--steps", "1")
    assert code == 0 and "images/s" in out


def test_convert_then_use(capsys, tmp_path):
    model = modernconv.create_model("convnext_atto", num_classes=4)
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "src.pth")
    code, out, _ = run(capsys, "convert", str(tmp_path / "src.pth"), str(tmp_path / "dst.safetensors"))
    assert code == 0 and "convnext_atto" in out
    code, out, err = run(capsys, "bench", "convnext_atto", "--checkpoint", str(tmp_path / "dst.safetensors"),
                         "--input-size", "3", "32", "32", "--batch-size", "1", "--steps", "1", "--warmup", "0")
    assert code == 0 and "images/s" in out
    assert err.startswith("modernconv: note:") and "classifier not loaded" in err


@pytest.mark.parametrize("argv, message", [
    (["info", "convnext_tinny"], "unknown model 'convnext_tinny'; did you mean convnext_tiny"),
    (["info", "convmixer_768_32", "--input-size", "3", "5", "5"], "needs inputs of at least 7x7"),
    (["info", "convnext_tiny", "--input-size", "3", "x", "224"], "--input-size takes three integers"),
    (["bench", "convnext_atto", "--checkpoint", "/no/such/file.pth"], "does not exist"),
    (["bench", "convnext_atto", "--batch-size", "0"], "--batch-size"),
    (["convert", "/no/such.pth", "out.safetensors"], "does not exist"),
])
def test_user_mistakes_give_one_line_and_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_corrupt_checkpoint_from_a_real_process(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"garbage" * 3)
    proc = subprocess.run([sys.executable, "-m", "modernconv", "convert", str(tmp_path / "bad.safetensors"),
                           str(tmp_path / "out.safetensors")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("modernconv: error:") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.isa_sensitive
def test_reparameterize_flag_on_info_convert_and_bench(capsys, tmp_path):
    _, out, _ = run(capsys, "info", "unireplknet_a", "--json", "--reparameterize")
    assert json.loads(out)["params"] == int(reference("unireplknet_a", "deploy")["params"])
    model = modernconv.create_model("unireplknet_a").eval()
    modernconv.save_checkpoint(model, tmp_path / "train.safetensors")
    code, out, _ = run(capsys, "convert", str(tmp_path / "train.safetensors"), str(tmp_path / "deploy.safetensors"),
                       "--reparameterize")
    assert code == 0 and "unireplknet_a deploy form" in out
    deploy = modernconv.create_model("unireplknet_a", deploy=True, pretrained=tmp_path / "deploy.safetensors").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert scaled_error(deploy(x), model(x)) <= 1e-5  # as tests/test_reparam.py: 1e-5 of the outputs' scale
    code, out, _ = run(capsys, "convert", str(tmp_path / "deploy.safetensors"), str(tmp_path / "again.safetensors"))
    assert code == 0 and "unireplknet_a" in out  # a deploy-form file is recognised as such
    code, out, _ = run(capsys, "bench", "unireplknet_a", "--reparameterize", "--input-size", "3", "64", "64",
                       "--batch-size", "2", "--steps", "1", "--warmup", "0")
    assert code == 0 and "images/s" in out


def test_json_reports_are_valid_json_whatever_the_numbers():
    from modernconv.cli.common import json_text

    text = json_text({"loss": float("nan"), "top1": 50.0, "ap": [float("inf"), 1.0], "n": 3})
    assert json.loads(text) == {"loss": None, "top1": 50.0, "ap": [None, 1.0], "n": 3} and "NaN" not in text
