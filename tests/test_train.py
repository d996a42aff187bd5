"""End-to-end training runs on small generated data: reproducibility, resume, NaN stop, outputs, CLI."""
import base64
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from helpers import Interrupt, die_after_steps
import modernconv
from modernconv.cli import main
from modernconv.config import load_config
from modernconv.tasks import train, trainer_for
from modernconv.errors import ConfigError, TrainingDivergedError

QUICK = dict(model="convnext_atto", data="synthetic", synthetic_samples=96, synthetic_classes=4, img_size=32,
             epochs=2, batch_size=16, lr=2e-3, warmup_epochs=0.5, randaugment_magnitude=None, random_erasing=0.0,
             mixup=0.0, cutmix=0.0, progress=False)


def quick(tmp_path, name="run", **overrides):
    return load_config(None, {**QUICK, "output": str(tmp_path / name), **overrides})


def weights(run_dir, name="last.safetensors"):
    return load_file(str(run_dir / name))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_holds_everything(tmp_path):
    result = train(quick(tmp_path, ema_decay=0.9))
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "metrics.csv", "last.safetensors", "best.safetensors", "state.pt",
            "curves.png"} <= files
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # numbered from 1, as on the console
    assert {"train_loss", "lr", "val_top1", "val_top4", "val_loss", "ema_val_top1"} <= rows[0].keys()  # 4 classes
    assert load_config(result.run_dir / "config.yaml").epochs == 2


def test_train_accuracy_is_over_the_batches_as_trained(tmp_path):
    """With lr 0 (the weights stay) and whole-image crops, the logged train top-1 is the model's accuracy on the
    epoch's training batches, recounted here."""
    trainer = trainer_for(quick(tmp_path, epochs=1, lr=0.0, min_lr=0.0, warmup_epochs=0, scale=(1.0, 1.0)))
    result = trainer.fit()
    trainer.close()
    hits = seen = 0
    with torch.no_grad():
        for images, labels in trainer._train_loader(0):
            hits += (trainer.model(images).argmax(1) == labels).sum().item()
            seen += len(labels)
    assert seen == trainer.steps_per_epoch * 16
    assert result.last["train_top1"] == pytest.approx(100 * hits / seen)
    assert "train top-1" in trainer.task.summary(result.last)


def test_checkpoint_hist_keeps_the_n_best_epochs(tmp_path, monkeypatch):
    trainer = trainer_for(quick(tmp_path, epochs=5, checkpoint_hist=2))
    scores, saved = iter([50.0, 80.0, 60.0, 70.0, 70.0]), {}  # the held-out top-1 of epochs 1..5
    evaluate = trainer.task.evaluate

    def scripted(ctx, model):
        metrics = {**evaluate(ctx, model), "top1": next(scores)}
        saved[len(saved) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return metrics

    monkeypatch.setattr(trainer.task, "evaluate", scripted)
    trainer.fit()
    trainer.close()
    kept = sorted(p.name for p in trainer.run_dir.glob("checkpoint-*.safetensors"))
    assert kept == ["checkpoint-2.safetensors", "checkpoint-4.safetensors"]  # 80 and the first 70
    assert same(weights(trainer.run_dir, "checkpoint-4.safetensors"), saved[4])
    assert modernconv.load_model(trainer.run_dir / "checkpoint-2.safetensors").num_classes == 4


def test_balance_weighs_classes_as_sklearn_does(tmp_path):
    from sklearn.utils.class_weight import compute_class_weight

    data = make_folder(tmp_path / "data", per_class=12)
    for extra in list((data / "train" / "red").iterdir())[3:]:
        extra.unlink()  # 12 blue, 3 red training images
    trainer = trainer_for(quick(tmp_path, data=str(data), balance=True, epochs=1, batch_size=5))
    labels = trainer.data.train.targets
    expected = compute_class_weight("balanced", classes=np.arange(2), y=np.array(labels))
    assert torch.allclose(trainer.task.class_weights, torch.tensor(expected, dtype=torch.float32))
    images, targets = next(iter(trainer._train_loader(0)))
    with torch.no_grad():
        logits = trainer.model(images)
        weighted = torch.nn.functional.cross_entropy(logits, targets, weight=trainer.task.class_weights,
                                                     label_smoothing=0.1)
        assert torch.allclose(trainer.task.loss(trainer.model, (images, targets)), weighted)
    assert trainer.fit().last["train_loss"] > 0
    trainer.close()


def test_same_seed_same_weights(tmp_path):
    a = train(quick(tmp_path, "a", mixup=0.8, cutmix=1.0, randaugment_magnitude=9, drop_path_rate=0.1))
    b = train(quick(tmp_path, "b", mixup=0.8, cutmix=1.0, randaugment_magnitude=9, drop_path_rate=0.1))
    c = train(quick(tmp_path, "c", mixup=0.8, cutmix=1.0, randaugment_magnitude=9, drop_path_rate=0.1, seed=1))
    assert same(weights(a.run_dir), weights(b.run_dir))
    assert not same(weights(a.run_dir), weights(c.run_dir))


@pytest.mark.parametrize("stop_after_steps", [None, 3], ids=["epoch-boundary", "mid-epoch"])
def test_resume_ends_with_the_uninterrupted_weights(tmp_path, monkeypatch, stop_after_steps):
    extra = dict(randaugment_magnitude=9, mixup=0.8, cutmix=1.0, save_every_steps=stop_after_steps or 0)
    full = train(quick(tmp_path, "full", **extra))
    trainer = trainer_for(quick(tmp_path, "cut", **extra))
    # dies after the first epoch's checkpoint, or after the 3rd step's
    die_after_steps(trainer, monkeypatch, stop_after_steps or trainer.steps_per_epoch)
    with pytest.raises(Interrupt):
        trainer.fit()
    trainer.close()
    resumed = train(quick(tmp_path, "cut", resume=True, **extra))
    assert same(weights(full.run_dir), weights(resumed.run_dir))
    assert len((resumed.run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = trainer_for(quick(tmp_path, epochs=3))
    real_loss = trainer.task.loss
    calls = {"n": 0}

    def loss_goes_nan(net, batch):
        calls["n"] += 1
        out = real_loss(net, batch)
        return out * float("nan") if calls["n"] > trainer.steps_per_epoch + 2 else out

    monkeypatch.setattr(trainer.task, "loss", loss_goes_nan)
    with pytest.raises(TrainingDivergedError, match="loss became nan at epoch 2"):
        trainer.fit()
    trainer.close()
    saved = weights(trainer.run_dir)
    assert all(torch.isfinite(t).all() for t in saved.values() if t.is_floating_point())
    assert len((trainer.run_dir / "metrics.jsonl").read_text().splitlines()) == 1


def test_an_existing_run_is_never_overwritten(tmp_path):
    train(quick(tmp_path, epochs=1))
    before = (tmp_path / "run" / "last.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        train(quick(tmp_path, epochs=1))
    assert (tmp_path / "run" / "last.safetensors").read_bytes() == before
    with pytest.raises(ConfigError, match="holds no run to resume"):
        train(quick(tmp_path, "empty", resume=True))


def test_resume_auto_starts_continues_or_refuses(tmp_path, monkeypatch, capsys):
    extra = dict(save_every_steps=3)
    full = train(quick(tmp_path, "full", **extra))
    trainer = trainer_for(quick(tmp_path, "cut", resume="auto", **extra))  # nothing there: a new run
    die_after_steps(trainer, monkeypatch, 3)
    with pytest.raises(Interrupt):
        trainer.fit()
    trainer.close()
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["start"] == "resume auto: started a new run (the folder held none)"
    resumed = train(quick(tmp_path, "cut", resume="auto", **extra))  # the requeued command: continues
    assert same(weights(full.run_dir), weights(resumed.run_dir))
    assert json.loads((resumed.run_dir / "summary.json").read_text())["start"] == \
        "resume auto: continued the saved run from epoch 1, batch 3 (step 3)"
    assert "resume auto: continued the saved run from epoch 1" in capsys.readouterr().out
    finished = (resumed.run_dir / "last.safetensors").read_bytes()
    train(quick(tmp_path, "cut", resume="auto", **extra))  # finished: nothing to do
    assert (resumed.run_dir / "last.safetensors").read_bytes() == finished
    with pytest.raises(ConfigError, match="with its saved settings, but these differ: lr"):
        train(quick(tmp_path, "cut", resume="auto", lr=0.1, **extra))
    # a folder another run was killed in before its first checkpoint: its own command starts it again ...
    trainer = trainer_for(quick(tmp_path, "early", resume="auto"))
    die_after_steps(trainer, monkeypatch, 0)
    with pytest.raises(Interrupt):
        trainer.fit()
    trainer.close()
    with pytest.raises(ConfigError, match=r"early holds another run's files \(it saved no checkpoint; its settings "
                                          r"differ: lr"):
        train(quick(tmp_path, "early", resume="auto", lr=0.1))  # ... another one is refused
    again = train(quick(tmp_path, "early", resume="auto", epochs=1))
    assert [json.loads(r)["epoch"] for r in (again.run_dir / "metrics.jsonl").read_text().splitlines()] == [1]
    with pytest.raises(ConfigError, match="needs --output DIR"):
        train(load_config(None, {**QUICK, "resume": "auto"}))


def test_all_the_options_together(tmp_path):
    result = train(quick(tmp_path, model="convnextv2_atto", epochs=1, accum_steps=2, layer_decay=0.8, clip_grad=1.0,
                         ema_decay=0.99, precision="bf16", channels_last=True, grad_checkpointing=True,
                         mixup=0.8, cutmix=1.0, label_smoothing=0.1, drop_path_rate=0.1, in_chans=1))
    assert torch.isfinite(torch.tensor(result.last["train_loss"]))


def test_fine_tune_from_a_checkpoint_with_other_classes(tmp_path):
    first = train(quick(tmp_path, "first", epochs=1))
    with pytest.warns(UserWarning, match="classifier not loaded"):
        second = train(quick(tmp_path, "second", epochs=1, synthetic_classes=3, init=str(first.run_dir / "last.safetensors")))
    assert weights(second.run_dir)["head.fc.weight"].shape == (3, 320)


def parse_report(text: str) -> dict:
    """What a browser would show of an eval --report page: element ids, table rows, figures, the decoded
    inline pictures and the text (html.parser: stdlib, strict enough to fail on a broken page's structure)."""
    from html.parser import HTMLParser

    found = {"ids": set(), "rows": 0, "figures": 0, "pictures": [], "text": "", "open": []}

    class Reader(HTMLParser):
        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            found["ids"].add(attrs.get("id"))
            found["rows"] += tag == "tr"
            found["figures"] += tag == "figure"
            if tag == "img":
                found["pictures"].append(base64.b64decode(attrs["src"].split(",", 1)[1]))
            elif tag not in ("meta", "br"):
                found["open"].append(tag)

        def handle_endtag(self, tag):
            assert found["open"].pop() == tag, f"</{tag}> closes another element"

        def handle_data(self, data):
            found["text"] += data

    Reader().feed(text)
    assert found["open"] == []  # every element closed
    found["text"] = " ".join(found["text"].split())
    return found


def make_folder(root, per_class=12):
    """A two-class image folder (reddish vs bluish images of assorted sizes and modes)."""
    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for cls, base in (("blue", (20, 40, 200)), ("red", (200, 30, 20))):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(per_class):
                noise = torch.randint(-30, 30, (3,), generator=g).tolist()
                color = tuple(max(0, min(255, c + n)) for c, n in zip(base, noise))
                img = Image.new("RGB", (24 + i, 30), color)
                (img.convert("P") if i % 3 == 0 else img).save(folder / f"{i}.png")
    return root


def test_val_split_divides_one_folder_and_eval_holds_out_the_same_images(tmp_path, capsys):
    data, run = make_folder(tmp_path / "data", per_class=8) / "train", tmp_path / "split"  # one folder, 2 x 8
    args = ["train", "--output", str(run), *[f"--{k.replace('_', '-')}={v}" for k, v in
                                             {**QUICK, "epochs": 1, "batch_size": 4}.items() if k != "data"],
            "--val-split", "0.25", "--data", str(data)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"preparing the data ({data}) ...\n")  # said before the folder is read
    assert "data: 12 training / 4 held-out samples" in out  # 2 of each class's 8 held out
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 4  # those 4, not the folder's 16
    from modernconv.data import build_split

    def held_out(seed):
        return [p for p, _ in build_split(str(data), "val", 3, None, val_split=0.25, split_seed=seed)[0].samples]

    assert held_out(0) == held_out(0) != held_out(1)  # the seed chooses them, the same each time
    assert main(["train", "--output", str(run), "--resume", "--epochs", "2"]) == 0  # the saved split again
    assert "data: 12 training / 4 held-out samples" in capsys.readouterr().out
    for mistake, message in ((["--data", "digits"], "digits has its own fixed split"),
                             (["--data", str(data.parent)], "has a train/ folder: --val-split divides one")):
        other = ["train", "--output", str(tmp_path / "other"), *args[3:-2], *mistake]
        assert main(other) == 2 and message in capsys.readouterr().err


def test_cli_train_eval_predict_on_an_image_folder(tmp_path, capsys):
    data, run = make_folder(tmp_path / "data"), tmp_path / "cli"
    options = {**QUICK, "data": str(data), "epochs": 3, "batch_size": 8}
    args = ["train", "--output", str(run)] + [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    assert main(args) == 0
    assert "best val top-1" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"top1", "top2", "loss", "count", "per_class", "per_class_report", "macro"} and metrics["top1"] > 50
    assert metrics["count"] == 24 and set(metrics["per_class"]) == {"blue", "red"}
    assert not list(run.glob("*confusion*"))  # a confusion PNG only when asked for
    confusion = tmp_path / "confusion.png"
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", str(data / "val"),
                 "--confusion", str(confusion)]) == 0  # a folder of class folders is its own split
    assert confusion.exists() and "top-2" in capsys.readouterr().out
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", str(data),
                 "--confusion", str(confusion)]) == 2  # never overwritten silently
    assert "pass --force" in capsys.readouterr().err
    page = tmp_path / "report.html"
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", str(data),
                 "--report", str(page)]) == 0
    assert f"report: {page}" in capsys.readouterr().out
    report = parse_report(page.read_text())
    assert report["ids"] >= {"scores", "per-class", "worst"} and len(report["pictures"]) == 2 + 24
    assert all(Image.open(io.BytesIO(p)).format == "PNG" for p in report["pictures"])  # curves, confusion, 24
    assert report["rows"] == 3 and report["figures"] == 24  # header + blue + red; every held-out image, worst first
    assert f"top-1 {metrics['top1']:.2f}%" in report["text"] and "p(true)" in report["text"]
    assert main(["predict", "--checkpoint", str(run / "best.safetensors"), str(data / "val" / "red" / "1.png"),
                 "--topk", "2", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert [p["class"] for p in pred[0]["top"]] == ["red", "blue"]
    assert main(["predict", "--checkpoint", str(run / "best.safetensors"), str(data / "val" / "red" / "1.png")]) == 0
    assert capsys.readouterr().out.startswith(str(data / "val" / "red" / "1.png") + ": red ")


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "epochs must be at least 1"),
    (["train", "--lrr", "1"], "unknown option --lrr (did you mean --lr"),
    (["train", "--data", "/no/such/folder"], "/no/such/folder"),
    (["train", "-c", "/no/recipe.yaml"], "does not exist"),
    (["eval", "--checkpoint", "/no/ckpt.safetensors"], "does not exist"),
])
def test_train_mistakes_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_run_names_its_top_k_by_the_k_it_measures(tmp_path):
    from modernconv.experiments.roadmap import run_summary
    from modernconv.plots import _present

    result = train(quick(tmp_path, synthetic_classes=3, data="synthetic", epochs=1))
    row = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert "val_top3" in row and "val_top5" not in row  # three classes: a top-3, not a flat "top-5" of 100%
    assert _present("val_top{k}", "val top-{k}", row) == [("val_top3", "val top-3")]  # the curve's label
    summary = run_summary(result.run_dir)
    assert summary["k"] == 3 and summary["topk"] == row["val_top3"]


def test_epoch_lines_say_val_loss_elapsed_eta_and_the_runs_label(tmp_path, capsys):
    from modernconv.plots import roadmap_figure

    train(quick(tmp_path, epochs=2), label="move_dw_up (seed 3)")
    lines = [line for line in capsys.readouterr().out.splitlines() if "epoch 2/2:" in line]
    assert len(lines) == 1 and lines[0].startswith("move_dw_up (seed 3): epoch 2/2: loss ")
    assert "val loss " in lines[0] and "elapsed 0:" in lines[0] and "ETA 0:00)" in lines[0]
    table = [{"step": s, "top1": t, "top1_std": 0.5, "gmacs_224": 4.0} for s, t in (("a", 91.0), ("b", 93.0))]
    assert roadmap_figure(table).axes[0].get_xlim()[0] == 0  # the roadmap's bars start at 0


def test_a_run_starts_by_saying_what_it_is(tmp_path, capsys):
    result = train(quick(tmp_path, epochs=1))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "preparing the data (synthetic) ..."
    assert out[1] == f"run {result.run_dir}: classification, convnext_atto (3.38 M parameters), 4 classes"
    assert out[2].startswith("data: 76 training / 20 held-out samples; input 3x32x32 (mean (0.485,")
    assert out[3] == "cpu, fp32, 1 process: 1 epoch of 4 steps (4 in all), 16 samples a step"
    assert out[4] == "started a new run"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["parameters"] == sum(p.numel() for p in modernconv_model(result).parameters())
    assert summary["train_samples"] == 76 and summary["total_steps"] == 4 and summary["processes"] == 1


def modernconv_model(result):
    import modernconv

    return modernconv.load_model(result.run_dir / "last.safetensors")


def test_the_curves_show_the_learning_rate():
    from modernconv.plots import curves_figure

    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "val_top1": 50.0 + e, "val_top3": 90.0,
             "lr": 1e-3 / e, **({"train_top1": 40.0 + e} if e != 2 else {})} for e in (1, 2, 3)]
    figure = curves_figure(rows)  # epoch 2 without train top-1 (resumed after its last step): a gap, no error
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["loss", "accuracy", "learning rate"]
    train_curve = next(line for line in figure.axes[1].get_lines() if line.get_label().startswith("train"))
    assert train_curve.get_ydata()[0] == 41.0 and math.isnan(train_curve.get_ydata()[1])


def test_patience_stops_a_run_that_no_longer_improves_and_best_metric_chooses_the_judge(tmp_path, capsys):
    result = train(quick(tmp_path, "flat", epochs=6, lr=0.0, warmup_epochs=0.0, patience=2))  # never improves
    rows = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 3 and result.best_epoch == 1  # epochs 2 and 3 no better: stopped after 3 of 6
    assert "no better val top1 in 2 epochs (best" in capsys.readouterr().out
    by_loss = train(quick(tmp_path, "loss", epochs=2, best_metric="loss"))
    losses = [json.loads(line)["val_loss"] for line in (by_loss.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert by_loss.metric == "loss" and by_loss.best_score == min(losses)  # lower is better for a loss
    with pytest.raises(ConfigError, match="best_metric top5 is not one of this task's metrics: top1, top4, loss"):
        train(quick(tmp_path, "bad", epochs=1, best_metric="top5"))
