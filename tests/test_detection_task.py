"""The detection task end to end on tiny inputs: COCO's layout (category ids that are not 1..N, polygons and RLE,
crowd regions, empty images), Pascal VOC's, the built-in scenes' instances, a bad-annotation table, COCO AP with
pycocotools, training with its best weights, exact resume, eval's report and results file, and predict's pictures."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from modernconv.cli import main
from modernconv.config import load_config
from modernconv.data.coco import encode_mask
from modernconv.data.detection import SceneInstances, detection_split, detection_transform, mask_box
from modernconv.data.scenes import SCENE_CLASSES
from modernconv.dense.coco_eval import coco_scores
from modernconv.errors import DataError
from modernconv.tasks import train

from helpers import resumed_equals_uninterrupted

CATEGORY_IDS = [3, 7, 11, 20, 42]  # the five shapes under ids that are not 1..5
QUICK = dict(task="detection", detector="mask_rcnn", model="convnext_atto", epochs=2, batch_size=2, min_size=(64,),
             max_size=64, warmup_epochs=0.5, milestones=None, sched="cosine", progress=False,
             detector_options={"box_batch_size_per_image": 32, "rpn_post_nms_top_n_train": 100,
                               "rpn_post_nms_top_n_test": 50})


def write_coco(root: Path, split: str, count: int, first: int = 0) -> dict:
    """``count`` scenes as a COCO layout (root/annotations/instances_<split>2017.json, root/<split>2017/*.png):
    masks as RLE, the first object of each image as a polygon (its box's outline)."""
    scenes = SceneInstances("train", lambda *x: x)
    images, annotations = [], []
    (root / f"{split}2017").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for index in range(first, first + count):
        image, objects = scenes.objects(index)
        Image.fromarray(image).save(root / f"{split}2017" / f"{index:06d}.png")
        images.append({"id": 1000 + index, "file_name": f"{index:06d}.png", "height": 96, "width": 96})
        for j, (mask, kind) in enumerate(objects):
            x1, y1, x2, y2 = mask_box(mask)
            segmentation = [[x1, y1, x2, y1, x2, y2, x1, y2]] if j == 0 else encode_mask(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": 1000 + index,
                                "category_id": CATEGORY_IDS[kind - 1], "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": float(mask.sum()), "iscrowd": 0, "segmentation": segmentation})
    content = {"images": images, "annotations": annotations,
               "categories": [{"id": c, "name": n} for c, n in zip(reversed(CATEGORY_IDS), reversed(SCENE_CLASSES[1:]))]}
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(content))
    return content


@pytest.fixture()
def coco(tmp_path):
    write_coco(tmp_path / "coco", "train", 8)
    write_coco(tmp_path / "coco", "val", 4, first=100)
    return tmp_path / "coco"


def test_coco_layout_labels_masks_and_boxes(coco):
    data = detection_split(str(coco), "train", detection_transform(False), with_masks=True)
    assert data.class_names == SCENE_CLASSES[1:] and len(data) == 8  # categories by id, whatever their order
    image, target = data[0]
    expected_image, objects = SceneInstances("train", lambda *x: x).objects(0)
    assert image.shape == (3, 96, 96) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert target["labels"].tolist() == [kind for _, kind in objects]  # ids 3, 7, ... -> labels 1..5
    assert torch.equal(target["boxes"], torch.tensor([mask_box(m) for m, _ in objects]))
    for mask, (expected, _) in zip(target["masks"][1:], objects[1:]):  # RLE decoded exactly
        assert torch.equal(mask.bool(), torch.from_numpy(expected))
    x1, y1, x2, y2 = (int(v) for v in mask_box(objects[0][0]))
    assert target["masks"][0].sum() > 0.8 * (x2 - x1) * (y2 - y1)  # the polygon, filled
    assert data.category_id(1) == 3 and data.category_id(5) == 42


def test_crowd_empty_clipped_and_degenerate_annotations(coco):
    path = coco / "annotations" / "instances_train2017.json"
    content = json.loads(path.read_text())
    first = [a for a in content["annotations"] if a["image_id"] == 1000]
    first[0]["iscrowd"] = 1  # not trained on
    first[1]["bbox"] = [90.0, 90.0, 30.0, 30.0]  # runs off the image: clipped to (90, 90, 96, 96)
    first[2]["bbox"] = [120.0, 5.0, 10.0, 10.0]  # wholly outside: empty once clipped, skipped
    content["annotations"] = [a for a in content["annotations"] if a["image_id"] != 1001]  # an empty image
    path.write_text(json.dumps(content))
    data = detection_split(str(coco), "train", detection_transform(False), with_masks=False)
    assert len(data) == 7 and data.skipped == 1  # the empty image dropped for training
    assert len(detection_split(str(coco), "train", detection_transform(False), False, keep_empty=True)) == 8
    boxes = data[0][1]["boxes"]
    assert len(boxes) == len(first) - 2 and boxes[0].tolist() == [90.0, 90.0, 96.0, 96.0]


@pytest.mark.parametrize("change, message", [
    (lambda c: c["annotations"][0].update(category_id=99), "annotation 1 has category 99"),
    (lambda c: c["annotations"][0].update(image_id=5), "annotation 1 belongs to image 5"),
    (lambda c: c["annotations"][0].update(bbox=[1, 2, 3]), "annotation 1 has bbox"),
    (lambda c: c.pop("categories"), "not a COCO instances file"),
])
def test_bad_annotations_are_one_line(coco, change, message, tmp_path, capsys):
    path = coco / "annotations" / "instances_train2017.json"
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        detection_split(str(coco), "train", detection_transform(False), with_masks=True)
    argv = ["train", "--task", "detection", "--data", str(coco), "--epochs", "1", "--milestones", "none",
            "--output", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split()[-1] in err


def test_unreadable_json_image_and_layout_mistakes(coco, tmp_path):
    (coco / "val2017" / "000100.png").write_text("not an image")
    data = detection_split(str(coco), "val", detection_transform(False), with_masks=True)
    with pytest.raises(DataError, match="cannot read image .*000100.png"):
        data[0]
    skipping = detection_split(str(coco), "val", detection_transform(False), True, skip_bad=True)
    assert len(skipping) == 3 and skipping.bad_images == [str(coco / "val2017" / "000100.png")]
    (coco / "annotations" / "instances_val2017.json").write_text("{broken")
    with pytest.raises(DataError, match="cannot read COCO annotations"):
        detection_split(str(coco), "val", detection_transform(False), with_masks=True)
    with pytest.raises(DataError, match="no annotations/instances_train"):
        detection_split(str(tmp_path), "train", detection_transform(False), with_masks=True)


def test_pascal_voc_layout(tmp_path):
    voc = tmp_path / "VOC2007"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(voc / "JPEGImages" / "000005.jpg")
    objects = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin>"
                      f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                      for n, d, b in (("dog", 0, (11, 21, 40, 50)), ("person", 1, (1, 1, 10, 10))))
    (voc / "Annotations" / "000005.xml").write_text(
        f"<annotation><size><width>80</width><height>60</height></size>{objects}</annotation>")
    (voc / "ImageSets" / "Main" / "train.txt").write_text("000005\n")
    data = detection_split(str(voc), "train", detection_transform(False), with_masks=False)
    _, target = data[0]
    assert target["labels"].tolist() == [12] and target["boxes"].tolist() == [[10.0, 20.0, 40.0, 50.0]]
    truth = data.ground_truth()
    assert [a["iscrowd"] for a in truth["annotations"]] == [0, 1]  # difficult: ignored by the evaluation
    with pytest.raises(DataError, match="boxes only"):
        detection_split(str(voc), "train", detection_transform(False), with_masks=True)


def test_scene_instances_match_the_segmentation_scenes():
    data = SceneInstances("val", detection_transform(False))
    image, target = data[0]
    assert target["masks"].shape[0] == len(target["boxes"]) == len(target["labels"]) >= 1
    for mask, box in zip(target["masks"], target["boxes"]):
        assert torch.equal(torch.tensor(mask_box(mask.numpy())), box)  # each box is its visible mask's


def test_coco_scores_agree_with_pycocotools_and_perfect_detections_score_100(coco):
    truth = json.loads((coco / "annotations" / "instances_val2017.json").read_text())
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
                "segmentation": a["segmentation"] if isinstance(a["segmentation"], dict) else None}
               for a in truth["annotations"] if isinstance(a["segmentation"], dict)]
    scores = coco_scores(truth, perfect, masks=True)
    assert scores["bbox_ap50"] == pytest.approx(100 * len(perfect) / len(truth["annotations"]), abs=15)
    shifted = [{**r, "bbox": [r["bbox"][0] + 3, r["bbox"][1], *r["bbox"][2:]], "score": 0.5 + i / 100}
               for i, r in enumerate(perfect)]
    reference = COCO(str(coco / "annotations" / "instances_val2017.json"))
    evaluation = COCOeval(reference, reference.loadRes([{k: v for k, v in r.items() if k != "segmentation"}
                                                        for r in shifted]), "bbox")
    evaluation.evaluate(), evaluation.accumulate(), evaluation.summarize()
    ours = coco_scores(truth, [{k: v for k, v in r.items() if k != "segmentation"} for r in shifted], masks=False)
    assert ours["bbox_ap"] == pytest.approx(100 * evaluation.stats[0]) and ours["bbox_ap75"] == pytest.approx(
        100 * evaluation.stats[2])
    complete = coco_scores({**truth, "annotations": [a for a in truth["annotations"]
                                                     if isinstance(a["segmentation"], dict)]}, perfect, masks=True)
    assert complete["bbox_ap"] == pytest.approx(100) and complete["segm_ap"] == pytest.approx(100)


def test_a_detection_run_trains_keeps_its_best_and_evaluates(coco, tmp_path, capsys):
    result = train(load_config(None, {**QUICK, "data": str(coco), "output": str(tmp_path / "run")}))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.metric == "bbox_ap" and result.best_score == max(r["val_bbox_ap"] for r in rows)
    assert all(0 <= r["val_segm_ap"] <= 100 for r in rows)
    best = str(tmp_path / "run" / "best.safetensors")
    results = tmp_path / "found.json"
    assert main(["eval", "--checkpoint", best, "--data", str(coco), "--json", "--results", str(results)]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bbox_ap"] == pytest.approx(result.best_score) and report["count"] == 4 and "segm_ap75" in report
    found = json.loads(results.read_text())
    assert found and {r["category_id"] for r in found} <= set(CATEGORY_IDS)  # the file's own category ids
    reference = COCO(str(coco / "annotations" / "instances_val2017.json"))
    evaluation = COCOeval(reference, reference.loadRes(str(results)), "bbox")
    evaluation.evaluate(), evaluation.accumulate(), evaluation.summarize()
    assert 100 * evaluation.stats[0] == pytest.approx(report["bbox_ap"], abs=1e-6)  # anyone can re-score it
    pictures = tmp_path / "drawn"
    image = coco / "val2017" / "000100.png"
    assert main(["predict", "--checkpoint", best, str(image), "--output", str(pictures), "--min-score", "0"]) == 0
    drawn = Image.open(pictures / "000100.png")
    assert drawn.size == (96, 96) and drawn.mode == "RGB"
    listed = json.loads((pictures / "detections.json").read_text())  # COCO's results format, names beside
    assert isinstance(listed, list) and all(r["image_id"] == 0 and r["file_name"] == str(image) for r in listed)
    assert all(r["category"] == SCENE_CLASSES[r["category_id"]] and len(r["bbox"]) == 4 and "segmentation" in r
               for r in listed)
    assert main(["predict", "--checkpoint", best, str(image), "--output", str(pictures)]) == 2
    assert "--force" in capsys.readouterr().err


def test_a_detection_run_resumes_exactly(coco, tmp_path, monkeypatch):
    cfg = {**QUICK, "data": str(coco), "save_every_steps": 2}
    # killed after the step-4 checkpoint, in the second epoch (4 steps each)
    assert resumed_equals_uninterrupted(cfg, tmp_path, monkeypatch, die_after=5)


def test_train_task_detection_alone_is_the_scenes_recipe():
    recipe = load_config(Path(__file__).resolve().parents[1] / "configs" / "detection_scenes.yaml")
    assert load_config(None, {"task": "detection"}) == recipe and recipe.data == "scenes"


def test_large_scale_jitter_moves_boxes_and_masks_with_the_image():
    torch.manual_seed(0)
    data = SceneInstances("train", detection_transform(True, 0.5, scale_jitter=(0.3, 2.0), size=64))
    for index in range(8):
        image, target = data[index]
        assert image.shape == (3, 64, 64)
        masks, boxes = target["masks"], target["boxes"]
        assert masks.shape[1:] == (64, 64) and len(masks) == len(boxes) == len(target["labels"])
        for mask, box in zip(masks, boxes):  # each box still bounds its (cropped) mask
            if mask.any():
                ys, xs = torch.nonzero(mask, as_tuple=True)
                assert box[0] <= xs.min() + 1 and box[1] <= ys.min() + 1
                assert box[2] >= xs.max() and box[3] >= ys.max()
