"""Data package: built-in and folder data sets, transforms, MixUp/CutMix targets and deterministic loaders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from torch.utils.data import Dataset, DistributedSampler

from modernconv.data import (build_datasets, build_loader, build_mixing, eval_transform, smooth_one_hot,
                             soft_target_cross_entropy, train_transform)
from modernconv.data.generated import stratified_split
from modernconv.errors import ConfigError, UserError

MEAN3, STD3 = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ----- built-in data sets -----
def test_digits_split_is_fixed_stratified_and_seed_independent():
    labels = load_digits().target
    torch.manual_seed(123)
    np.random.seed(123)
    train, val = stratified_split(labels)
    again_train, again_val = stratified_split(labels)
    assert (len(train), len(val)) == (1438, 359)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not set(train) & set(val) and len(set(train) | set(val)) == len(labels)
    for cls in range(10):
        n = int((labels == cls).sum())
        assert int((labels[val] == cls).sum()) == round(0.2 * n)


@pytest.mark.parametrize("in_chans", [1, 3])
def test_digits_samples(in_chans):
    split = build_datasets("digits", img_size=32, in_chans=in_chans)
    assert (len(split.train), len(split.val)) == (1438, 359)
    assert split.class_names == [str(d) for d in range(10)]
    image, label = split.val[0]
    assert image.shape == (in_chans, 32, 32) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label <= 9
    assert 0 <= image.min() and image.max() <= 1 and image.max() > 0.5
    if in_chans == 3:
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    val_labels = split.val.labels.numpy()
    assert np.array_equal(val_labels, load_digits().target[stratified_split(load_digits().target)[1]])


def test_synthetic_is_deterministic_and_split():
    a = build_datasets("synthetic", img_size=16, synthetic_samples=512, synthetic_classes=10)
    torch.manual_seed(7)
    b = build_datasets("synthetic", img_size=16, synthetic_samples=512, synthetic_classes=10)
    assert (len(a.train), len(a.val)) == (412, 100)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert torch.equal(a.val[3][0], b.val[3][0]) and a.val[3][0].shape == (3, 16, 16)
    assert sorted(set(a.val.labels.tolist())) == list(range(10)) and len(a.class_names) == 10
    gray = build_datasets("synthetic", img_size=16, in_chans=1, synthetic_samples=40, synthetic_classes=4)
    assert gray.train[0][0].shape == (1, 16, 16)
    with pytest.raises(ConfigError):
        build_datasets("synthetic", img_size=16, synthetic_samples=5, synthetic_classes=4)


# ----- image folders -----
def _save(img: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def _mixed_tree(root: Path) -> Path:
    """train/{cat,dog} and val/{cat,dog} with RGB, L, RGBA, palette, CMYK, 16-bit and tiny images."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    palette = rgb.convert("P")
    palette.info["transparency"] = 0
    for split in ("train", "val"):
        _save(rgb, root / split / "cat" / "rgb.jpg")
        _save(rgb.convert("L"), root / split / "cat" / "gray.png")
        _save(rgb.convert("RGBA"), root / split / "dog" / "rgba.png")
        _save(palette, root / split / "dog" / "palette.png")
    _save(rgb.convert("CMYK"), root / "train" / "dog" / "cmyk.jpg")
    _save(Image.fromarray((rng.integers(0, 65536, (9, 9))).astype(np.uint16)), root / "train" / "cat" / "deep.png")
    _save(rgb.resize((3, 3)), root / "train" / "dog" / "tiny.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


@pytest.mark.parametrize("in_chans", [1, 3, 4])
def test_image_folder_converts_every_mode(tmp_path, in_chans):
    root = _mixed_tree(tmp_path)
    mean, std = (0.5,) * in_chans, (0.25,) * in_chans
    split = build_datasets(str(root), img_size=32, in_chans=in_chans,
                           train_transform=train_transform(32, mean, std), eval_transform=eval_transform(32, mean, std))
    assert split.class_names == ["cat", "dog"]
    assert (len(split.train), len(split.val)) == (7, 4) and split.train.bad_images == []
    for dataset in (split.train, split.val):
        for index in range(len(dataset)):
            image, label = dataset[index]
            assert image.shape == (in_chans, 32, 32) and image.dtype == torch.float32 and label in (0, 1)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    _save(Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)), tmp_path / "train" / "a" / "x.png")
    _save(Image.new("L", (4, 4)), tmp_path / "val" / "a" / "y.png")
    image, _ = build_datasets(str(tmp_path), img_size=4, in_chans=1).train[0]
    assert torch.allclose(image, torch.full_like(image, 127 / 255))


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    return path


def test_corrupt_image_raises_naming_its_path(tmp_path):
    root = _mixed_tree(tmp_path)
    bad = _corrupt(root / "train" / "cat" / "zzz_bad.jpg")
    split = build_datasets(str(root), img_size=16)
    index = [path for path, _ in split.train.samples].index(str(bad))
    with pytest.raises(UserError, match="zzz_bad.jpg") as err:
        split.train[index]
    assert "\n" not in str(err.value)


def test_corrupt_and_truncated_images_are_skipped_and_recorded(tmp_path):
    root = _mixed_tree(tmp_path)
    bad = _corrupt(root / "train" / "cat" / "bad.jpg")
    full = (root / "train" / "cat" / "rgb.jpg").read_bytes()
    truncated = root / "val" / "dog" / "truncated.jpg"
    truncated.write_bytes(full[: len(full) // 2])
    split = build_datasets(str(root), img_size=16, skip_bad_images=True)
    assert split.train.bad_images == [str(bad)] and split.val.bad_images == [str(truncated)]
    assert (len(split.train), len(split.val)) == (7, 4)
    assert str(bad) not in [path for path, _ in split.train.samples]
    assert len(split.train.targets) == len(split.train.samples)
    for index in range(len(split.train)):
        split.train[index]


def _layout(root: Path, files: list[str]) -> None:
    for name in files:
        if name.endswith("/"):
            (root / name).mkdir(parents=True, exist_ok=True)
        elif name.endswith(".txt"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("not an image")
        else:
            _save(Image.new("RGB", (4, 4)), root / name)


@pytest.mark.parametrize("files, source, message", [
    ([], "missing", "does not exist"),
    (["file.png"], "file.png", "is not a folder"),
    (["val/a/x.png"], ".", "no train/"),
    (["train/a/x.png"], ".", "no val/"),
    (["train/", "val/a/x.png"], ".", "no class folders"),
    (["train/a/x.png", "val/"], ".", "no class folders"),
    (["train/a/x.png", "train/b/", "val/a/x.png"], ".", "no readable images.*: b"),
    (["train/a/notes.txt", "val/a/x.png"], ".", "no readable images"),
    (["train/a/x.png", "val/a/"], ".", "val has no readable images"),
    (["train/a/x.png", "val/a/x.png", "val/c/x.png", "val/d/x.png"], ".", "train/ lacks: c, d"),
])
def test_bad_folder_layouts(tmp_path, files, source, message):
    _layout(tmp_path, files)
    with pytest.raises(UserError, match=message) as err:
        build_datasets(str(tmp_path / source), img_size=16)
    assert "\n" not in str(err.value)


def test_val_may_lack_some_train_classes(tmp_path):
    _layout(tmp_path, ["train/a/x.png", "train/b/x.png", "val/b/x.png"])
    split = build_datasets(str(tmp_path), img_size=8)
    assert split.class_names == ["a", "b"] and split.val.targets == [1]


# ----- transforms -----
def test_eval_transform_crops_the_centre_and_normalises_the_mean_to_zero():
    colour = (128, 64, 32)
    mean = tuple(c / 255 for c in colour)
    framed = Image.new("RGB", (36, 36), (255, 255, 255))  # Resize(int(32 / 0.875) = 36) keeps it; crop drops the frame
    framed.paste(Image.new("RGB", (32, 32), colour), (2, 2))
    out = eval_transform(32, mean, STD3)(framed)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    assert out.abs().max() < 1e-5
    assert eval_transform(32, MEAN3, STD3)(Image.new("RGB", (50, 80))).shape == (3, 32, 32)
    assert eval_transform(32, MEAN3, STD3)(torch.zeros(3, 5, 9, dtype=torch.uint8)).shape == (3, 32, 32)


def test_eval_transform_uses_std():
    out = eval_transform(8, (0.0,), (0.5,), crop_pct=1.0)(Image.new("L", (8, 8), 255))
    assert torch.allclose(out, torch.full((1, 8, 8), 2.0))


@pytest.mark.parametrize("image", [Image.new("RGB", (40, 30), (10, 200, 30)), Image.new("L", (3, 3), 90),
                                   Image.new("RGB", (1, 1)), torch.randint(0, 256, (3, 7, 5), dtype=torch.uint8)])
def test_train_transform_output_shape(image):
    transform = train_transform(24, MEAN3, STD3, color_jitter=0.4, random_erasing=1.0)
    for _ in range(5):
        out = transform(image)
        assert out.shape == (3, 24, 24) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_train_transform_steps_can_be_disabled():
    full = train_transform(16, MEAN3, STD3, color_jitter=0.4)
    bare = train_transform(16, MEAN3, STD3, hflip=0.0, randaugment_magnitude=None, random_erasing=0.0)
    assert len(full.transforms) == len(bare.transforms) + 4


@pytest.mark.parametrize("kwargs", [dict(mean=(0.5, 0.5), std=STD3), dict(mean=MEAN3, std=(0.0, 1.0, 1.0)),
                                    dict(mean=MEAN3, std=STD3, interpolation="cubic-ish"),
                                    dict(mean=MEAN3, std=STD3, randaugment_magnitude=11),
                                    dict(mean=MEAN3, std=STD3, hflip=1.5)])
def test_transform_options_are_checked(kwargs):
    with pytest.raises(ConfigError):
        train_transform(16, **kwargs)


# ----- MixUp / CutMix -----
def test_no_mixing_without_alphas():
    assert build_mixing(0.0, 0.0, num_classes=10, label_smoothing=0.1) is None


def test_unapplied_mixing_gives_exact_smoothed_one_hot():
    mixer = build_mixing(0.8, 1.0, num_classes=5, prob=0.0, label_smoothing=0.1)
    images, labels = torch.randn(4, 3, 8, 8), torch.tensor([0, 3, 4, 3])
    out, targets = mixer(images, labels)
    expected = torch.full((4, 5), 0.02)
    expected[torch.arange(4), labels] = 0.92
    assert torch.equal(out, images) and torch.allclose(targets, expected, atol=1e-7, rtol=0)


def _mixed_from(images: torch.Tensor, out: torch.Tensor, cutmix: bool) -> float:
    """The weight of the unrolled batch in ``out`` (pixel share for CutMix, projection for MixUp)."""
    rolled = images.roll(1, 0)
    if cutmix:
        return (out == images).all(1).float().mean().item()
    diff = images - rolled
    return ((out - rolled) * diff).sum().item() / (diff * diff).sum().item()


@pytest.mark.parametrize("switch_prob, cutmix", [(0.0, False), (1.0, True)])
def test_mixing_targets_follow_the_mixed_images(switch_prob, cutmix):
    num_classes, smoothing = 6, 0.1
    mixer = build_mixing(0.8, 1.0, num_classes, switch_prob=switch_prob, label_smoothing=smoothing)
    for _ in range(5):
        images, labels = torch.rand(8, 3, 16, 16), torch.randint(0, num_classes, (8,))
        out, targets = mixer(images, labels)
        lam = _mixed_from(images, out, cutmix)
        smooth = smooth_one_hot(labels, num_classes, smoothing)
        assert targets.shape == (8, num_classes)
        assert torch.allclose(targets.sum(1), torch.ones(8))
        assert torch.allclose(targets, lam * smooth + (1 - lam) * smooth.roll(1, 0), atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(mixup_alpha=-1.0), dict(prob=1.5), dict(switch_prob=-0.1),
                                    dict(label_smoothing=1.0), dict(num_classes=1)])
def test_mixing_options_are_checked(kwargs):
    with pytest.raises(ConfigError):
        build_mixing(**{"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "num_classes": 10, **kwargs})


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_soft_target_cross_entropy_matches_cross_entropy(smoothing):
    logits, labels = torch.randn(6, 7), torch.randint(0, 7, (6,))
    ours = soft_target_cross_entropy(logits, smooth_one_hot(labels, 7, smoothing))
    assert torch.allclose(ours, F.cross_entropy(logits, labels, label_smoothing=smoothing), atol=1e-6)


# ----- loaders -----
class RandomSamples(Dataset):
    """Yields (global-RNG noise standing in for augmentation, index) and counts the samples it loads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.loaded = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.loaded += 1
        return torch.rand(2), index


def _batches(loader, reseed: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if reseed is not None:
        torch.manual_seed(reseed)
    return [tuple(batch) for batch in loader]


def test_train_loader_is_deterministic_per_seed_and_epoch():
    data = RandomSamples(50)
    first = _batches(build_loader(data, 8, train=True, seed=3, epoch=1), reseed=0)
    again = _batches(build_loader(data, 8, train=True, seed=3, epoch=1), reseed=0)
    assert len(first) == 6 and all(len(b[1]) == 8 for b in first)  # drop_last
    for (x, i), (y, j) in zip(first, again):
        assert torch.equal(i, j) and torch.equal(x, y)
    order = torch.cat([b[1] for b in first])
    assert len(set(order.tolist())) == 48 and not torch.equal(order, torch.sort(order).values)
    other_epoch = torch.cat([b[1] for b in _batches(build_loader(data, 8, train=True, seed=3, epoch=2))])
    other_seed = torch.cat([b[1] for b in _batches(build_loader(data, 8, train=True, seed=4, epoch=1))])
    assert not torch.equal(order, other_epoch) and not torch.equal(order, other_seed)


def test_worker_augmentation_is_deterministic_without_reseeding():
    data = RandomSamples(24)
    first = _batches(build_loader(data, 4, train=True, seed=3, epoch=0, num_workers=1), reseed=1)
    again = _batches(build_loader(data, 4, train=True, seed=3, epoch=0, num_workers=1), reseed=2)
    nxt = _batches(build_loader(data, 4, train=True, seed=3, epoch=1, num_workers=1), reseed=1)
    assert all(torch.equal(x, y) and torch.equal(i, j) for (x, i), (y, j) in zip(first, again))
    assert not torch.equal(first[0][0], nxt[0][0])


def test_start_batch_skips_batches_without_loading_them():
    data = RandomSamples(50)
    full = _batches(build_loader(data, 8, train=True, seed=5, epoch=4))
    data.loaded = 0
    resumed = _batches(build_loader(data, 8, train=True, seed=5, epoch=4, start_batch=2))
    assert data.loaded == 4 * 8
    assert [b[1].tolist() for b in resumed] == [b[1].tolist() for b in full[2:]]
    assert _batches(build_loader(data, 8, train=True, seed=5, epoch=4, start_batch=6)) == []
    with pytest.raises(ConfigError, match="only 6 batches"):
        build_loader(data, 8, train=True, seed=5, epoch=4, start_batch=7)


def test_eval_loader_keeps_order_and_last_batch():
    batches = _batches(build_loader(RandomSamples(10), 4, train=False, seed=0))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batch_larger_than_training_set_is_an_error():
    with pytest.raises(ConfigError, match="larger than the 5 training images"):
        build_loader(RandomSamples(5), 8, train=True, seed=0)


def test_distributed_loader_shards_like_distributed_sampler():
    data = RandomSamples(21)
    shards = []
    for rank in range(2):
        loader = build_loader(data, 4, train=True, seed=9, epoch=3, distributed=True, num_replicas=2, rank=rank)
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=9, drop_last=True)
        sampler.set_epoch(3)
        shards.append([i for b in _batches(loader) for i in b[1].tolist()])
        assert shards[-1] == list(sampler)[:8]
    assert not set(shards[0]) & set(shards[1])
    later = build_loader(data, 4, train=True, seed=9, epoch=4, distributed=True, num_replicas=2, rank=0)
    assert [i for b in _batches(later) for i in b[1].tolist()] != shards[0]
    resumed = build_loader(data, 4, train=True, seed=9, epoch=3, distributed=True, num_replicas=2, rank=1,
                           start_batch=1)
    assert [i for b in _batches(resumed) for i in b[1].tolist()] == shards[1][4:]
    held_out = [[i for b in _batches(build_loader(data, 4, train=False, seed=9, distributed=True, num_replicas=2,
                                                  rank=rank)) for i in b[1].tolist()] for rank in range(2)]
    assert held_out == [list(range(0, 21, 2)), list(range(1, 21, 2))]  # disjoint, unpadded: each sample once


def test_a_symlink_loop_in_a_data_folder_is_not_followed(tmp_path):
    _layout(tmp_path, ["train/a/x.png", "train/a/y.png", "train/b/x.png", "val/a/x.png"])
    (tmp_path / "train" / "a" / "loop").symlink_to("..")  # a/loop/a/loop/... and a/loop/b would repeat and mislabel
    (tmp_path / "train" / "b" / "self").symlink_to(".")
    split = build_datasets(str(tmp_path), img_size=8)
    assert split.train.targets == [0, 0, 1]


def test_hidden_and_underscore_folders_are_not_classes(tmp_path):
    _layout(tmp_path, ["train/a/x.png", "train/b/x.png", "train/.ipynb_checkpoints/x.png", "train/_junk/x.png",
                       "val/a/x.png"])
    split = build_datasets(str(tmp_path), img_size=8)
    assert split.class_names == ["a", "b"] and split.train.targets == [0, 1]
