"""The effective receptive field: hand checks on conv stacks, the area ratio by hand, real models, and the CLI."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import modernconv
from modernconv.analysis.erf import area_ratios, contribution_map, measure_erf
from modernconv.cli import main
from modernconv.plots import plot_erf


class ConvStack(nn.Module):
    """``depth`` 3x3 convs (padding 1, no bias) with positive weights: every output is positive on positive
    inputs, so the ReLUs pass everything and the map is the stack's footprint."""

    def __init__(self, depth: int, channels: int = 2) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in range(depth)))
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.uniform_(0.5, 1.5)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


def footprint(scores: torch.Tensor) -> tuple[slice, slice]:
    rows, cols = torch.nonzero(scores, as_tuple=True)
    return slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1)


def test_a_single_3x3_conv_sees_exactly_its_footprint_weighted_by_its_kernel():
    model = ConvStack(1)
    images = [torch.rand(2, 2, 9, 11), torch.rand(1, 2, 9, 11)]
    scores, count = contribution_map(model, images)
    assert count == 3 and scores.shape == (9, 11)
    # d(sum over output channels at (4, 5)) / d(input[i, 4 + a, 5 + b]) = sum over o of w[o, i, 1 + a, 1 + b];
    # summed over input channels, the same for every image
    expected = torch.zeros(9, 11, dtype=torch.float64)
    expected[3:6, 4:7] = model.convs[0].weight.detach().double().sum(dim=(0, 1))
    torch.testing.assert_close(scores, expected)
    assert all(p.grad is None for p in model.parameters()) and model.training  # no parameter grads, mode kept
    with pytest.warns(UserWarning, match=r"\(4, 5\) is off the image centre"):
        contribution_map(model, [torch.rand(1, 2, 8, 10)])


def test_a_stack_of_k_convs_sees_2k_plus_1_and_its_area_ratio_grows():
    ratios = []
    for depth in (1, 2, 3, 4):
        torch.manual_seed(depth)
        scores, _ = contribution_map(ConvStack(depth), [torch.rand(2, 2, 15, 15)])
        rows, cols = footprint(scores)
        assert (rows.start, rows.stop, cols.start, cols.stop) == (7 - depth, 8 + depth, 7 - depth, 8 + depth)
        assert (scores[rows, cols] > 0).all()
        ratios.append(area_ratios(scores)[0.99])
    assert ratios[0] == 9 / 225 and all(a < b for a, b in zip(ratios, ratios[1:]))


def test_area_ratio_by_hand_on_the_log_scaled_map():
    scores = np.zeros((5, 5))
    scores[1:4, 1:4] = 9  # log10(9 + 1) = 1: the 8 neighbours of the centre
    scores[2, 2] = 99  # log10(99 + 1) = 2
    scores[[0, 0, 4, 4], [0, 4, 0, 4]] = 9  # the corners: log 1 each; total log 2 + 8 + 4 = 14
    # centred squares hold 2/14, 10/14, 14/14 of the log-scaled map (raw scores would give 99/207 at the centre)
    assert area_ratios(scores, (0.1, 0.2, 0.7, 0.72, 0.99)) == {0.1: 1 / 25, 0.2: 9 / 25, 0.7: 9 / 25,
                                                                 0.72: 1.0, 0.99: 1.0}
    even = np.full((4, 6), 9.0)  # centre (2, 3): squares of 1, 9, then 5x5 clipped to 4 rows (20), then all 24
    assert area_ratios(even, (0.03, 0.3, 0.5, 0.9)) == {0.03: 1 / 24, 0.3: 9 / 24, 0.5: 20 / 24, 0.9: 1.0}
    with pytest.raises(modernconv.errors.ConfigError, match="zero everywhere"):
        area_ratios(np.zeros((3, 3)))
    with pytest.raises(modernconv.errors.ConfigError, match="strictly between 0 and 1"):
        area_ratios(even, (1.0,))


@pytest.mark.parametrize("name", ["convnext_atto", "unireplknet_a"])
def test_a_real_model_gives_a_finite_map_and_ratios_that_grow_with_the_threshold(name, tmp_path):
    model = modernconv.create_model(name)
    result = measure_erf(model, [torch.randn(2, 3, 96, 96)])
    assert result.label == name and result.images == 2 and result.input_size == (96, 96)
    assert np.isfinite(result.scores).all() and result.scores.min() >= 0 and result.scores[40:56, 40:56].sum() > 0
    ratios = list(result.ratios.values())
    assert list(result.ratios) == [0.2, 0.3, 0.5, 0.99] and 0 < ratios[0] and ratios == sorted(ratios)
    assert ratios[-1] <= 1 and result.heat_map.max() == 1
    assert all(p.grad is None for p in model.parameters())
    assert plot_erf([result, result], tmp_path / "two.png").stat().st_size > 1000


def test_cli_writes_png_json_npy_and_refuses_mistakes_in_one_line(tmp_path, capsys):
    out = tmp_path / "erf"
    argv = ["erf", "convnext_atto", "--data", "digits", "--images", "3", "--batch-size", "2", "--img-size", "96",
            "--output", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "area ratio 20%" in printed.out and printed.err == ""  # 96 = 3 x 32: a centred 3x3 map, no note
    summary = json.loads((out / "erf.json").read_text())
    assert summary["images"] == 3 and summary["input_size"] == [96, 96] and list(summary["ratios"]) == [
        "0.2", "0.3", "0.5", "0.99"]
    assert np.load(out / "erf.npy").shape == (96, 96) and (out / "erf.png").stat().st_size > 1000
    saved, elsewhere = str(tmp_path / "m.safetensors"), ["--output", str(tmp_path / "x")]
    modernconv.save_checkpoint(modernconv.create_model("convnext_atto", num_classes=10), saved)
    assert main(["erf", saved, "--images", "1", "--img-size", "96", "--output", str(out), "--force"]) == 0
    assert json.loads((out / "erf.json").read_text())["label"] == f"convnext_atto ({saved})"
    capsys.readouterr()
    mistakes = [(argv, "exists; pass --force"),
                (["erf", "convnext_tinny", *elsewhere], "unknown model 'convnext_tinny'; did you mean"),
                (["erf", str(tmp_path / "no.safetensors"), *elsewhere], "no such checkpoint file"),
                (["erf", saved, "--checkpoint", saved, *elsewhere], "give --checkpoint with a model name"),
                (["erf", "unireplknet_a", "--checkpoint", saved, *elsewhere], "does not fit unireplknet_a"),
                (["erf", "convnext_atto", "--data", str(tmp_path / "none"), *elsewhere], "is not a folder of images"),
                (["erf", "convnext_atto", "--images", "0", *elsewhere], "--images must be at least 1, got 0"),
                (["erf", "convnext_atto", "--img-size", "20", *elsewhere], "needs inputs of at least 32x32")]
    for mistake, message in mistakes:
        assert main(mistake) == 2, mistake
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("metadata", [{"task": "fcmae", "weights": "fcmae-encoder"}, {}])
def test_an_encoder_only_checkpoint_has_the_erf_of_its_whole_model(tmp_path, capsys, metadata):
    """What FCMAE pre-training saves (no head: norm and classifier) is measured, not refused as unable to
    classify, whatever its metadata says: the ERF takes no head, so the map is the whole model's."""
    whole = modernconv.create_model("convnextv2_atto", num_classes=10)
    modernconv.save_checkpoint(whole, tmp_path / "whole.safetensors")
    encoder = {k: v for k, v in whole.state_dict().items() if not k.startswith("head.")}
    modernconv.save_checkpoint(encoder, tmp_path / "encoder.safetensors", metadata={"model": "convnextv2_atto",
                                                                                    **metadata})
    maps = {}
    for name in ("whole", "encoder"):
        assert main(["erf", str(tmp_path / f"{name}.safetensors"), "--images", "2", "--img-size", "96",
                     "--output", str(tmp_path / name)]) == 0
        maps[name] = np.load(tmp_path / name / "erf.npy")
    assert maps["encoder"].shape == (96, 96) and maps["encoder"].sum() > 0
    assert np.array_equal(maps["encoder"], maps["whole"])


def test_a_modality_checkpoint_has_its_networks_erf_at_the_adapter_output_size(tmp_path, capsys):
    from modernconv.modalities import create_modality_model, get_modality

    model = create_modality_model("convnext_atto", "audio", {"clip_seconds": 0.5, "n_mels": 96, "frames": 160},
                                  num_classes=5)
    ckpt, out = str(tmp_path / "audio.safetensors"), tmp_path / "erf"
    modernconv.save_checkpoint(model, ckpt, metadata=get_modality("audio").metadata(model.options))
    assert main(["erf", ckpt, "--images", "2", "--output", str(out)]) == 0
    summary = json.loads((out / "erf.json").read_text())
    assert summary["input_size"] == [96, 160] and summary["images"] == 2  # the log-mel maps: n_mels x frames
    assert summary["label"] == (f"convnext_atto ({ckpt}): its network behind the audio adapter, at the adapter's "
                                "1x96x160 output (digits images)")
    scores = np.load(out / "erf.npy")
    assert scores.shape == (96, 160) and np.isfinite(scores).all() and scores[40:56, 72:88].sum() > 0
    capsys.readouterr()
    assert main(["erf", ckpt, "--img-size", "64", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--img-size does not apply to this audio model" in err and err.count("\n") == 1
