"""The segmentation task end to end on tiny inputs: the field's folder layouts (plain, ADE20K, Pascal VOC), joint
transforms that never interpolate or normalise a mask, a bad-input table, training with its mIoU and best
weights, exact resume, and eval's report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from modernconv.cli import main
from modernconv.config import load_config
from modernconv.data.scenes import SCENE_CLASSES, make_scene
from modernconv.data.seg_transforms import SegmentationEvalTransform, SegmentationTrainTransform
from modernconv.data.segmentation import segmentation_split
from modernconv.errors import DataError
from modernconv.tasks import train

from helpers import resumed_equals_uninterrupted

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
QUICK = dict(task="segmentation", model="convnext_atto", img_size=32, epochs=2, batch_size=4, decode_channels=16,
             aux_channels=8, warmup_epochs=0.5, progress=False)


def write_scenes(root, split: str, seeds, size: int = 48) -> None:
    """Scenes as a plain layout: SPLIT/images/*.jpg and SPLIT/masks/*.png (index PNGs)."""
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "masks").mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        image, mask = make_scene(seed, size)
        Image.fromarray(image).save(root / split / "images" / f"s{seed}.jpg")
        Image.fromarray(mask).save(root / split / "masks" / f"s{seed}.png")


@pytest.fixture()
def plain(tmp_path):
    write_scenes(tmp_path / "data", "train", range(16))
    write_scenes(tmp_path / "data", "val", range(100, 104))
    (tmp_path / "data" / "classes.txt").write_text("\n".join(SCENE_CLASSES))
    return tmp_path / "data"


def test_training_transform_keeps_masks_as_class_indices():
    image, mask = make_scene(3, 48)
    image, mask = torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask).long()
    transform = SegmentationTrainTransform(40, MEAN, STD, ratio_range=(0.5, 2.0))
    for _ in range(20):
        x, y = transform(image, mask)
        assert x.shape == (3, 40, 40) and x.dtype == torch.float32 and y.shape == (40, 40) and y.dtype == torch.long
        assert set(y.unique().tolist()) <= set(range(len(SCENE_CLASSES))) | {255}  # never interpolated values
    x, y = SegmentationTrainTransform(64, MEAN, STD, ratio_range=(1.0, 1.0), hflip=0.0, photometric=False)(image, mask)
    assert torch.equal(y[:48, :48], mask) and (y[48:] == 255).all() and (x[:, 48:] == 0).all()  # padded with ignore
    assert torch.allclose(x[:, :48, :48], (image / 255 - 0.5) / 0.25, atol=1e-6)  # normalised image, raw mask
    x, y = SegmentationEvalTransform(MEAN, STD, base_size=(96, 64))(image, mask)
    assert x.shape == (3, 64, 64) and torch.equal(y, mask)  # the mask keeps its own size for scoring


def test_ade20k_and_voc_layouts(tmp_path):
    ade = tmp_path / "ADEChallengeData2016"
    for folder in ("images/training", "annotations/training"):
        (ade / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(ade / "images/training/ADE_train_1.jpg")
    Image.fromarray(np.array([[0, 1, 150, 2]] * 4, np.uint8)).save(ade / "annotations/training/ADE_train_1.png")
    (ade / "objectInfo150.csv").write_text("Idx,Ratio,Train,Val,Name\n" + "".join(
        f"{i},0.1,1,1,name{i};other\n" for i in range(1, 151)))
    data, names = segmentation_split(str(ade), "train", lambda x, y: y)
    assert names[:2] == ["name1", "name2"] and len(names) == 150
    assert data[0][0].tolist() == [255, 0, 149, 1]  # reduce_zero_label: 0 ignored, k -> k - 1
    voc = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(voc / "JPEGImages/2007_000032.jpg")
    mask = Image.fromarray(np.array([[0, 1, 20, 255]] * 4, np.uint8), mode="L").convert("P")
    mask.save(voc / "SegmentationClass/2007_000032.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000032\n")
    data, names = segmentation_split(str(voc), "val", lambda x, y: y)
    assert names[0] == "background" and len(names) == 21 and data[0][0].tolist() == [0, 1, 20, 255]


def bad_mask(kind: str, path) -> None:
    if kind == "rgb":
        Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(path)
    elif kind == "size":
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(path)
    elif kind == "value":
        Image.fromarray(np.full((48, 48), 7, np.uint8)).save(path)
    else:
        path.write_bytes(b"not a png")


@pytest.mark.parametrize("kind, message", [("rgb", "is a RGB image, not an index PNG"), ("size", "is 48x40, its image 48x48"),
                                           ("value", "holds value 7, not one of the 6 classes or 255"),
                                           ("corrupt", "cannot read mask")])
def test_bad_masks_are_one_line_or_skipped_and_counted(plain, kind, message, capsys, tmp_path):
    bad_mask(kind, plain / "train" / "masks" / "s0.png")  # the first pair
    with pytest.raises(DataError, match=message + ".*s0.png|s0.png.*" + message):
        segmentation_split(str(plain), "train", lambda x, y: (x, y))[0][0]
    data, _ = segmentation_split(str(plain), "train", lambda x, y: (x, y), skip_bad=True)
    assert len(data) == 15 and data.bad_images == [str(plain / "train" / "masks" / "s0.png")]
    code = main(["train", *sum(([f"--{k.replace('_', '-')}", str(v)] for k, v in QUICK.items()), []),
                 "--data", str(plain), "--epochs", "1", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message.split()[0] in err


def test_data_mistakes_are_one_line(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        segmentation_split(str(tmp_path / "nope"), "train", lambda x, y: (x, y))
    (tmp_path / "VOC" / "SegmentationClass").mkdir(parents=True)
    with pytest.raises(DataError, match="no ImageSets/Segmentation/train.txt"):
        segmentation_split(str(tmp_path / "VOC"), "train", lambda x, y: (x, y))
    with pytest.raises(DataError, match="no train/images and train/masks"):
        segmentation_split(str(tmp_path), "train", lambda x, y: (x, y))


def test_a_segmentation_run_trains_keeps_its_best_and_evaluates(plain, tmp_path, capsys):
    result = train(load_config(None, {**QUICK, "data": str(plain), "output": str(tmp_path / "run")}))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.metric == "miou" and result.best_score == max(r["val_miou"] for r in rows)
    assert all(0 <= r["val_miou"] <= 100 and 0 <= r["val_aacc"] <= 100 for r in rows)
    with safe_open(str(tmp_path / "run" / "best.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["task"] == "segmentation" and json.loads(meta["class_names"]) == SCENE_CLASSES
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "best.safetensors"), "--data", str(plain),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["miou"] == pytest.approx(result.best_score) and report["count"] == 4
    assert set(report["per_class_iou"]) == set(SCENE_CLASSES)
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "best.safetensors"), "--data", str(plain), "--json",
                 "--crop", "32", "--stride", "16", "--scales", "0.75", "1.0", "--flip"]) == 0
    augmented = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= augmented["miou"] <= 100 and augmented["count"] == 4
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "best.safetensors"), "--data", str(plain), "--json",
                 "--fast", "fp32", "--no-compile"]) == 0  # the deploy form, channels-last
    fast = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert fast["miou"] == pytest.approx(report["miou"], abs=0.5)


def test_segmentation_test_modes_are_refused_for_a_classifier(tmp_path, capsys):
    import modernconv

    modernconv.save_checkpoint(modernconv.create_model("convnext_atto", num_classes=10), tmp_path / "c.safetensors")
    assert main(["eval", "--checkpoint", str(tmp_path / "c.safetensors"), "--crop", "32", "--flip"]) == 2
    err = capsys.readouterr().err
    assert "--crop, --flip apply to segmentation checkpoints" in err and err.count("\n") == 1


def test_a_segmentation_run_resumes_exactly(plain, tmp_path, monkeypatch):
    cfg = {**QUICK, "data": str(plain), "save_every_steps": 2}
    # killed after the step-4 checkpoint, in the second epoch (4 steps each)
    assert resumed_equals_uninterrupted(cfg, tmp_path, monkeypatch, die_after=5)


def test_predict_writes_index_masks_and_overlays(plain, tmp_path, capsys):
    train(load_config(None, {**QUICK, "data": str(plain), "epochs": 1, "output": str(tmp_path / "run")}))
    images = sorted((plain / "val" / "images").iterdir())
    (tmp_path / "not_an_image.jpg").write_text("text")
    argv = ["predict", "--checkpoint", str(tmp_path / "run" / "best.safetensors"), str(images[0]), str(images[1]),
            str(tmp_path / "not_an_image.jpg"), "--output", str(tmp_path / "masks")]
    assert main(argv) == 2  # one file could not be read: said, the others written
    out, err = capsys.readouterr()
    assert "not_an_image.jpg" in err and err.count("\n") == 1
    mask = Image.open(tmp_path / "masks" / f"{images[0].stem}.png")
    assert mask.mode == "P" and mask.size == Image.open(images[0]).size
    assert set(np.unique(np.asarray(mask)).tolist()) <= set(range(len(SCENE_CLASSES)))
    overlay = Image.open(tmp_path / "masks" / f"{images[1].stem}_overlay.png")
    assert overlay.mode == "RGB" and overlay.size == mask.size
    assert main(argv[:5] + ["--output", str(tmp_path / "masks")]) == 2
    assert "--force" in capsys.readouterr().err  # nothing overwritten without it


def test_train_task_segmentation_alone_is_the_scenes_recipe():
    recipe = load_config(Path(__file__).resolve().parents[1] / "configs" / "segmentation_scenes.yaml")
    assert load_config(None, {"task": "segmentation"}) == recipe and recipe.data == "scenes"
