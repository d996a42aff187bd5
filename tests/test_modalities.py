"""Universal perception: each modality's adapter checked by hand, its readers on real files of the field's layouts,
and one model of the registry trained, evaluated and applied on each built-in set."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import modernconv
from modernconv.cli import main
from modernconv.config import load_config
from modernconv.errors import ConfigError, DataError, UnreadableFileError
from modernconv.modalities import create_modality_model, get_modality
from modernconv.modalities.audio import AudioOptions, LogMel, SpecAugment, read_audio
from modernconv.modalities.pointcloud import MultiViewDepth, PointCloudOptions, _load_points, read_points
from modernconv.modalities.timeseries import ResizeMap, StepEmbedding, TimeSeriesOptions, series_splits
from modernconv.modalities.video import TileFrames, VideoOptions, frame_indices, read_video

from helpers import scaled_error


# ----- audio -----
@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6500.0])
def test_a_pure_tone_lands_in_its_mel_band(freq):
    import librosa

    opts = AudioOptions()
    t = torch.arange(opts.clip_samples) / opts.sample_rate
    spec = LogMel(opts)(torch.sin(2 * math.pi * freq * t)[None])
    assert spec.shape == (1, 1, 128, 128)
    centres = librosa.mel_frequencies(opts.n_mels + 2, fmin=0, fmax=opts.sample_rate / 2, htk=True)[1:-1]
    loudest = int(spec[0, 0, :, 5:95].mean(1).argmax())  # frames of the 1 s tone (the rest is padding)
    assert abs(loudest - int(np.abs(centres - freq).argmin())) <= 1


def test_log_mel_is_batched_and_pads_short_clips():
    opts = AudioOptions(clip_seconds=0.5)
    waves = torch.randn(3, opts.clip_samples)
    mel = LogMel(opts)
    batched = mel(waves)
    assert torch.allclose(batched, torch.cat([mel(w[None]) for w in waves]), atol=1e-5)
    assert batched.shape == (3, 1, 128, 128)
    padded = batched[0, 0, :, 60:]  # 0.5 s gives 51 frames: the rest is silence, one value
    assert torch.allclose(padded, padded[0, 0].expand_as(padded))


def test_spec_augment_masks_only_while_training():
    opts = AudioOptions(freq_mask=10, time_mask=20, masks=2)
    aug = SpecAugment(opts)
    spec = torch.randn(8, 1, 128, 128) + 10
    assert torch.equal(aug.eval()(spec), spec)
    torch.manual_seed(0)
    out = aug.train()(spec)
    zero_rows = (out == 0).all(-1).sum((1, 2))  # masked mel bands
    zero_cols = (out == 0).all(-2).sum((1, 2))  # masked frames
    assert (zero_rows <= 20).all() and (zero_cols <= 40).all() and zero_rows.sum() > 0 and zero_cols.sum() > 0


def test_spoken_digits_come_from_held_out_speakers():
    from modernconv.modalities.speech import spoken_digits

    train, val, names = spoken_digits(AudioOptions())
    assert names[7] == "seven" and (len(train), len(val)) == (670, 170)
    assert not {int(i) // 10 for i in train.indices} & {int(i) // 10 for i in val.indices}
    clip, label = val[7]
    assert label == 7 and clip.shape == (16000,) and torch.equal(clip, val[7][0])
    voiced = clip.view(100, 160).pow(2).mean(1).sqrt() > 0.02  # 10 ms frames with speech in them
    assert 0.1 < voiced.float().mean() < 0.9  # a word: neither silence nor a full second of sound


def test_audio_files_are_mono_resampled_and_fitted(tmp_path):
    import soundfile

    stereo = np.stack([np.sin(np.linspace(0, 400, 8000)), np.zeros(8000)], 1).astype(np.float32)
    soundfile.write(tmp_path / "a.wav", stereo, 8000)  # 1 s at 8 kHz, two channels
    wave = read_audio(str(tmp_path / "a.wav"), AudioOptions())
    assert wave.shape == (16000,) and 0.3 < wave.abs().max() < 0.6  # averaged channels, resampled to 16 kHz
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00 not audio")
    with pytest.raises(DataError, match="cannot read audio"):
        read_audio(str(tmp_path / "bad.wav"), AudioOptions())
    soundfile.write(tmp_path / "long.wav", np.zeros(32000, np.float32), 16000)  # 2 s: cut to 1 s, and said
    with pytest.warns(UserWarning, match=r"longer than clip_seconds \(1 s\) is cut"):
        assert read_audio(str(tmp_path / "long.wav"), AudioOptions()).shape == (16000,)


# ----- video -----
def test_tiled_grid_holds_frame_t_in_its_cell():
    frames = torch.arange(5.0).view(1, 5, 1, 1, 1).expand(1, 5, 3, 4, 4) / 10
    tile = TileFrames(VideoOptions(frames=5, frame_size=4), mean=(0.0,) * 3, std=(1.0,) * 3)
    grid = tile(frames)
    assert grid.shape == (1, 3, 12, 12)  # 5 frames -> a 3 x 3 grid
    for t in range(9):
        cell = grid[0, :, (t // 3) * 4:(t // 3 + 1) * 4, (t % 3) * 4:(t % 3 + 1) * 4]
        assert torch.all(cell == (t / 10 if t < 5 else 0))


def test_frame_sampling():
    assert frame_indices(16, 4, "uniform", train=False) == [0, 5, 10, 15]
    assert frame_indices(16, 4, "segment", train=False) == [2, 6, 10, 14]
    np.random.seed(0)
    picks = frame_indices(16, 4, "segment", train=True)
    assert [p // 4 for p in picks] == [0, 1, 2, 3]  # one frame inside each segment
    assert frame_indices(2, 4, "uniform", train=False) == [0, 0, 1, 1]


def write_video(path, colours, size=32):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for c in colours:
            image = np.full((size, size, 3), c, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())


def test_video_files_and_frame_folders_are_read(tmp_path):
    from PIL import Image

    levels = [0, 40, 80, 120, 160, 200, 240, 255]
    write_video(tmp_path / "clip.mp4", [(v, v, v) for v in levels])
    frames = read_video(str(tmp_path / "clip.mp4"), VideoOptions(frames=4, frame_size=16, sampling="uniform"))
    assert frames.shape == (4, 3, 16, 16)
    expected = torch.tensor([levels[i] for i in frame_indices(8, 4, "uniform", False)]) / 255
    assert torch.allclose(frames.mean((1, 2, 3)), expected, atol=0.05)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, v in enumerate(levels):
        Image.new("RGB", (20, 24), (v, v, v)).save(folder / f"{i:03d}.png")
    from_folder = read_video(str(folder), VideoOptions(frames=4, frame_size=16, sampling="uniform"))
    assert torch.allclose(from_folder.mean((1, 2, 3)), expected, atol=1e-3)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="cannot read video"):
        read_video(str(tmp_path / "bad.mp4"), VideoOptions())


def test_a_video_without_a_video_stream_or_cut_short_is_an_unreadable_file(tmp_path):
    import soundfile

    soundfile.write(tmp_path / "sound.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "sound.wav").rename(tmp_path / "sound.mp4")  # a container with only an audio stream
    write_video(tmp_path / "clip.mp4", [(v, v, v) for v in range(0, 256, 8)])
    whole = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 3])
    for name, why in (("sound.mp4", "no video stream"), ("cut.mp4", "")):
        with pytest.raises(UnreadableFileError, match=f"cannot read video .*{name} .*{why}"):  # was an IndexError
            read_video(str(tmp_path / name), VideoOptions(frames=4, frame_size=16))


# ----- point clouds -----
def test_a_point_on_an_axis_lands_in_each_view():
    maps = MultiViewDepth(PointCloudOptions(view_size=9, splat=1)).eval()(torch.tensor([[[0.5, 0.0, 0.0]]]))
    assert maps.shape == (1, 3, 9, 9)
    hits = {k: [tuple(p) for p in maps[0, k].nonzero().tolist()] for k in range(3)}
    # view along x: plane (y, z); along y: plane (z, x); along z: plane (x, y) -- (row, column) = (b, a)
    assert hits == {0: [(4, 4)], 1: [(6, 4)], 2: [(4, 6)]}
    assert maps[0, 0, 4, 4] == 0.75 and maps[0, 1, 6, 4] == 0.5 and maps[0, 2, 4, 6] == 0.5


def test_the_nearest_point_wins_and_augmentation_is_training_only():
    views = MultiViewDepth(PointCloudOptions(view_size=5, splat=1))
    maps = views.eval()(torch.tensor([[[0.0, 0.0, -0.5], [0.0, 0.0, 0.5]]]))
    assert maps[0, 2, 2, 2] == 0.75  # seen along z: the point at z = 0.5 hides the other
    cloud = torch.rand(2, 64, 3) * 2 - 1
    assert torch.equal(views(cloud), views(cloud))
    torch.manual_seed(0)
    assert not torch.equal(views.train()(cloud), views.eval()(cloud))


def test_batched_projection_equals_per_sample():
    views = MultiViewDepth(PointCloudOptions(view_size=32)).eval()
    clouds = torch.rand(4, 100, 3) * 2 - 1
    assert torch.equal(views(clouds), torch.cat([views(c[None]) for c in clouds]))


def test_meshes_and_arrays_are_read(tmp_path):
    cube = ["OFF", "8 6 0"] + [f"{x} {y} {z}" for x in (0, 2) for y in (0, 2) for z in (0, 2)]
    cube += ["4 0 1 3 2", "4 4 6 7 5", "4 0 4 5 1", "4 2 3 7 6", "4 0 2 6 4", "4 1 5 7 3"]
    (tmp_path / "cube.off").write_text("\n".join(cube))
    (tmp_path / "joined.off").write_text("OFF8 6 0\n" + "\n".join(cube[2:]))  # ModelNet's header quirk
    opts = PointCloudOptions(points=500)
    for name in ("cube.off", "joined.off"):
        surface = _load_points(str(tmp_path / name), opts, train=False)
        assert np.allclose(np.abs(surface - 1).max(1), 1)  # every point on a face of the 2-unit cube
        points = read_points(str(tmp_path / name), opts)
        assert points.shape == (500, 3) and torch.allclose(points.mean(0), torch.zeros(3), atol=1e-5)
        assert math.isclose(points.norm(dim=1).max(), 1, rel_tol=1e-5)  # centred, scaled into the unit ball
    np.save(tmp_path / "p.npy", np.random.rand(50, 6))
    np.savetxt(tmp_path / "p.txt", np.random.rand(50, 6), delimiter=",")
    for name in ("p.npy", "p.txt"):
        assert read_points(str(tmp_path / name), opts).norm(dim=1).max() <= 1 + 1e-6
    (tmp_path / "empty.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(DataError, match="cannot read point cloud"):
        read_points(str(tmp_path / "empty.off"), opts)


# ----- time series -----
def test_step_embedding_lays_steps_out_row_by_row():
    embed = StepEmbedding(length=4, variables=2, side=4)  # E = 16 / 4 = 4: step i fills row i
    series = torch.randn(3, 4, 2)
    image = embed(series)
    assert image.shape == (3, 1, 4, 4)
    assert torch.allclose(image[:, 0], embed.embed(series))
    assert ResizeMap(8)(series).shape == (3, 1, 8, 8)
    assert StepEmbedding(length=48, variables=768, side=192).embed.out_features == 768  # the paper's numbers


def test_aeon_sets_load_uni_multi_and_variable_length():
    train, val, names, opts = series_splits("aeon:BasicMotions", TimeSeriesOptions(side=32))
    assert (opts.length, opts.variables) == (100, 6) and len(names) == 4 and len(train) == len(val) == 40
    x, label = train[0]
    assert x.shape == (100, 6) and 0 <= label < 4
    assert torch.allclose(x.mean(0), torch.zeros(6), atol=1e-4)  # standardised per variable
    train, _, _, opts = series_splits("aeon:JapaneseVowels", TimeSeriesOptions(side=32))
    assert opts.variables == 12 and all(train[i][0].shape == (opts.length, 12) for i in range(5))
    with pytest.raises(DataError, match="aeon ships no data set"):
        series_splits("aeon:NoSuchSet", TimeSeriesOptions())


def test_a_ucr_folder_with_a_ragged_file_says_so(tmp_path):
    header = "@problemName T\n@timeStamps false\n@univariate true\n@equalLength {}\n@classLabel true a b\n@data\n"
    (tmp_path / "T_TRAIN.ts").write_text(header.format("true") + "1,2,3,4:a\n4,3,2,1:b\n")
    (tmp_path / "T_TEST.ts").write_text(header.format("false") + "1,2,3,4:a\n4,3,2:b\n")
    train, val, names, opts = series_splits(str(tmp_path), TimeSeriesOptions(side=4))
    assert names == ["a", "b"] and opts.length == 4 and val[1][0][-1, 0] == 0  # the short series is padded
    (tmp_path / "T_TEST.ts").write_text(header.format("true") + "1,2,3,4:a\n4,3,2:b\n")  # ragged, said equal
    with pytest.raises(DataError, match="cannot read time series"):
        series_splits(str(tmp_path), TimeSeriesOptions(side=4))
    (tmp_path / "T_TEST.ts").write_text(header.format("true") + "1,2,3,4:a\n4,inf,2,1:b\n1,?,3,4:b\n")
    with pytest.raises(UnreadableFileError, match=r"T_TEST.ts: series 1 holds infinite values"):
        series_splits(str(tmp_path), TimeSeriesOptions(side=4))
    _, val, _, _ = series_splits(str(tmp_path), TimeSeriesOptions(side=4), skip_bad=True)
    assert len(val) == 2 and val.bad_images == [f"{tmp_path / 'T_TEST.ts'} (series 1)"]  # "?" is missing: kept


# ----- models and options -----
RAW = {"audio": (torch.randn(2, 8000), {"clip_seconds": 0.5, "n_mels": 32, "frames": 32}),
       "video": (torch.rand(2, 4, 3, 16, 16), {"frames": 4, "frame_size": 16}),
       "pointcloud": (torch.rand(2, 256, 3) * 2 - 1, {"points": 256, "view_size": 32}),
       "timeseries": (torch.randn(2, 20, 3), {"side": 32, "length": 20, "variables": 3})}


@pytest.mark.parametrize("modality", list(RAW))
def test_any_model_takes_any_modality(modality):
    raw, options = RAW[modality]
    for name in ("convnext_atto", "unireplknet_a", "convnextv2_atto"):
        model = create_modality_model(name, modality, options, num_classes=5)
        assert model.model.in_chans == get_modality(modality).in_chans
        model.train()(raw).sum().backward()
        out = model.eval()(raw)
        assert out.shape == (2, 5)
        assert torch.allclose(out, torch.cat([model(r[None]) for r in raw]), atol=1e-5)


def test_every_registered_model_takes_a_one_channel_modality():
    import modernconv

    for name in modernconv.list_models():
        with torch.device("meta"):
            network = create_modality_model(name, "timeseries", {"embed": "resize", "side": 64}).model
        first = next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d))
        assert network.in_chans == 1 and first.in_channels == 1, name


@pytest.mark.isa_sensitive
def test_the_fast_path_keeps_the_adapter_in_front():
    from modernconv import optimize_for_inference

    model = create_modality_model("unireplknet_a", "audio", RAW["audio"][1], num_classes=5).eval()
    fast = optimize_for_inference(model, "fp32", compile=False)
    raw = RAW["audio"][0]
    assert type(fast.adapter) is type(model.adapter) and fast.model.precision == "fp32"
    with torch.no_grad():
        assert scaled_error(fast(raw), model(raw)) <= 1e-4  # the network re-parameterised, channels-last


def test_options_are_checked():
    with pytest.raises(ConfigError, match="do not include sample_rte"):
        get_modality("audio").make_options({"sample_rte": 8000})
    with pytest.raises(ConfigError, match="frames must be an integer"):
        get_modality("video").make_options({"frames": 2.5})
    with pytest.raises(ConfigError, match="unknown modality"):
        get_modality("smell")
    with pytest.raises(ConfigError, match="in_chans 3 does not fit"):
        create_modality_model("convnext_atto", "audio", in_chans=3)


def test_speech_commands_layout_splits_by_its_lists(tmp_path):
    import soundfile

    for word in ("yes", "no", "_background_noise_"):
        (tmp_path / word).mkdir()
        for i in range(3):
            soundfile.write(tmp_path / word / f"{i}.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "validation_list.txt").write_text("yes/0.wav\nno/0.wav\n")
    (tmp_path / "testing_list.txt").write_text("yes/1.wav\n")
    opts = AudioOptions()
    train, names, _ = get_modality("audio").split(str(tmp_path), "train", opts)
    val, _, _ = get_modality("audio").split(str(tmp_path), "val", opts, class_names=names)
    test, _, _ = get_modality("audio").split(str(tmp_path), "test", opts, class_names=names)
    assert names == ["no", "yes"] and (len(train), len(val), len(test)) == (3, 2, 1)
    assert train[0][0].shape == (16000,)
    with pytest.raises(DataError, match="has no 'bogus' split; its splits are train, val, validation, test"):
        get_modality("audio").split(str(tmp_path), "bogus", opts, class_names=names)  # was a KeyError
    (tmp_path / "validation_list.txt").unlink()
    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(DataError, match="its splits are train, val, validation .a fixed 20%"):
        get_modality("audio").split(str(tmp_path), "test", opts, class_names=names)  # not the 20% silently


# ----- end to end -----
TINY = {"audio": ("spoken-digits", "{clip_seconds: 0.5, n_mels: 32, frames: 48}"),
        "video": ("moving-digits", "{frames: 4, frame_size: 16}"),
        "pointcloud": ("shapes", "{points: 256, view_size: 32}"),
        "timeseries": ("aeon:BasicMotions", "{side: 32}")}


@pytest.mark.parametrize("modality", list(TINY))
def test_one_epoch_on_each_built_in_set_then_eval(modality, tmp_path, capsys):
    data, options = TINY[modality]
    run = tmp_path / "run"
    assert main(["train", "--modality", modality, "--data", data, "--modality-options", options,
                 "--model", "convnext_atto", "--epochs", "1", "--batch-size", "16", "--warmup-epochs", "0",
                 "--progress", "false", "--output", str(run)]) == 0
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", data, "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["count"] > 0 and 0 <= report["top1"] <= 100
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", data]) == 0
    noun = {"audio": "clips", "video": "videos", "pointcloud": "point clouds", "timeseries": "series"}[modality]
    assert f"({report['count']} {noun})" in capsys.readouterr().out  # not "(40 images)" for 40 series
    inputs = {"video": frame_folder, "pointcloud": point_file}.get(modality)
    if inputs:  # predict reads the modality's own files
        path = inputs(tmp_path)
        assert main(["predict", "--checkpoint", str(run / "best.safetensors"), str(path), "--json"]) == 0
        predictions = json.loads(capsys.readouterr().out)
        assert [p["image"] for p in predictions] == [str(path)] and len(predictions[0]["top"]) == 5


@pytest.mark.parametrize("modality", list(TINY))
def test_a_modality_alone_brings_its_cpu_recipe(modality):
    """`train --modality M` without -c gets the values M's small-set recipe spells out (not batch 64 on
    BasicMotions' 40 series)."""
    from modernconv.config import MODALITY_RECIPES

    recipe = Path(__file__).resolve().parents[1] / MODALITY_RECIPES[modality]
    spelled = yaml.safe_load(recipe.read_text())
    alone, from_recipe = load_config(None, {"modality": modality}), load_config(recipe)
    assert {k: getattr(alone, k) for k in spelled} == {k: getattr(from_recipe, k) for k in spelled}
    assert load_config(None, {"modality": modality, "batch_size": 4}).batch_size == 4  # beneath the options
    with pytest.raises(ConfigError, match="val_split divides image folders"):
        load_config(None, {"modality": modality, "val_split": 0.2})


def test_a_set_smaller_than_the_batch_says_what_batch_and_recipe_fit(tmp_path, capsys):
    code = main(["train", "--modality", "timeseries", "--batch-size", "64", "--model", "convnext_atto",
                 "--modality-options", "{side: 32}", "--output", str(tmp_path / "run")])
    assert code == 2 and capsys.readouterr().err.strip() == (
        "modernconv: error: the training set gives 0 batches of 64 per process (40 samples), fewer than "
        "accum_steps=1; use --batch-size 40 or less (the small-set recipe: -c configs/timeseries_aeon.yaml)")


def frame_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(folder / f"{i}.png")
    return folder


def point_file(tmp_path):
    np.save(tmp_path / "cloud.npy", np.random.default_rng(0).normal(size=(300, 3)))
    return tmp_path / "cloud.npy"


def test_train_eval_predict_on_folders_of_files_with_a_bad_one(tmp_path, capsys):
    import soundfile

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 2)):
        for word, freq in (("low", 300), ("high", 3000)):
            (tmp_path / split / word).mkdir(parents=True)
            for i in range(n):
                t = np.arange(8000) / 16000
                wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(8000)
                soundfile.write(tmp_path / split / word / f"{i}.wav", wave.astype(np.float32), 16000)
    (tmp_path / "train" / "low" / "broken.wav").write_bytes(b"not a wav")
    for name, value in (("nan.wav", np.nan), ("loud.wav", 1e30)):  # read, but no audio: NaN predictions before
        wave = np.zeros(8000, np.float32)
        wave[100] = value
        soundfile.write(tmp_path / "train" / "high" / name, wave, 16000, subtype="FLOAT")
        with pytest.raises(UnreadableFileError, match=f"audio .*{name} holds (NaN or infinite samples|samples of "
                                                      "amplitude 1e.30)"):
            read_audio(str(tmp_path / "train" / "high" / name), AudioOptions())
    run, args = tmp_path / "run", ["--modality", "audio", "--data", str(tmp_path), "--model", "convnext_atto",
                                   "--modality-options", "{clip_seconds: 0.5, n_mels: 32, frames: 48}",
                                   "--epochs", "2", "--batch-size", "8", "--warmup-epochs", "0",
                                   "--progress", "false", "--output", str(tmp_path / "run")]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err  # the first bad file met, named: unreadable, NaN or too loud
    assert err.count("\n") == 1 and re.search(r"(broken|nan|loud)\.wav (holds|\()", err) and "--skip-bad" in err
    assert main(["train", *args, "--skip-bad-images", "true"]) == 0
    assert "skipped 3 unreadable clips" in capsys.readouterr().out
    ckpt = str(run / "best.safetensors")
    assert main(["predict", "--checkpoint", ckpt, str(tmp_path / "val"), "--json", "--topk", "1"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions) == 4 and all("top" in p for p in predictions)
    assert main(["predict", "--checkpoint", ckpt, str(tmp_path / "train" / "low" / "broken.wav")]) != 0


# ----- forecasting -----
def test_forecast_windows_split_in_time(tmp_path):
    from modernconv.modalities.forecast import forecast_splits

    train, val, names, opts, scaling = forecast_splits("seasonal", TimeSeriesOptions(side=16, length=24, horizon=6))
    assert names == ["load", "lagged_3h", "mirror_12h"] and (opts.length, opts.variables) == (24, 3)
    x, y = train[0]
    assert x.shape == (24, 3) and y.shape == (6, 3) and torch.equal(train[1][0][0], x[1])  # windows slide by one
    cut = int(4000 * 0.8)
    assert train.starts[-1] + 24 + 6 == cut and val.starts[0] + 24 == cut  # held-out targets start at the cut
    assert torch.allclose(train.series[:cut].mean(0), torch.zeros(3), atol=1e-4)  # scaled by the train stretch
    table = tmp_path / "s.csv"
    table.write_text(",date,a,b\n" + "".join(f"{i},2020-01-{i % 28 + 1:02d},{i},{2 * i}\n" for i in range(100)))
    _, _, names, opts, scaling = forecast_splits(str(table), TimeSeriesOptions(length=10, horizon=2))
    assert names == ["a", "b"] and opts.variables == 2 and scaling.mean == [39.5, 79.0]
    with pytest.raises(DataError, match="too few"):
        forecast_splits(str(table), TimeSeriesOptions(length=90, horizon=2))
    with pytest.raises(DataError, match="aeon ships no forecasting series"):
        forecast_splits("aeon:Nope", TimeSeriesOptions(horizon=2))
    table.write_text(",a,b\n" + "".join(f"{i},{i},{'inf' if i == 42 else 2 * i}\n" for i in range(100)))
    with pytest.raises(DataError, match=r"s.csv holds infinite values \(first: column b, row 43\)"):
        forecast_splits(str(table), TimeSeriesOptions(length=10, horizon=2))  # NaN forecasts before


def test_forecasting_trains_and_evaluates(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--modality", "timeseries", "--data", "aeon:Airline", "--model", "convnext_atto",
                 "--modality-options", "{side: 32, length: 24, horizon: 6}", "--epochs", "2", "--batch-size", "16",
                 "--warmup-epochs", "0", "--progress", "false", "--output", str(run)]) == 0
    out = capsys.readouterr().out
    assert "val MSE" in out and "best val MSE" in out
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", "aeon:Airline", "--json"]) == 0
    errors = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert errors["count"] == 144 - int(144 * 0.8) - 6 + 1 and errors["mse"] > 0 and errors["mae"] > 0
    metrics = (run / "metrics.csv").read_text()
    assert "val_mae" in metrics
    np.save(tmp_path / "series.npy", np.random.default_rng(0).standard_normal((24, 1)).astype(np.float32))
    assert main(["predict", "--checkpoint", str(run / "best.safetensors"), str(tmp_path / "series.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "modernconv eval --checkpoint CKPT --data" in err  # a command that works
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", "aeon:Airline", "--split", "test",
                 "--confusion", str(tmp_path / "c.png")]) == 2  # refused, not ignored
    assert "--confusion, --split do not apply to a forecaster" in capsys.readouterr().err


def test_one_checkpoint_entry_point_serves_modality_models_and_their_networks(tmp_path):
    opts = {"side": 32, "length": 24, "variables": 2}
    trained = create_modality_model("convnext_atto", "timeseries", opts, num_classes=3).eval()
    for p in trained.parameters():
        p.data.normal_(0, 0.05)
    modernconv.save_checkpoint(trained, tmp_path / "m.safetensors")
    fresh = create_modality_model("convnext_atto", "timeseries", opts, num_classes=3).eval()
    modernconv.load_checkpoint(fresh, tmp_path / "m.safetensors")  # adapter and network, through one function
    series = torch.randn(2, 24, 2)
    with torch.no_grad():
        assert torch.equal(fresh(series), trained(series))
    with pytest.warns(UserWarning, match="loaded its network, left out its adapter"):
        network = modernconv.create_model("convnext_atto", in_chans=1, num_classes=3,
                                          pretrained=tmp_path / "m.safetensors")
    assert all(torch.equal(v, trained.model.state_dict()[k]) for k, v in network.state_dict().items())
    longer = create_modality_model("convnext_atto", "timeseries", {**opts, "length": 30}, num_classes=3)
    with pytest.raises(modernconv.CheckpointError, match=r"timeseries adapter does not fit \(size mismatch for "
                                                         r"embed.weight"):  # the reason, not torch's header alone
        modernconv.load_checkpoint(longer, tmp_path / "m.safetensors")


@pytest.mark.parametrize("modality, options, message", [
    ("audio", "{hop_ms: 0.01}", "a hop 1"), ("audio", "{window_ms: 0.01}", "a window needs 2 samples"),
    ("audio", "{clip_seconds: 0.0001}", "the clip (0.0001 s) a window"),
    ("pointcloud", "{view_size: 100000}", "view_size must be at most 8192"),
    ("pointcloud", "{jitter: .nan}", "jitter"), ("video", "{frame_size: 5000}", "must be at most 8192"),
])
def test_modality_options_out_of_their_domain_are_one_line(modality, options, message, tmp_path, capsys):
    assert main(["train", "--modality", modality, "--modality-options", options, "--output",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "run").exists()
