"""FCMAE: sparse == masked (loss and every gradient), no leakage across masked patches or samples, the
decoder, the loss, the mask, and pre-training -> encoder file -> create_model -> fine-tuning."""
import re
import warnings

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import modernconv
from helpers import Interrupt, die_after_steps, randomize_
from modernconv.cli import main
from modernconv.config import PretrainConfig, load_config
from modernconv.checkpoint import save_checkpoint
from modernconv.conversion import convert_checkpoint
from modernconv.errors import CheckpointError, ConfigError, InputShapeError
from modernconv.pretrain import FCMAE
from modernconv.tasks import ENCODER_FILE, train, trainer_for
from modernconv.pretrain.sparse import encode
from modernconv.pretrain.masking import check_mask, keep_count, patchify, random_mask, unpatchify, upsample_mask
from test_checkpoint import authors_convnext_layout

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2


def fcmae(name="convnextv2_atto", **kwargs):
    """An FCMAE with random non-trivial weights (GRN weight and bias nonzero, V1 layer scale ~ U(0.5, 1))."""
    model = FCMAE(modernconv.create_model(name), **kwargs)
    randomize_(model)
    return model


def loss_and_grads(model, mode, images, mask):
    model.mode = mode
    model.zero_grad(set_to_none=True)
    out = model(images, mask)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name, size", [("convnextv2_atto", (224, 224)), ("convnextv2_atto", (192, 256)),
                                        ("convnextv2_tiny", (224, 224)), ("convnextv2_tiny", (192, 256)),
                                        ("convnext_atto", (192, 256))])
def test_sparse_and_masked_give_the_same_loss_and_gradients(name, size):
    model = fcmae(name)
    images = torch.randn(3, 3, *size)
    mask = model.random_mask(images)
    loss_m, grads_m = loss_and_grads(model, "masked", images, mask)
    loss_s, grads_s = loss_and_grads(model, "sparse", images, mask)
    assert abs(loss_s - loss_m) <= 1e-5 * abs(loss_m)
    assert grads_m.keys() == grads_s.keys() and not any(n.startswith("encoder.head.") for n in grads_m)
    for n, g in grads_m.items():
        scale = g.abs().max()
        assert scale > 0, f"{n} got no gradient"
        assert (grads_s[n] - g).abs().max() <= 1e-4 * scale, n

    # the sparse semantics matter: a plain dense encoder on the masked image gives another loss
    pixels = upsample_mask(mask, model.grid(images), 32).unsqueeze(1)
    with torch.no_grad():
        pred = model.decoder(model.encoder.forward_features(images * (1 - pixels)), mask)
        dense = (model.patch_losses(images, pred) * mask).sum() / mask.sum()
    assert abs(dense - loss_m) > 1e-3 * abs(loss_m)


@pytest.mark.parametrize("mode", ["masked", "sparse"])
@pytest.mark.parametrize("name", ["convnextv2_atto", "convnext_atto"])
def test_with_every_patch_visible_both_encoders_equal_the_plain_forward_features(name, mode):
    model = fcmae(name)
    images = torch.randn(2, 3, 64, 96)
    everything = torch.zeros(2, 6)  # no patch masked
    with torch.no_grad():
        outputs = encode(model.encoder, images, everything, model.grid(images), mode, all_stages=True)
        plain = model.encoder.forward_intermediates(images, intermediates_only=True)
    for stage, (ours, reference) in enumerate(zip(outputs, plain)):
        assert (ours - reference).abs().max() <= 1e-5 * reference.abs().max(), stage


def test_drop_path_and_gradient_checkpointing_keep_the_modes_equal():
    model = FCMAE(modernconv.create_model("convnextv2_atto", drop_path_rate=0.5))
    randomize_(model)
    images = torch.randn(4, 3, 64, 96)
    mask = model.random_mask(images)
    results = []
    for mode, checkpointing in (("masked", False), ("sparse", False), ("sparse", True)):
        model.set_grad_checkpointing(checkpointing)
        torch.manual_seed(3)  # the same samples' branches dropped in every run
        results.append(loss_and_grads(model, mode, images, mask))
    for loss, grads in results[1:]:
        assert abs(loss - results[0][0]) <= 1e-5 * abs(results[0][0])
        for n, g in results[0][1].items():
            assert (grads[n] - g).abs().max() <= 1e-4 * g.abs().max(), n


def test_channels_last_and_bf16_autocast_run_both_modes():
    model = fcmae("convnextv2_atto")
    images = torch.randn(3, 3, 96, 128)
    mask = model.random_mask(images)
    loss, grads = loss_and_grads(model, "masked", images, mask)
    model.to(memory_format=torch.channels_last)
    for mode in ("sparse", "masked"):
        loss_cl, grads_cl = loss_and_grads(model, mode, images.contiguous(memory_format=torch.channels_last), mask)
        assert abs(loss_cl - loss) <= 1e-5 * abs(loss), mode
        for n, g in grads.items():
            assert (grads_cl[n] - g).abs().max() <= 1e-4 * g.abs().max(), (mode, n)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss_bf16, grads_bf16 = loss_and_grads(model, mode, images, mask)
        assert abs(loss_bf16 - loss) <= 1e-2 * abs(loss), mode  # bf16 keeps ~3 significant digits
        for n, g in grads.items():  # every gradient points the fp32 way
            assert torch.nn.functional.cosine_similarity(grads_bf16[n].flatten().float(), g.flatten(), 0) > 0.99, n


@pytest.mark.parametrize("mode", ["sparse", "masked"])
def test_pixels_under_masked_patches_never_reach_visible_activations(mode):
    model = fcmae("convnextv2_atto", mode=mode).eval()
    images = torch.randn(3, 3, 128, 160)
    mask = model.random_mask(images)
    pixels = upsample_mask(mask, model.grid(images), 32).unsqueeze(1)
    changed = images + 5 * torch.randn_like(images) * pixels
    with torch.no_grad():
        before, after = model.encode(images, mask, all_stages=True), model.encode(changed, mask, all_stages=True)
    assert len(before) == 4
    for stage, (a, b) in enumerate(zip(before, after)):
        keep = 1 - upsample_mask(mask, model.grid(images), 2 ** (3 - stage)).unsqueeze(1)
        assert a.abs().mul(keep).amax() > 0 and (a * (1 - keep)).abs().amax() == 0  # masked positions stay zero
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["sparse", "masked"])
def test_one_sample_never_changes_another_samples_loss(mode):
    model = fcmae("convnextv2_atto", mode=mode).eval()
    images = torch.randn(4, 3, 96, 96)
    mask = model.random_mask(images)
    other = images.clone()
    other[0] = torch.randn(3, 96, 96) * 3

    def per_sample(x):
        with torch.no_grad():
            out = model(x, mask)
        return (model.patch_losses(x, out.pred) * mask).sum(1) / mask.sum(1)

    a, b = per_sample(images), per_sample(other)
    assert not torch.allclose(a[0], b[0])
    torch.testing.assert_close(a[1:], b[1:], rtol=1e-6, atol=0)


def test_decoder_puts_the_mask_token_at_masked_positions_and_predicts_one_patch_per_pixel():
    model = fcmae("convnextv2_atto", decoder_dim=64, decoder_depth=2)
    features = torch.randn(2, 320, 3, 4)
    mask = random_mask(2, (3, 4), 0.5)
    pred = model.decoder(features, mask)
    assert pred.shape == (2, 12, 32 * 32 * 3) and len(model.decoder.blocks) == 2
    scrambled = features + 10 * torch.randn_like(features) * mask.view(2, 1, 3, 4)
    torch.testing.assert_close(model.decoder(scrambled, mask), pred)  # masked features are replaced
    pred.sum().backward()
    assert model.decoder.mask_token.grad.abs().sum() > 0
    gray = FCMAE(modernconv.create_model("convnextv2_atto", in_chans=1))
    assert gray.decoder.pred.out_channels == 32 * 32


def test_patches_are_row_major_row_column_channel_and_invert():
    images = torch.randn(2, 3, 64, 96)
    patches = patchify(images, 32)
    assert patches.shape == (2, 6, 3072)
    torch.testing.assert_close(patches[1, 4].view(32, 32, 3), images[1, :, 32:, 32:64].permute(1, 2, 0))
    assert torch.equal(unpatchify(patches, 32, (2, 3), 3), images)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_loss_is_the_mse_to_the_normalised_patches_over_masked_patches_only(norm_pix):
    model = fcmae("convnextv2_atto", norm_pix_loss=norm_pix)
    images = torch.rand(2, 3, 64, 64) * 4
    mask = torch.tensor([[1.0, 0, 1, 1], [0, 1, 1, 1]])
    target = patchify(images, 32)
    if norm_pix:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, unbiased=True, keepdim=True) + 1e-6).sqrt()
    pred = torch.randn_like(target)
    expected = ((pred - target) ** 2).mean(-1)
    torch.testing.assert_close(model.patch_losses(images, pred), expected)
    perfect_where_masked = torch.where(mask[..., None] > 0, target, pred)
    assert model.patch_losses(images, perfect_where_masked).mul(mask).sum() < 1e-8
    out = model(images, mask)
    manual = (model.patch_losses(images, out.pred) * mask).sum() / 6
    torch.testing.assert_close(out.loss, manual)
    assert torch.equal(out.mask, mask)  # a given mask is used as is


@pytest.mark.parametrize("grid, ratio", [((7, 7), 0.6), ((6, 8), 0.75), ((2, 2), 0.6), ((4, 4), 0.3)])
def test_every_sample_keeps_exactly_int_l_times_one_minus_ratio_patches(grid, ratio):
    mask = random_mask(500, grid, ratio)
    kept = (mask == 0).sum(1)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (kept == int(grid[0] * grid[1] * (1 - ratio))).all() and kept[0] == keep_count(grid[0] * grid[1], ratio)


def test_mask_is_uniform_over_positions_and_reproducible():
    mask = random_mask(4000, (7, 7), 0.6)
    assert (mask.mean(0) - 30 / 49).abs().max() < 0.04  # every position masked about 30 times in 49
    a = random_mask(3, (7, 7), 0.6, generator=torch.Generator().manual_seed(1))
    b = random_mask(3, (7, 7), 0.6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_bad_masks_and_inputs_are_clear_errors():
    model = FCMAE(modernconv.create_model("convnextv2_atto"))
    images = torch.randn(2, 3, 64, 64)
    with pytest.raises(InputShapeError, match="same number of patches"):
        model(images, torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 1]]))
    with pytest.raises(InputShapeError, match="does not fit"):
        model(images, torch.zeros(2, 9))
    with pytest.raises(InputShapeError, match="height and width must be multiples of 32, got 64x80"):
        model(torch.randn(2, 3, 64, 80))
    with pytest.raises(InputShapeError, match="keeps 0 of 1"):
        model(torch.randn(2, 3, 32, 32))
    assert check_mask(torch.ones(2, 2, 2).index_fill(2, torch.tensor([0]), 0), 2, (2, 2)).shape == (2, 4)
    with pytest.raises(ConfigError, match="total stride 32"):
        FCMAE(modernconv.create_model("convnextv2_atto"), patch_size=16)
    with pytest.raises(ConfigError, match="hierarchical ConvNeXt"):
        FCMAE(modernconv.create_model("convmixer_256_8"))
    with pytest.raises(ConfigError, match="mode must be one of"):
        model.mode = "dense"


QUICK = dict(model="convnextv2_atto", data="synthetic", synthetic_samples=96, synthetic_classes=4, img_size=64,
             epochs=2, batch_size=16, lr=1e-3, warmup_epochs=0.5, decoder_dim=32, preview_images=3, progress=False)


def quick(tmp_path, name="pre", **overrides):
    return load_config(None, {**QUICK, "output": str(tmp_path / name), **overrides}, kind=PretrainConfig)


def test_pretrain_then_fine_tune_round_trip(tmp_path):
    result = train(quick(tmp_path))
    encoder_file = result.run_dir / ENCODER_FILE
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "curves.png", "last.safetensors", "state.pt", "encoder.safetensors",
            "reconstructions"} <= files
    assert sorted(p.name for p in (result.run_dir / "reconstructions").iterdir()) == ["epoch_0001.png",
                                                                                   "epoch_0002.png"]
    encoder = load_file(str(encoder_file))
    assert not any(k.startswith("head.") for k in encoder)
    full = load_file(str(result.run_dir / "last.safetensors"))
    assert all(torch.equal(full[f"encoder.{k}"], v) for k, v in encoder.items())
    assert full["encoder.stages.0.blocks.0.mlp.grn.weight"].abs().sum() > 0  # pre-training trained GRN

    with pytest.warns(UserWarning, match="encoder-only checkpoint"):
        model = modernconv.create_model("convnextv2_atto", num_classes=4, pretrained=encoder_file)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in encoder.items())
    with pytest.warns(UserWarning, match="encoder-only checkpoint"):
        tuned = train(load_config(None, dict(model="convnextv2_atto", data="synthetic", synthetic_samples=96,
                                             synthetic_classes=4, img_size=64, epochs=1, batch_size=16,
                                             init=str(encoder_file), progress=False,
                                             output=str(tmp_path / "tuned"))))
    weights = load_file(str(tuned.run_dir / "last.safetensors"))
    assert torch.isfinite(torch.tensor(tuned.last["train_loss"])) and weights["head.fc.weight"].shape == (4, 320)
    assert not torch.equal(weights["stem.0.weight"], encoder["stem.0.weight"])  # fine-tuning moved the encoder


def test_authors_fcmae_encoder_release_loads_like_ours(tmp_path):
    model = fcmae("convnextv2_atto")
    released = authors_convnext_layout(model.encoder_state_dict())
    assert "downsample_layers.0.0.weight" in released and not any(k.startswith(("head", "norm.")) for k in released)
    torch.save({"model": released}, tmp_path / "convnextv2_atto_1k_224_fcmae.pt")
    with pytest.warns(UserWarning, match="encoder-only checkpoint"):
        loaded = modernconv.create_model("convnextv2_atto", pretrained=tmp_path / "convnextv2_atto_1k_224_fcmae.pt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.encoder_state_dict().items())


def authors_sparse_fcmae_layout(model: FCMAE) -> dict[str, torch.Tensor]:
    """An FCMAE model in the layout of the authors' released pre-training checkpoints: their dense names with
    MinkowskiEngine modules in the encoder (conv ``kernel`` (K*K, C_in, C_out), offsets column-major; depthwise
    (K*K, C); ``ln`` / ``linear`` wrappers; (1, C) biases and GRN), under ``encoder.``, next to the decoder."""
    out = {}
    for key, value in authors_convnext_layout(model.encoder_state_dict()).items():
        parts = key.split(".")
        module = ".".join(parts[:-1])
        if key.startswith("downsample_layers.0."):  # the stem stays a dense conv + LayerNorm
            pass
        elif value.ndim == 4 and parts[-1] == "weight":  # kernel[col * K + row, c_in, c_out] = w[c_out, c_in, row, col]
            value = value.permute(3, 2, 1, 0).reshape(-1, value.shape[1], value.shape[0])
            value, parts[-1] = (value[:, 0] if parts[-2] == "dwconv" else value), "kernel"
        elif parts[-2] == "norm" or re.fullmatch(r"downsample_layers\.\d\.0", module):
            parts.insert(-1, "ln")
        elif parts[-2] in ("pwconv1", "pwconv2"):
            parts.insert(-1, "linear")
        elif parts[-2] in ("dwconv", "grn", "1"):  # conv biases and GRN are (1, C)
            value = value.reshape(1, -1)
        out["encoder." + ".".join(parts)] = value
    out.update({"mask_token": model.decoder.mask_token, "proj.weight": model.decoder.proj.weight,
                "decoder.0.dwconv.weight": model.decoder.blocks[0].conv_dw.weight,
                "pred.weight": model.decoder.pred.weight})
    return out


def test_authors_sparse_fcmae_release_and_our_whole_pretraining_file_load_their_encoder(tmp_path):
    model = fcmae("convnextv2_atto")
    released = authors_sparse_fcmae_layout(model)
    assert released["encoder.stages.0.0.dwconv.kernel"].shape == (49, 40)
    assert released["encoder.downsample_layers.1.1.kernel"].shape == (4, 40, 80)
    assert {"encoder.stages.0.0.norm.ln.weight", "encoder.stages.0.0.pwconv1.linear.weight",
            "encoder.downsample_layers.1.0.ln.weight"} <= set(released)
    assert released["encoder.stages.0.0.grn.gamma"].shape == (1, 160)
    torch.save({"model": released}, tmp_path / "convnextv2_atto_1k_224_fcmae.pt")
    save_checkpoint(model, tmp_path / "ours.safetensors")  # a whole FCMAE: encoder.*, decoder.*
    expected = model.encoder_state_dict()
    for name in ("convnextv2_atto_1k_224_fcmae.pt", "ours.safetensors"):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            loaded = modernconv.create_model("convnextv2_atto", num_classes=10, pretrained=tmp_path / name)
            model_name, report = convert_checkpoint(tmp_path / name, tmp_path / f"{name}.safetensors")
        notes = [str(w.message).split(": ", 1)[1] for w in seen]
        assert notes == ["FCMAE pre-training checkpoint: loaded its encoder, left out its decoder",
                         "encoder-only checkpoint: the head (norm and classifier) keeps its fresh initialisation",
                         "FCMAE pre-training checkpoint: loaded its encoder, left out its decoder",
                         "encoder-only checkpoint: written without a head"], name
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items()), name
        assert model_name == "convnextv2_atto" and report.source_format.startswith("FCMAE encoder")
        assert load_file(str(tmp_path / f"{name}.safetensors")).keys() == expected.keys()
    with pytest.raises(CheckpointError, match="fine-tune it before deploying"):
        convert_checkpoint(tmp_path / "ours.safetensors", tmp_path / "deploy.safetensors", deploy=True)


def test_pretraining_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    full = train(quick(tmp_path, "full", save_every_steps=2))
    trainer = trainer_for(quick(tmp_path, "cut", save_every_steps=2))
    die_after_steps(trainer, monkeypatch, 4)  # after the step-4 checkpoint, mid-epoch 1 (5 steps per epoch)
    with pytest.raises(Interrupt):
        trainer.fit()
    trainer.close()
    resumed = train(quick(tmp_path, "cut", save_every_steps=2, resume=True))
    a, b = load_file(str(full.run_dir / "last.safetensors")), load_file(str(resumed.run_dir / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len((resumed.run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_cli_pretrains_on_a_folder_without_labels_and_measures_collapse(tmp_path, capsys):
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for i in range(20):
        pixels = torch.randint(0, 256, (40 + i, 50, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")
    run = tmp_path / "run"
    code = main(["pretrain", "--data", str(tmp_path / "images"), "--output", str(run), "--epochs", "1",
                 "--warmup-epochs", "0", "--batch-size", "8", "--img-size", "64", "--decoder-dim", "16",
                 "--progress", "false", "--mode", "masked"])
    assert code == 0 and "encoder" in capsys.readouterr().out
    assert (run / "encoder.safetensors").exists() and (run / "reconstructions" / "epoch_0001.png").exists()
    code = main(["collapse", "convnextv2_atto", "--checkpoint", str(run / "encoder.safetensors"), "--data",
                 str(tmp_path / "images"), "--images", "4", "--img-size", "64", "--csv", str(tmp_path / "c.csv"),
                 "--plot", str(tmp_path / "c.png")])
    assert code == 0 and (tmp_path / "c.png").exists()
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 1 + 12


@pytest.mark.parametrize("option, message", [(["--mixup", "0.8"], "mixup does not apply to pre-training"),
                                             (["--img-size", "48"], "multiple of patch_size 32"),
                                             (["--mask-ratio", "1.0"], "mask_ratio must be between 0 and 1"),
                                             (["--mode", "dense"], "mode must be one of sparse, masked")])
def test_cli_pretrain_rejects_bad_options_in_one_line(tmp_path, capsys, option, message):
    code = main(["pretrain", "--output", str(tmp_path / "x"), *option])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
