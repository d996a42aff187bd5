"""Export: every family's deploy form round-trips through ONNX (onnxruntime), TorchScript and PT2 within 1e-4 of
the outputs' scale (the largest |output|, or 1)."""
import importlib.util
import json

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


@pytest.mark.parametrize("atol", [float("nan"), -1.0, float("inf")])
def test_a_meaningless_atol_is_refused_before_exporting(tmp_path, atol):
    with pytest.raises(ExportError, match="atol must be a finite number >= 0"):
        export_model(randomised("convnext_atto"), tmp_path / "m.pt", "torchscript", (3, 32, 32), atol=atol)


@pytest.mark.parametrize("atol", ["nan", "-1"])
def test_cli_checks_atol_before_loading_anything(tmp_path, capsys, atol):
    code = main(["export", str(tmp_path / "missing.safetensors"), str(tmp_path / "m.pt"), f"--atol={atol}"])
    err = capsys.readouterr().err  # not "no such checkpoint file": the option is checked first
    assert code == 2 and f"atol must be a finite number >= 0, got {float(atol)}" in err and err.count("\n") == 1


def test_atol_zero_asks_for_identical_outputs(tmp_path, capsys):
    # TorchScript runs the same CPU kernels as PyTorch: its outputs are identical, which atol 0 demands
    assert main(["export", "convnext_atto", str(tmp_path / "m.pt"), "--input-size", "3", "32", "32", "--data", "none",
                 "--atol", "0"]) == 0
    assert "max |difference| 0.00e+00 (allowed 0.00e+00)" in capsys.readouterr().out


@pytest.mark.parametrize("side", ["8192", "100000"])
def test_export_sizes_are_bounded_before_any_work(tmp_path, capsys, monkeypatch, side):
    monkeypatch.setattr(export_module, "reparameterize", lambda model: pytest.fail("the export started"))
    code = main(["export", "convnext_atto", str(tmp_path / "m.pt"), "--input-size", "3", side, side])
    err = capsys.readouterr().err
    assert code == 2 and f"export height and width must be at most 4096, got {side}" in err and err.count("\n") == 1
    with pytest.raises(modernconv.errors.ConfigError, match="at most 4096"):
        export_model(randomised("convnext_atto"), tmp_path / "m.pt", "pt2", (3, 64, int(side)))
    assert not (tmp_path / "m.pt").exists()


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


# raw samples of each modality at small settings: (modality options, the raw sample shape)
MODALITIES = {"audio": ({"clip_seconds": 0.5, "n_mels": 32, "frames": 32}, (8000,)),
              "video": ({"frames": 4, "frame_size": 16}, (4, 3, 16, 16)),
              "pointcloud": ({"points": 256, "view_size": 32}, (256, 3)),
              "timeseries": ({"side": 32, "length": 20, "variables": 3}, (20, 3))}
LOADERS = {"onnx": lambda path: (lambda x, s=onnxruntime.InferenceSession(str(path), providers=[
               "CPUExecutionProvider"]): torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0])),
           "pt2": lambda path: torch.export.load(str(path)).module(),
           "torchscript": lambda path: torch.jit.load(str(path))}


@pytest.mark.parametrize("modality, fmt", [("audio", "onnx"), ("video", "pt2"), ("pointcloud", "torchscript"),
                                           ("timeseries", "onnx")])
def test_a_modality_checkpoint_exports_whole_taking_raw_samples(tmp_path, capsys, modality, fmt):
    from modernconv.modalities import create_modality_model, get_modality

    options, shape = MODALITIES[modality]
    model = create_modality_model("convnext_atto", modality, options, num_classes=5).eval()
    ckpt, out = str(tmp_path / "m.safetensors"), tmp_path / f"m.{'pt' if fmt == 'torchscript' else fmt}"
    modernconv.save_checkpoint(model, ckpt, metadata=get_modality(modality).metadata(model.options))
    assert main(["export", ckpt, str(out)]) == 0
    assert f"dynamic batch ({modality} samples of shape {'x'.join(map(str, shape))})" in capsys.readouterr().out
    raw = torch.rand(4, *shape) * 2 - 1  # a batch size the export never saw
    with torch.no_grad():  # the checkpoint's adapter too (the time series' learned embedding)
        expected, got = model(raw), LOADERS[fmt](out)(raw)
    assert got.shape == (4, 5) and scaled_error(got, expected) <= 1e-4
    for extra in (["--input-size", "3", "32", "32"], ["--data", "digits"]):
        assert main(["export", ckpt, str(tmp_path / "n.pt"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"this {modality} model is exported at the shape of its raw samples, {shape}" in err
        assert err.count("\n") == 1 and not (tmp_path / "n.pt").exists()


@pytest.mark.parametrize("metadata", [{"task": "fcmae", "weights": "fcmae-encoder"}, {}])
def test_an_encoder_only_checkpoint_exports_its_pooled_features_as_timm_would(tmp_path, capsys, metadata):
    """FCMAE pre-training saves the encoder without its head (norm and classifier); whatever the metadata says,
    export writes timm's num_classes=0 form of it instead of refusing a file that "cannot classify"."""
    whole = randomised("convnextv2_atto")
    encoder = {k: v for k, v in whole.state_dict().items() if not k.startswith("head.")}
    ckpt = tmp_path / "encoder.safetensors"
    modernconv.save_checkpoint(encoder, ckpt, metadata={"model": "convnextv2_atto", **metadata})
    assert main(["export", str(ckpt), str(tmp_path / "e.pt"), "--input-size", "3", "64", "64", "--images", "2"]) == 0
    assert "deploy form of the encoder's pooled features, num_classes=0" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="encoder-only checkpoint"):
        features = modernconv.create_model("convnextv2_atto", num_classes=0, pretrained=ckpt).eval()
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        got = torch.jit.load(str(tmp_path / "e.pt"))(x)
        assert got.shape == (2, 320) and scaled_error(got, features(x)) <= 1e-4


def test_a_users_onnxruntime_loop_needs_only_the_file_and_gives_predicts_answers(tmp_path, capsys):
    """The newcomer's path: train on a folder, evaluate it, export (checked on the folder's own images), then run
    the ONNX file as a user would, with only what it carries (class names, preprocessing): predict's classes and
    scores."""
    import onnx
    from PIL import Image
    from test_train import QUICK, make_folder

    data, run = make_folder(tmp_path / "data", per_class=4), tmp_path / "run"
    options = {**QUICK, "data": str(data), "epochs": 1, "batch_size": 4}
    assert main(["train", "--output", str(run), *[f"--{k.replace('_', '-')}={v}" for k, v in options.items()]]) == 0
    checkpoint = run / "best.safetensors"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    logged = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert evaluated["top1"] == pytest.approx(logged["val_top1"])  # eval sees the run's held-out images
    assert main(["export", str(checkpoint), str(tmp_path / "m.onnx"), "--data", str(data), "--images", "4"]) == 0
    assert "4 real images" in capsys.readouterr().out
    files = sorted(str(p) for p in (data / "val").rglob("*.png"))
    assert main(["predict", "--checkpoint", str(checkpoint), *files, "--json", "--topk", "2"]) == 0
    expected = json.loads(capsys.readouterr().out)

    carried = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert carried["model"] == "convnext_atto" and carried["output"] == "logits"
    names = json.loads(carried["class_names"])
    transform = modernconv.DataConfig.from_metadata(carried, modernconv.DataConfig()).eval_transform()
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch" and session.get_outputs()[0].shape[0] == "batch"
    for path, want in zip(files, expected):
        image = transform(Image.open(path).convert("RGB"))[None].numpy()
        scores = torch.from_numpy(session.run(None, {"images": image})[0]).softmax(1)[0]
        top = scores.topk(2)
        assert [names[i] for i in top.indices.tolist()] == [t["class"] for t in want["top"]]
        assert top.values.tolist() == pytest.approx([t["probability"] for t in want["top"]], abs=1e-5)


@pytest.mark.parametrize("fmt, suffix", [("torchscript", ".pt"), ("pt2", ".pt2")])
def test_torchscript_and_pt2_files_carry_their_contract_beside_them(tmp_path, fmt, suffix):
    model = randomised("convnext_atto")
    model.class_names = [f"c{i}" for i in range(10)]
    export_model(model, tmp_path / f"m{suffix}", fmt, (3, 64, 64))
    carried = json.loads((tmp_path / f"m{suffix}.json").read_text())
    assert carried["class_names"] == model.class_names and carried["model"] == "convnext_atto"
    assert carried["preprocessing"]["input_size"] == list(model.data_config.input_size)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m{suffix}", f"m{suffix}.json"]
