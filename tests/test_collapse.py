"""The feature-collapse score: against its definition, on known cases, per block of real models, and the CLI."""
import csv

import pytest
import torch
import torch.nn.functional as F

import modernconv
from helpers import randomize_
from modernconv.analysis.collapse import collapse_curve, collapse_score, write_collapse_csv
from modernconv.plots import plot_collapse
from modernconv.cli import main


def by_definition(activation: torch.Tensor) -> torch.Tensor:
    """Mean over all C*C ordered channel pairs of (1 - cos) / 2, per image (N, H, W, C) -> (N,)."""
    x = activation.flatten(1, 2).transpose(1, 2).double()  # (N, C, HW)
    cos = F.cosine_similarity(x[:, :, None], x[:, None, :], dim=-1)  # (N, C, C)
    return ((1 - cos) / 2).mean(dim=(1, 2))


def test_score_matches_the_pairwise_definition():
    activation = torch.randn(3, 5, 7, 24) + torch.linspace(-1, 2, 24)
    activation[1, ..., 4] = 0  # a dead channel counts as orthogonal to everything
    torch.testing.assert_close(collapse_score(activation).double(), by_definition(activation), rtol=1e-5, atol=1e-6)


def test_known_cases_collapsed_and_orthogonal():
    pattern = torch.rand(2, 6, 6, 1)
    assert collapse_score(pattern * torch.rand(16)).abs().max() < 1e-6  # channels equal up to scale: collapsed
    one_hot = torch.eye(36)[:, :9].view(1, 6, 6, 9)  # every channel lights a different pixel
    torch.testing.assert_close(collapse_score(one_hot), torch.tensor([(1 - 1 / 9) / 2]))


@pytest.mark.parametrize("name, blocks", [("convnext_atto", 12), ("convnextv2_atto", 12), ("unireplknet_a", 12)])
def test_curve_has_one_score_per_block_in_depth_order(name, blocks):
    model = modernconv.create_model(name).train()
    randomize_(model)
    curve = collapse_curve(model, [torch.randn(2, 3, 64, 64), torch.randn(3, 3, 64, 64)], label=name)
    assert len(curve.score) == len(curve.layers) == blocks and curve.depth[0] == 0 and curve.depth[-1] == 1
    assert curve.layers[0] == "stages.0.blocks.0" and curve.layers[-1] == "stages.3.blocks.1"
    assert all(0 < s <= 0.5 + 1e-6 for s in curve.score) and model.training  # mode restored


def test_curve_measures_the_expansion_activation_after_gelu_averaged_over_images():
    model = modernconv.create_model("convnextv2_atto")
    randomize_(model)
    block = model.stages[1].blocks[0]
    with torch.no_grad():
        block.mlp.fc1.weight.copy_(block.mlp.fc1.weight[:1].expand_as(block.mlp.fc1.weight))
        block.mlp.fc1.bias.fill_(0.3)  # every hidden channel is the same function: collapsed
    images = torch.randn(4, 3, 64, 64)
    curve = collapse_curve(model, [images[:1], images[1:]])
    assert curve.score[curve.layers.index("stages.1.blocks.0")] < 1e-6 and min(curve.score[:2]) > 0.05
    seen = []
    handle = model.stages[0].blocks[1].mlp.act.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        model.forward_features(images)
    handle.remove()
    assert seen[0].shape[-1] == 4 * 40
    assert curve.score[1] == pytest.approx(collapse_score(seen[0]).mean().item(), rel=1e-5)


def test_csv_and_plot(tmp_path):
    model = modernconv.create_model("convnextv2_atto")
    curves = [collapse_curve(model, [torch.randn(2, 3, 64, 64)], label=label) for label in ("a", "b")]
    rows = list(csv.DictReader(write_collapse_csv(curves, tmp_path / "c.csv").open()))
    assert len(rows) == 24 and rows[0].keys() == {"label", "layer", "block", "depth", "score"}
    assert [r["label"] for r in rows].count("b") == 12 and float(rows[11]["depth"]) == 1.0
    assert plot_collapse(curves, tmp_path / "c.png").stat().st_size > 1000


def test_cli_compares_checkpoints(tmp_path, capsys):
    for seed in (0, 1):
        model = modernconv.create_model("convnext_atto")
        randomize_(model, seed)
        modernconv.save_checkpoint(model, tmp_path / f"m{seed}.safetensors")
    code = main(["collapse", "convnext_atto", "--checkpoint", str(tmp_path / "m0.safetensors"),
                 str(tmp_path / "m1.safetensors"), "--data", "digits", "--images", "6", "--img-size", "64",
                 "--csv", str(tmp_path / "out.csv"), "--plot", str(tmp_path / "out.png")])
    out = capsys.readouterr().out
    assert code == 0 and out.count("mean score") == 2 and (tmp_path / "out.png").exists()
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 1 + 2 * 12
    code = main(["collapse", "convnext_atto", "--checkpoint", str(tmp_path / "missing.safetensors")])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1
