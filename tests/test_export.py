"""Export: every family's deploy form round-trips through ONNX (onnxruntime), TorchScript and PT2 within 1e-4 of
the outputs' scale (the largest |output|, or 1)."""
import importlib.util

import onnxruntime
import pytest
import torch

import modernconv
from modernconv.deploy import ExportError, export_model
from modernconv.deploy import export as export_module
from modernconv.cli import main

from helpers import scaled_error

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2

# one small member of each family (a shallow isotropic ConvNeXt and roadmap step keep the test quick)
FAMILIES = {
    "convnext": ("convnext_atto", {}),
    "convnextv2": ("convnextv2_atto", {}),
    "isotropic": ("convnext_isotropic_small", {"depth": 2}),
    "convmixer": ("convmixer_256_8", {}),
    "unireplknet": ("unireplknet_a", {}),
    "roadmap": ("resnet50_to_convnext_t", {"step": "resnet50", "depths": (1, 1, 1, 1)}),
}


def randomised(name: str, **kwargs) -> torch.nn.Module:
    """A model with random BatchNorm statistics and layer-scale / GRN values, so folding has work to do."""
    model = modernconv.create_model(name, num_classes=10, **kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        for pname, p in model.named_parameters():
            if "gamma" in pname or "beta" in pname:
                p.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_round_trips_through_onnxruntime(tmp_path, family):
    name, kwargs = FAMILIES[family]
    model = randomised(name, **kwargs)
    report = export_model(model, tmp_path / "m.onnx", "onnx", (3, 64, 64))
    assert report.dynamic_spatial and len(report.checks) == 3
    assert all(c.max_abs_diff <= c.allowed for c in report.checks)
    # an independent run at a batch size and spatial size the export never saw
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 96, 128)
    with torch.no_grad():
        expected = model(x)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == (5, 10) and scaled_error(torch.from_numpy(got), expected) <= 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no staging folder left behind


@pytest.mark.parametrize("fmt, load", [
    ("torchscript", lambda path: torch.jit.load(str(path))),
    ("pt2", lambda path: torch.export.load(str(path)).module()),
])
def test_torchscript_and_pt2_files_run_at_new_sizes(tmp_path, fmt, load):
    model = randomised("unireplknet_a")  # a 13x13 kernel on a 2x2 map at 64: the exported graph keeps every tap
    export_model(model, tmp_path / "m.bin", fmt, (3, 64, 64))
    x = torch.randn(3, 3, 160, 96)
    with torch.no_grad():
        assert scaled_error(load(tmp_path / "m.bin")(x), model(x)) <= 1e-4


def test_small_inputs_export_with_a_fixed_spatial_size(tmp_path):
    # at 32x32 the last stage of a stride-32 network is 1x1, which torch.export specialises
    report = export_model(randomised("convnext_atto"), tmp_path / "m.pt2", "pt2", (3, 32, 32))
    assert not report.dynamic_spatial and all(c.max_abs_diff <= c.allowed for c in report.checks)
    assert [c.inputs for c in report.checks] == ["random 2x3x32x32", "random 3x3x32x32"]


def test_a_file_that_differs_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    real_runner = export_module.RUNNERS["torchscript"]
    monkeypatch.setitem(export_module.RUNNERS, "torchscript",
                        lambda path: (lambda x, run=real_runner(path): run(x) + 1e-3))
    with pytest.raises(ExportError, match=r"differs from the model by 0\.001 on random 2x3x64x64 inputs"):
        export_model(randomised("convnext_atto"), tmp_path / "m.pt", "torchscript", (3, 64, 64))
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_a_checkpoint_and_checks_on_real_images(tmp_path, capsys):
    model = randomised("convnextv2_atto")
    modernconv.save_checkpoint(model, tmp_path / "w.safetensors")
    code = main(["export", str(tmp_path / "w.safetensors"), str(tmp_path / "m.pt"), "--input-size", "3", "64", "64",
                 "--images", "4"])
    out = capsys.readouterr().out
    assert code == 0 and "torchscript, deploy form, dynamic batch, height and width" in out
    assert "4 real images: max |difference|" in out
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64)
        assert scaled_error(torch.jit.load(str(tmp_path / "m.pt"))(x), model(x)) <= 1e-4


def test_the_allowed_difference_follows_the_outputs_scale(tmp_path, monkeypatch):
    """A network with logits in the tens (a fresh ResNet-50) differs by more than 1e-4 between two correct fp32
    kernels; the check judges it relative to its logits, and still refuses a relative error of 1e-3."""
    model = randomised("resnet50_to_convnext_t", step="resnet50", depths=(1, 1, 1, 1))
    with torch.no_grad():
        scale = model(torch.randn(2, 3, 64, 64)).abs().max().item()
    assert scale > 10
    report = export_model(model, tmp_path / "m.pt", "torchscript", (3, 64, 64))
    assert all(c.allowed >= 1e-3 for c in report.checks)  # 1e-4 x logits of ten and more
    real_runner = export_module.RUNNERS["torchscript"]
    monkeypatch.setitem(export_module.RUNNERS, "torchscript",
                        lambda path: (lambda x, run=real_runner(path): run(x) * (1 + 1e-3)))
    with pytest.raises(ExportError, match=r"allowed .*: atol 0.0001 x the largest \|output\|"):
        export_model(model, tmp_path / "n.pt", "torchscript", (3, 64, 64))
    assert not (tmp_path / "n.pt").exists()


@pytest.mark.parametrize("atol", [float("nan"), -1.0, 0.0, float("inf")])
def test_a_meaningless_atol_is_refused_before_exporting(tmp_path, atol):
    with pytest.raises(ExportError, match="atol must be a positive number"):
        export_model(randomised("convnext_atto"), tmp_path / "m.pt", "torchscript", (3, 32, 32), atol=atol)


@pytest.mark.parametrize("argv, message", [
    (["export", "convnext_tinny", "OUT/m.onnx"], "unknown model 'convnext_tinny'; did you mean convnext_tiny"),
    (["export", "convnext_atto", "OUT/m.bin"], "cannot tell the format from the name"),
    (["export", "convnext_atto", "OUT/m.bin", "--format", "tflite"], "unknown export format 'tflite'"),
    (["export", "convnext_atto", "OUT/m.pt", "--checkpoint", "OUT/u.safetensors"], "unexpected"),
    (["export", "convnext_atto", "OUT/m.pt", "--images", "0", "--input-size", "3", "32", "32"], "--images must be at least 1, got 0"),
])
def test_export_mistakes_are_one_line(tmp_path, capsys, argv, message):
    modernconv.save_checkpoint(modernconv.create_model("unireplknet_a"), tmp_path / "u.safetensors")
    code = main([a.replace("OUT", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.pt").exists()


def test_missing_onnxruntime_is_one_line(tmp_path, capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime"
                        else find_spec(name, *a))
    code = main(["export", "convnext_atto", str(tmp_path / "m.onnx"), "--input-size", "3", "32", "32"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'modernconv[export]'" in err and err.count("\n") == 1



def test_export_images_zero_names_only_its_own_option(tmp_path, capsys):
    from modernconv.cli import main

    assert main(["export", "convnext_atto", str(tmp_path / "m.onnx"), "--images", "0"]) == 2
    err = capsys.readouterr().err
    assert "--images must be at least 1, got 0" in err and "--batch-size" not in err
