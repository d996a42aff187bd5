"""The registry of released weights: name.tag -> file, licence and preprocessing; found in a local cache, never
downloaded; hash-checked against the published hash or the one recorded at first use."""
import json
import warnings

import pytest
import timm
import torch

import modernconv
from helpers import randomize_
from modernconv.cli import main
from modernconv.errors import CheckpointError, ConfigError, ModelNotFoundError
from modernconv.models.released import find_released, released_weights


def test_the_table_names_our_models_their_licences_and_preprocessing():
    table = released_weights()
    assert len(table) >= 80 and {r.name for r in table.values()} <= set(modernconv.list_models())
    v2 = [r for r in table.values() if r.name.startswith("convnextv2")]
    assert v2 and all(r.license == "cc-by-nc-4.0" and r.noncommercial for r in v2)  # the V2 / FCMAE weights
    assert not find_released("convnext_tiny", "fb_in1k").noncommercial
    fcmae = find_released("convnextv2_tiny", "fcmae")
    assert fcmae.num_classes == 0 and fcmae.file == "convnextv2_tiny_1k_224_fcmae.pt"
    tv = find_released("convnext_tiny", "tv_in1k")
    assert tv.sha256 == "983f1562" and tv.interpolation == "bilinear" and tv.crop_pct == pytest.approx(224 / 236, 1e-3)
    assert find_released("convnextv2_huge", "fcmae_ft_in22k_in1k_512").input_size == (3, 512, 512)


def test_a_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        modernconv.create_model("convnextv2_atto.fcmae_ft_in1k", pretrained=True)
    message = str(err.value)
    assert "nothing is downloaded" in message and "convnextv2_atto_1k_224_ema.pt" in message
    assert str(tmp_path) in message and "non-commercial" in message and "\n" not in message
    with pytest.raises(ModelNotFoundError, match="has: d2_in1k"):
        modernconv.create_model("convnext_atto.no_such_tag", pretrained=True)
    with pytest.raises(ConfigError, match="no released weights are known for unireplknet_a"):
        modernconv.create_model("unireplknet_a", pretrained=True)


def test_a_cached_release_loads_with_its_classes_preprocessing_and_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    reference = timm.create_model("convnextv2_atto").eval()
    randomize_(reference)
    torch.save(reference.state_dict(), tmp_path / "convnextv2_atto_1k_224_ema.pt")  # the published file name
    with pytest.warns(UserWarning, match="first use of convnextv2_atto_1k_224_ema.pt, sha256 [0-9a-f]{64}"):
        model = modernconv.create_model("convnextv2_atto.fcmae_ft_in1k", pretrained=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() <= 1e-4
    assert model.num_classes == 1000 and model.data_config.crop_pct == 0.875
    assert json.loads((tmp_path / "hashes.json").read_text()).keys() == {"convnextv2_atto.fcmae_ft_in1k"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        modernconv.create_model("convnextv2_atto", pretrained=True, num_classes=10)  # the default tag, new classes
    said = [str(w.message) for w in caught]
    assert any("classifier not loaded" in m for m in said) and not any("first use" in m for m in said)
    with open(tmp_path / "convnextv2_atto_1k_224_ema.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(CheckpointError, match="the file changed"):
        modernconv.create_model("convnextv2_atto.fcmae_ft_in1k", pretrained=True)


def test_published_hash_prefixes_are_checked_and_hub_snapshots_are_found(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    torch.save(torchvision.models.convnext_tiny().state_dict(), tmp_path / "convnext_tiny-983f1562.pth")
    with pytest.raises(CheckpointError, match="is not the published 983f1562"):
        modernconv.create_model("convnext_tiny.tv_in1k", pretrained=True)
    snapshot = tmp_path / "elsewhere" / "convnext_atto.d2_in1k"
    snapshot.mkdir(parents=True)
    modernconv.save_checkpoint(modernconv.create_model("convnext_atto"), snapshot / "model.safetensors")
    with pytest.warns(UserWarning, match="first use"):  # timm's cache_dir argument names the cache
        modernconv.create_model("convnext_atto.d2_in1k", pretrained=True, cache_dir=tmp_path / "elsewhere")


def test_a_wrong_file_under_a_release_name_is_refused_and_leaves_no_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    published = tmp_path / "convnextv2_atto_1k_224_ema.pt"
    wrong = [(timm.create_model("convnext_atto"), "does not fit convnextv2_atto.fcmae_ft_in1k .*missing: .*grn"),
             (timm.create_model("convnextv2_atto", num_classes=10), "holds a classifier of 10 classes where "
                                                                     "convnextv2_atto.fcmae_ft_in1k has a classifier "
                                                                     "of 1000 classes")]
    for model, why in wrong:  # another model's file; the right model with 10 classes (not a random 1000-class head)
        torch.save(model.state_dict(), published)
        with pytest.raises(CheckpointError, match=why) as err:
            modernconv.create_model("convnextv2_atto.fcmae_ft_in1k", pretrained=True)
        assert str(published) in str(err.value) and "\n" not in str(err.value)
        assert not (tmp_path / "hashes.json").exists()
    torch.save(timm.create_model("convnextv2_atto").state_dict(), published)  # the right file now works
    with pytest.warns(UserWarning, match="first use"):
        modernconv.create_model("convnextv2_atto.fcmae_ft_in1k", pretrained=True)
    torch.save(timm.create_model("convnextv2_atto").state_dict(), tmp_path / "convnextv2_atto_1k_224_fcmae.pt")
    with pytest.raises(CheckpointError, match="a classifier of 1000 classes where convnextv2_atto.fcmae has no "):
        modernconv.create_model("convnextv2_atto.fcmae", pretrained=True)  # the encoder release has no classifier
    assert json.loads((tmp_path / "hashes.json").read_text()).keys() == {"convnextv2_atto.fcmae_ft_in1k"}


@pytest.mark.parametrize("content, problem", [("[]", "holds a JSON list"), ('{"x.y": 1}', "records 1 for x.y"),
                                              (b"\xff\xfe\x00", "is not text"), ("{", "is not valid JSON"),
                                              (None, "is a folder")])
def test_a_malformed_hashes_file_is_one_line_saying_to_delete_it(content, problem, tmp_path, monkeypatch):
    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "convnext_atto_d2-01bb0f51.pth")
    record = tmp_path / "hashes.json"
    if content is None:
        record.mkdir()
    else:
        record.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CheckpointError) as err:
        modernconv.create_model("convnext_atto.d2_in1k", pretrained=True)
    message = str(err.value)
    assert message.startswith(f"{record} {problem}") and "delete it" in message and "\n" not in message


def test_a_read_only_cache_verifies_without_recording_and_says_so(tmp_path, monkeypatch):
    import modernconv.models.released as released

    def read_only(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    monkeypatch.setattr(released, "atomic_write_text", read_only)  # what a read-only folder does (even for root)
    reference = timm.create_model("convnext_atto").eval()
    published = "convnext_atto_d2-01bb0f51.pth"
    torch.save(reference.state_dict(), tmp_path / published)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = modernconv.create_model("convnext_atto.d2_in1k", pretrained=True).eval()
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and "not recorded: " in said[0] and "is not writable" in said[0] and "\n" not in said[0]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    assert not (tmp_path / "hashes.json").exists()
    torch.save(timm.create_model("convnext_atto", num_classes=10).state_dict(), tmp_path / published)
    with pytest.raises(CheckpointError, match="holds a classifier of 10 classes"):  # still verified
        modernconv.create_model("convnext_atto.d2_in1k", pretrained=True)


def test_a_tag_without_weights_sets_the_release_preprocessing(capsys, tmp_path, monkeypatch):
    model = modernconv.create_model("convnext_tiny.fb_in22k_ft_in1k_384")
    assert model.data_config.input_size == (3, 384, 384) and model.data_config.crop_pct == 1.0
    assert timm.data.resolve_model_data_config(model)["input_size"] == (3, 384, 384)
    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    (tmp_path / "convnextv2_atto_1k_224_fcmae.pt").write_bytes(b"x")
    assert main(["weights", "convnextv2_atto*"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[:5] == ["NAME.TAG", "CLASSES", "INPUT", "LICENCE", "IN"]  # a header
    fcmae = next(line for line in out.splitlines() if line.startswith("convnextv2_atto.fcmae "))
    assert " yes " in fcmae and "cc-by-nc-4.0" in fcmae
    assert all(" no " in line for line in out.splitlines()[2:] if line.startswith("convnextv2_atto.fcmae_ft"))
    assert main(["weights", "nothing*"]) == 2


def test_init_takes_a_released_name_through_the_cache(tmp_path, monkeypatch, capsys):
    from modernconv.cli import main
    from modernconv.config import load_config

    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))
    cfg = load_config(None, {"init": "convnextv2_atto.fcmae_ft_in1k"})
    with pytest.raises(CheckpointError, match="not in the weights cache and nothing is downloaded"):
        cfg.init_file()
    torch.save(timm.create_model("convnextv2_atto").state_dict(), tmp_path / "convnextv2_atto_1k_224_ema.pt")
    with pytest.warns(UserWarning, match="first use"):
        assert cfg.init_file() == str(tmp_path / "convnextv2_atto_1k_224_ema.pt")
    assert load_config(None, {"init": "missing.pth"}).init_file() == "missing.pth"  # a file: loading says
    run = ["train", "--model", "convnextv2_atto", "--init", "convnextv2_atto.fcmae_ft_in1k", "--epochs", "1",
           "--img-size", "32", "--batch-size", "32", "--output", str(tmp_path / "run"), "--progress", "false"]
    assert main(run) == 0  # fine-tuned from the release: its classifier replaced by the digits' 10 classes
    assert "classifier not loaded" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["export", "convnext_atto.d2_in1k", "OUT/m.onnx"], ["erf", "convnext_atto.d2_in1k",
                                  "--output", "OUT/erf"], ["bench", "convnext_atto.d2_in1k"]])
def test_a_released_name_on_the_command_line_means_its_weights_never_random_ones(argv, tmp_path, monkeypatch,
                                                                                 capsys):
    from modernconv.cli import main

    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path / "cache"))
    assert main([a.replace("OUT", str(tmp_path)) for a in argv]) == 2  # not in the cache: said, nothing built
    assert "not in the weights cache" in capsys.readouterr().err
    assert main(["train", "--model", "convnext_atto.d2_in1k"]) == 2
    assert "give --model convnext_atto --init convnext_atto.d2_in1k" in capsys.readouterr().err
