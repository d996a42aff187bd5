"""Reading, converting, fitting and saving checkpoints."""
import re
import warnings

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import modernconv
from helpers import randomize_
from modernconv.checkpoint import read_checkpoint
from modernconv.conversion import convert_checkpoint
from modernconv.checkpoint.load import adapt_input_conv
from modernconv.errors import CheckpointError


def _model(name="convnext_atto", **kwargs):
    model = modernconv.create_model(name, **kwargs).eval()
    randomize_(model)
    return model


def _same_outputs(a, b, x):
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def authors_convnext_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ConvNeXt V1/V2 state dict in the authors' release layout, written out from FACTS.md."""
    out = {}
    for key, value in state.items():
        new = key
        new = re.sub(r"^stem\.", "downsample_layers.0.", new)
        new = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", new)
        new = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", r"stages.\1.\2.", new)
        new = new.replace(".conv_dw.", ".dwconv.").replace(".mlp.fc1.", ".pwconv1.").replace(".mlp.fc2.", ".pwconv2.")
        if ".mlp.grn." in new:
            new = new.replace(".mlp.grn.weight", ".grn.gamma").replace(".mlp.grn.bias", ".grn.beta")
            value = value.reshape(1, 1, 1, -1)
        new = new.replace("head.norm.", "norm.").replace("head.fc.", "head.")
        out[new] = value
    return out


@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto"])
def test_authors_release_layout_loads(name, tmp_path):
    model = _model(name)
    authors = authors_convnext_layout(model.state_dict())
    assert {"downsample_layers.0.0.weight", "downsample_layers.1.0.weight", "stages.0.0.dwconv.weight",
            "stages.3.1.pwconv2.weight", "norm.weight", "head.weight"} <= set(authors)
    if name.startswith("convnextv2"):
        assert authors["stages.0.0.grn.gamma"].shape == (1, 1, 1, 160)
    else:
        assert "stages.0.0.gamma" in authors
    torch.save({"model": authors, "epoch": 299}, tmp_path / "release.pth")
    again = modernconv.create_model(name, pretrained=tmp_path / "release.pth")
    assert _same_outputs(model, again, torch.randn(2, 3, 64, 64))


def test_authors_isotropic_layout_loads(tmp_path):
    model = _model("convnext_isotropic_small")
    authors = {k.replace(".conv_dw.", ".dwconv.").replace(".mlp.fc1.", ".pwconv1.").replace(".mlp.fc2.", ".pwconv2.")
               .replace("head.norm.", "norm.").replace("head.fc.", "head."): v for k, v in model.state_dict().items()}
    torch.save({"model": authors}, tmp_path / "iso.pth")
    again = modernconv.create_model("convnext_isotropic_small", pretrained=tmp_path / "iso.pth")
    assert _same_outputs(model, again, torch.randn(1, 3, 32, 32))


def test_authors_convmixer_sequential_layout_loads(tmp_path):
    model = _model("convmixer_256_8")
    seq = {}
    for key, value in model.state_dict().items():
        if key.startswith("stem."):
            new = key[len("stem."):]
        elif key.startswith("head.fc."):
            new = f"{3 + 8 + 2}.{key[len('head.fc.'):]}"
        else:
            i, part, rest = re.match(r"blocks\.(\d+)\.(\w+)\.(.*)", key).groups()
            inner = {"conv_dw": "0.fn.0", "norm_dw": "0.fn.2", "conv_pw": "1", "norm_pw": "3"}[part]
            new = f"{3 + int(i)}.{inner}.{rest}"
        seq[new] = value
    torch.save(seq, tmp_path / "convmixer.pth")
    again = modernconv.create_model("convmixer_256_8", pretrained=tmp_path / "convmixer.pth")
    assert _same_outputs(model, again, torch.randn(2, 3, 32, 32))


def test_wrappers_and_prefixes_are_stripped(tmp_path):
    model = _model()
    wrapped = {"state_dict": {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "ddp.pt")
    again = modernconv.create_model("convnext_atto", pretrained=tmp_path / "ddp.pt")
    assert _same_outputs(model, again, torch.randn(1, 3, 32, 32))


def test_new_classes_load_everything_but_the_classifier(tmp_path):
    model = _model()
    path = modernconv.save_checkpoint(model, tmp_path / "m.safetensors")
    with pytest.warns(UserWarning, match="classifier not loaded"):
        tuned = modernconv.create_model("convnext_atto", num_classes=10, pretrained=path)
    ours, theirs = tuned.state_dict(), model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if not k.startswith("head.fc."))
    assert tuned.head.fc.weight.shape == (10, 320)
    with pytest.warns(UserWarning, match="classifier not loaded"):
        features = modernconv.create_model("convnext_atto", num_classes=0, pretrained=path)
    assert features(torch.randn(1, 3, 32, 32)).shape == (1, 320)


@pytest.mark.parametrize("in_chans", [1, 6])
def test_three_channel_checkpoint_adapts_the_stem(in_chans, tmp_path):
    model = _model()
    path = modernconv.save_checkpoint(model, tmp_path / "m.safetensors")
    with pytest.warns(UserWarning, match=f"adapted the first conv stem.0.weight from 3 to {in_chans}"):
        other = modernconv.create_model("convnext_atto", in_chans=in_chans, pretrained=path).eval()
    gray = torch.randn(2, 1, 64, 64)  # an image whose channels are all equal gets the same response
    with torch.no_grad():
        assert torch.allclose(model(gray.expand(-1, 3, -1, -1)), other(gray.expand(-1, in_chans, -1, -1)), atol=1e-4)


@pytest.mark.parametrize("in_chans", [1, 2, 4, 5, 6, 9])
def test_adapt_input_conv_matches_timm(in_chans):
    from timm.models._manipulate import adapt_input_conv as timm_adapt
    w = torch.randn(8, 3, 4, 4)
    assert torch.allclose(adapt_input_conv(w, in_chans), timm_adapt(in_chans, w.clone()))


def test_mismatch_lists_missing_unexpected_and_misshaped(tmp_path):
    path = modernconv.save_checkpoint(modernconv.create_model("convnext_atto"), tmp_path / "atto.safetensors")
    with pytest.raises(CheckpointError) as err:
        modernconv.create_model("convnext_nano", pretrained=path)
    text = str(err.value)
    assert "missing: stages.2.blocks.6" in text and "mis-shaped: stem.0.weight: (40, 3, 4, 4) vs (80, 3, 4, 4)" in text
    with pytest.raises(CheckpointError, match="unexpected: .*gamma"):
        modernconv.create_model("convnextv2_atto", pretrained=path)
    report = modernconv.load_checkpoint(modernconv.create_model("convnextv2_atto"), path, strict=False)
    assert report.unexpected and report.missing and not report.mismatched


def test_missing_and_corrupt_files(tmp_path):
    model = modernconv.create_model("convnext_atto")
    with pytest.raises(CheckpointError, match="does not exist"):
        modernconv.load_checkpoint(model, tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        modernconv.load_checkpoint(model, tmp_path / "junk.pth")
    good = modernconv.save_checkpoint(model, tmp_path / "good.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt or unreadable safetensors"):
        modernconv.load_checkpoint(model, tmp_path / "cut.safetensors")
    torch.save({"optimizer": {"lr": 0.1}}, tmp_path / "nostate.pth")
    with pytest.raises(CheckpointError, match="no state dict found"):
        modernconv.load_checkpoint(model, tmp_path / "nostate.pth")


class Payload:
    """Anything that is not a tensor or a plain container."""


def test_pickled_code_is_refused(tmp_path):
    torch.save({"model": {"x": torch.zeros(1)}, "extra": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused to unpickle test_checkpoint.Payload"):
        read_checkpoint(tmp_path / "evil.pth")


def test_training_checkpoints_with_saved_args_load(tmp_path):
    import argparse
    model = _model()
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(lr=4e-3, model="convnext_atto")},
               tmp_path / "train.pth")
    again = modernconv.create_model("convnext_atto", pretrained=tmp_path / "train.pth")
    assert _same_outputs(model, again, torch.randn(1, 3, 32, 32))


def test_safetensors_detected_by_content(tmp_path):
    model = _model()
    path = modernconv.save_checkpoint(model, tmp_path / "weights.bin")
    state, meta = read_checkpoint(path)
    assert meta["model"] == "convnext_atto" and meta["format"] == "modernconv"
    assert torch.equal(state["stem.0.weight"], model.state_dict()["stem.0.weight"])


def test_save_is_atomic(tmp_path, monkeypatch):
    model = _model()
    path = modernconv.save_checkpoint(model, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("modernconv.checkpoint.io.save_file", broken)
    with pytest.raises(OSError):
        modernconv.save_checkpoint(modernconv.create_model("convnext_atto"), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_convert_infers_the_model_and_keeps_options(tmp_path):
    model = _model("convnextv2_atto", num_classes=10)
    torch.save({"model": authors_convnext_layout(model.state_dict())}, tmp_path / "release.pth")
    name, report = convert_checkpoint(tmp_path / "release.pth", tmp_path / "ours.safetensors")
    assert name == "convnextv2_atto" and report.source_format == "convnext-official"
    _, meta = read_checkpoint(tmp_path / "ours.safetensors")
    assert meta["model"] == "convnextv2_atto" and meta["model_kwargs"] == '{"num_classes": 10}'
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = modernconv.create_model("convnextv2_atto", num_classes=10, pretrained=tmp_path / "ours.safetensors")
    assert _same_outputs(model, again, torch.randn(1, 3, 32, 32))


def test_convert_rejects_unknown_layouts(tmp_path):
    save_file({"foo.weight": torch.zeros(2, 2)}, tmp_path / "x.safetensors")
    with pytest.raises(CheckpointError, match="matches no registered model"):
        convert_checkpoint(tmp_path / "x.safetensors", tmp_path / "y.safetensors")


def test_load_model_rebuilds_your_own_checkpoint_whole(tmp_path):
    from modernconv.tasks import train
    from modernconv.config import load_config

    result = train(load_config(None, dict(model="convnext_atto", data="synthetic", synthetic_samples=32,
                                          synthetic_classes=3, img_size=32, epochs=1, batch_size=16,
                                          progress=False, output=str(tmp_path / "run"))))
    path = result.run_dir / "best.safetensors"
    model = modernconv.load_model(path)
    assert model.num_classes == 3 and len(model.class_names) == 3 and model.task == "classification"
    assert not model.training and model.preprocessing.input_size[-1] == 32
    x = model.preprocessing.eval_transform()(Image.new("RGB", (40, 40), (10, 200, 30)))[None]
    with torch.no_grad():
        assert model(x).shape == (1, 3)
    with pytest.warns(UserWarning, match="own 3-class classifier build the model with num_classes=3, or rebuild a "
                                         r"modernconv checkpoint whole with modernconv.load_model\(path\)"):
        modernconv.create_model("convnext_atto", pretrained=str(path))  # 1000 classes asked: says how to get 3


def test_a_reset_classifier_is_what_the_saved_file_rebuilds(tmp_path):
    model = modernconv.create_model("convnext_atto", num_classes=10)
    model.reset_classifier(5, global_pool="max")
    randomize_(model)
    modernconv.save_checkpoint(model.eval(), tmp_path / "five.safetensors")
    again = modernconv.load_model(tmp_path / "five.safetensors")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert again.num_classes == 5 and torch.allclose(again(x), model(x), atol=1e-5)


def test_a_saved_backbone_or_pruned_model_is_what_the_file_rebuilds(tmp_path):
    x = torch.randn(2, 3, 64, 64)
    backbone = modernconv.create_model("convnext_atto", features_only=True, out_indices=(1, 2, 3), out_norms=True)
    randomize_(backbone)  # the maps' norms too
    modernconv.save_checkpoint(backbone.eval(), tmp_path / "backbone.safetensors")
    by_name = modernconv.create_model("convnext_atto", features_only=True, out_indices=(1, 2, 3), out_norms=True,
                                      pretrained=tmp_path / "backbone.safetensors").eval()
    whole = modernconv.load_model(tmp_path / "backbone.safetensors")
    with torch.no_grad():
        for again in (by_name, whole):
            assert all(torch.equal(a, b) for a, b in zip(backbone(x), again(x)))
    pruned = modernconv.create_model("unireplknet_a", num_classes=7)
    pruned.prune_intermediate_layers(indices=(0, 1))
    randomize_(pruned)
    modernconv.save_checkpoint(pruned.eval(), tmp_path / "pruned.safetensors")
    again = modernconv.load_model(tmp_path / "pruned.safetensors")
    with torch.no_grad():
        assert again(x).shape == (2, 80, 8, 8) and torch.equal(again(x), pruned(x))


def test_a_file_whose_class_names_do_not_match_its_classifier_is_refused(tmp_path):
    model = modernconv.create_model("convnext_atto", num_classes=10)
    modernconv.save_checkpoint(model, tmp_path / "five.safetensors", metadata={"class_names": list("abcde")})
    with pytest.raises(CheckpointError, match="names 5 classes but its classifier has 10"):
        modernconv.load_model(tmp_path / "five.safetensors")  # predict's IndexError before
