"""Checkpoints from torchvision, Hugging Face transformers and timm's training script load with the source
library's logits (<= 1e-4), each library being the oracle on its own random weights."""
import argparse
import json

import pytest
import torch
import torchvision
from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextV2Config, ConvNextV2ForImageClassification

import modernconv
from modernconv.checkpoint import fit_state_dict
from modernconv.cli import main

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2


def randomise_scales_(model: torch.nn.Module) -> torch.nn.Module:
    """Layer scale and GRN away from their initial values, so a wrong mapping of them shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_scale" in name or "grn" in name or "gamma" in name:
                p.normal_(0, 0.3)
    return model.eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_torchvision_convnext_gives_torchvisions_logits(tmp_path):
    reference = randomise_scales_(torchvision.models.convnext_tiny())
    torch.save(reference.state_dict(), tmp_path / "convnext_tiny-983f1562.pth")
    ours = modernconv.create_model("convnext_tiny", pretrained=tmp_path / "convnext_tiny-983f1562.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        assert 0.1 < expected.abs().mean() and max_diff(ours(x), expected) <= 1e-4


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_torchvision_convnext_layouts_map_completely(size):
    with torch.device("meta"):
        source = getattr(torchvision.models, f"convnext_{size}")().state_dict()
        target = modernconv.create_model(f"convnext_{size}").state_dict()
    _, report = fit_state_dict(source, target)
    assert report.source_format == "torchvision-convnext" and report.clean, report.problems()


HF = {"convnext_atto": (ConvNextConfig, ConvNextForImageClassification),
      "convnextv2_atto": (ConvNextV2Config, ConvNextV2ForImageClassification)}


@pytest.mark.parametrize("name", list(HF))
@pytest.mark.parametrize("safe", [True, False], ids=["model.safetensors", "pytorch_model.bin"])
def test_hugging_face_folders_give_transformers_logits(tmp_path, capsys, name, safe):
    config_cls, model_cls = HF[name]
    labels = ["cat", "dog", "fox"]
    config = config_cls(depths=[2, 2, 6, 2], hidden_sizes=[40, 80, 160, 320], num_labels=3,
                        id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    reference = randomise_scales_(model_cls(config))
    reference.save_pretrained(tmp_path / "hf", safe_serialization=safe)
    ours = modernconv.create_model(name, num_classes=3, pretrained=tmp_path / "hf").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x).logits
        assert 0.1 < expected.abs().mean() and max_diff(ours(x), expected) <= 1e-4
    # convert infers the model from the tensors and keeps the labels of config.json
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "ours.safetensors")]) == 0
    assert f"{name} (from hf-transformers-convnext layout)" in capsys.readouterr().out
    model, info = modernconv.conversion.model_from_checkpoint(tmp_path / "ours.safetensors")
    assert info.class_names == labels
    with torch.no_grad():
        assert max_diff(model(x), expected) <= 1e-4
    # labels that do not name each class are refused, not written wrong (more) or crashing predict (fewer)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    for names in (labels + ["extra"], labels[:2]):
        config["id2label"] = dict(enumerate(names))
        (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
        assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "wrong.safetensors")]) == 2
        assert f"names {len(names)} classes (config.json's id2label) but its classifier has 3" in \
            capsys.readouterr().err
    (tmp_path / "hf" / "config.json").write_text(" " * (17 * 2**20) + "{}")  # 3 M labels would be ~124 MB
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "wrong.safetensors")]) == 2
    assert "config.json is 17 MB; a model's config.json holds at most 16 MB" in capsys.readouterr().err
    assert not (tmp_path / "wrong.safetensors").exists()


def timm_training_checkpoint(path, plain: dict, ema: dict) -> None:
    """What timm's train.py saves: epoch, arch, state_dict, state_dict_ema, optimizer, args (a Namespace)."""
    torch.save({"epoch": 3, "arch": "convnext_atto", "state_dict": plain, "state_dict_ema": ema,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "version": 2,
                "args": argparse.Namespace(model="convnext_atto", lr=0.1, epochs=4), "metric": 12.5}, path)


def test_timm_training_checkpoints_give_their_ema_weights_unless_asked(tmp_path, capsys):
    plain = modernconv.create_model("convnext_atto", num_classes=5).eval()
    ema = modernconv.create_model("convnext_atto", num_classes=5).eval()
    timm_training_checkpoint(tmp_path / "last.pth.tar", plain.state_dict(), ema.state_dict())
    x = torch.randn(1, 3, 32, 32)
    model = modernconv.create_model("convnext_atto", num_classes=5).eval()
    with pytest.warns(UserWarning, match=r"loaded the EMA weights \(state_dict_ema; --no-ema for the plain ones\)"):
        modernconv.load_checkpoint(model, tmp_path / "last.pth.tar")
    with torch.no_grad():
        assert torch.equal(model(x), ema(x))
    with pytest.warns(UserWarning, match=r"loaded the plain weights \(state_dict\), not the EMA ones"):
        modernconv.load_checkpoint(model, tmp_path / "last.pth.tar", use_ema=False)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
    assert main(["convert", str(tmp_path / "last.pth.tar"), str(tmp_path / "plain.safetensors"), "--no-ema"]) == 0
    assert "converted the plain weights (state_dict), not the EMA ones" in capsys.readouterr().err
    again, _ = modernconv.conversion.model_from_checkpoint(tmp_path / "plain.safetensors")
    with torch.no_grad():
        assert torch.equal(again(x), plain(x))


def test_a_folder_without_weights_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"model_type": "convnext"}))
    assert main(["convert", str(tmp_path / "empty"), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "is a folder without a weights file (looked for model.safetensors" in err and err.count("\n") == 1


def saved(tmp_path, name: str, **kwargs):
    model = randomise_scales_(modernconv.create_model(name, **kwargs))
    modernconv.save_checkpoint(model, tmp_path / "ours.safetensors")
    return model


@pytest.mark.parametrize("name, suffix", [("convnext_atto", ".safetensors"), ("convnextv2_atto", ".pth"),
                                          ("convnext_tiny", ".safetensors"), ("convmixer_768_32", ".pth")])
def test_written_in_timms_layout_timm_loads_strictly(tmp_path, capsys, name, suffix):
    import timm
    from safetensors.torch import load_file

    ours = saved(tmp_path, name, num_classes=4)
    out = tmp_path / f"timm{suffix}"
    assert main(["convert", str(tmp_path / "ours.safetensors"), str(out), "--to", "timm"]) == 0
    assert "in timm's layout" in capsys.readouterr().out
    reference = timm.create_model(name, num_classes=4).eval()
    state = load_file(out) if suffix == ".safetensors" else torch.load(out, weights_only=True)
    reference.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_diff(reference(x), ours(x)) <= 1e-4


@pytest.mark.parametrize("name", list(HF))
def test_written_as_a_transformers_folder_from_pretrained_loads_it(tmp_path, name):
    ours = saved(tmp_path, name, num_classes=3)
    assert main(["convert", str(tmp_path / "ours.safetensors"), str(tmp_path / "hf"), "--to", "hf"]) == 0
    reference = HF[name][1].from_pretrained(tmp_path / "hf").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_diff(reference(x).logits, ours(x)) <= 1e-4
    # and back: the folder loads into ours again
    again = modernconv.create_model(name, num_classes=3, pretrained=tmp_path / "hf").eval()
    with torch.no_grad():
        assert max_diff(again(x), ours(x)) <= 1e-4


def test_our_folder_form_reads_back(tmp_path):
    ours = saved(tmp_path, "unireplknet_a", num_classes=3)
    assert main(["convert", str(tmp_path / "ours.safetensors"), str(tmp_path / "folder"), "--reparameterize"]) == 0
    config = json.loads((tmp_path / "folder" / "config.json").read_text())
    assert config["model"] == "unireplknet_a" and config["model_kwargs"] == {"num_classes": 3, "deploy": True}
    model, _ = modernconv.conversion.model_from_checkpoint(tmp_path / "folder")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_diff(model(x), ours(x)) <= 1e-4


@pytest.mark.parametrize("argv, message", [
    (["--to", "timm"], "timm has no unireplknet_a (unireplknet family)"),
    (["--to", "hf"], "transformers has ConvNext and ConvNextV2 image classifiers; unireplknet_a"),
    (["--to", "hf", "--reparameterize"], "hf has no deploy forms"),
])
def test_layouts_a_library_lacks_are_one_line(tmp_path, capsys, argv, message):
    saved(tmp_path, "unireplknet_a")
    assert main(["convert", str(tmp_path / "ours.safetensors"), str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
