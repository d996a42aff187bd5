"""torchrun with 2 CPU processes (gloo): identical parameters on both ranks, equal to one process over the
same global batches; FCMAE pre-training with a random stream per rank that a mid-epoch resume continues."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from modernconv.config import load_config
from modernconv.config import PretrainConfig
from modernconv.tasks import train

CONFIG = dict(model="convnext_atto", data="synthetic", synthetic_samples=96, synthetic_classes=4, img_size=32,
              epochs=2, lr=1e-3, warmup_epochs=0.5, scale=[1.0, 1.0], hflip=0.0, randaugment_magnitude=None,
              random_erasing=0.0, mixup=0.0, cutmix=0.0, drop_path_rate=0.0, progress=False)

WORKER = textwrap.dedent("""
    import json, sys
    from safetensors.torch import save_file
    from modernconv.config import load_config
    from modernconv.tasks import trainer_for

    trainer = trainer_for(load_config(None, json.loads(sys.argv[1])))
    trainer.fit()
    state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, f"{sys.argv[2]}/rank{trainer.dist.rank}.safetensors")
    trainer.close()
""")


def torchrun(script, cfg: dict, out, *args) -> subprocess.CompletedProcess:
    """``script cfg out *args`` on 2 CPU processes (1 thread each) under torchrun."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), json.dumps(cfg), str(out), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_two_processes_match_one_process_over_the_same_global_batches(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = torchrun(script, {**CONFIG, "batch_size": 8, "output": str(tmp_path / "ddp")}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    single = train(load_config(None, {**CONFIG, "batch_size": 16, "output": str(tmp_path / "one")}))
    one = load_file(str(single.run_dir / "last.safetensors"))
    start = load_file(str(tmp_path / "ddp" / "last.safetensors"))
    assert all(torch.equal(start[k], rank0[k]) for k in rank0)  # rank 0 wrote the run's checkpoint
    moved = max((one[k] - rank0[k]).abs().max().item() for k in one)
    assert moved <= 1e-5
    initial = train(load_config(None, {**CONFIG, "batch_size": 16, "epochs": 1, "lr": 0.0,
                                       "output": str(tmp_path / "zero")}))
    zero = load_file(str(initial.run_dir / "last.safetensors"))
    assert max((one[k] - zero[k]).abs().max().item() for k in one) > 1e-3  # training did move the weights


PRETRAIN_WORKER = textwrap.dedent("""
    import json, sys
    import torch
    from modernconv.config import PretrainConfig, load_config
    from modernconv.pretrain import fcmae
    from modernconv.tasks import trainer_for

    cfg, out, die_after = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    masks = []
    draw = fcmae.random_mask
    fcmae.random_mask = lambda *args, **kwargs: masks.append(draw(*args, **kwargs)) or masks[-1]
    trainer = trainer_for(load_config(None, cfg, kind=PretrainConfig))
    step, steps = trainer._optimizer_step, []

    def step_then_die():
        if len(steps) == die_after:
            raise SystemExit(3)
        steps.append(1)
        step()

    trainer._optimizer_step = step_then_die
    trainer.fit()
    torch.save(torch.stack(masks), f"{out}/masks_rank{trainer.dist.rank}.pt")
    trainer.close()
""")

PRETRAIN = dict(model="convnextv2_atto", data="synthetic", synthetic_samples=48, synthetic_classes=4, img_size=64,
                epochs=2, batch_size=4, lr=1e-3, warmup_epochs=0.5, decoder_dim=32, preview_images=0,
                save_every_steps=2, progress=False)


def test_pretraining_on_two_processes_masks_each_rank_apart_and_resumes_mid_epoch_exactly(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(PRETRAIN_WORKER)
    full = torchrun(script, {**PRETRAIN, "output": str(tmp_path / "full")}, tmp_path, -1)
    assert full.returncode == 0, full.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "masks_rank0.pt"), torch.load(tmp_path / "masks_rank1.pt")
    assert rank0.shape == rank1.shape == (10, 4, 4)  # 2 epochs x 5 steps (40 training images), 4 images, 2x2 patches
    assert not torch.equal(rank0, rank1)  # each process draws its own masks
    state = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2

    cut = torchrun(script, {**PRETRAIN, "output": str(tmp_path / "cut")}, tmp_path, 8)
    assert cut.returncode != 0  # died after the step-8 checkpoint, in the middle of epoch 2
    shutil.copytree(tmp_path / "cut", tmp_path / "cut_one")
    with pytest.warns(UserWarning, match=r"saved mid-epoch by 2 process\(es\) and resumes on 1"):
        train(load_config(None, {**PRETRAIN, "output": str(tmp_path / "cut_one"), "resume": True},
                             kind=PretrainConfig))
    resumed = torchrun(script, {**PRETRAIN, "output": str(tmp_path / "cut"), "resume": True}, tmp_path, -1)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.equal(torch.load(tmp_path / "masks_rank1.pt"), rank1[8:])  # rank 1 went on with its own stream
    a, b = load_file(str(tmp_path / "full" / "last.safetensors")), load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_a_dense_run_on_two_processes_scores_each_image_once(task, tmp_path):
    """Ranks end equal, and the held-out score logged by the 2-process run (5 images: shares of 3 and 2) equals
    one process's evaluation of the same weights: no image is counted twice or left out."""
    from modernconv.conversion import model_from_checkpoint
    from modernconv.engine.inference import evaluate_detector, evaluate_segmenter
    from test_detection_task import QUICK as DETECTION, write_coco
    from test_segmentation_task import QUICK as SEGMENTATION, write_scenes

    data = tmp_path / "data"
    if task == "detection":
        write_coco(data, "train", 8)
        write_coco(data, "val", 5, first=100)
    else:
        write_scenes(data, "train", range(8))
        write_scenes(data, "val", range(100, 105))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    quick = DETECTION if task == "detection" else SEGMENTATION
    cfg = {**quick, "data": str(data), "epochs": 1, "batch_size": 2, "output": str(tmp_path / "ddp")}
    proc = torchrun(script, cfg, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    logged = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[-1])
    model, info = model_from_checkpoint(tmp_path / "ddp" / "last.safetensors")
    if task == "detection":
        scores, _, count = evaluate_detector(model, info, str(data))
        assert count == 5 and logged["val_bbox_ap"] == pytest.approx(scores["bbox_ap"], abs=1e-9)
    else:
        scores = evaluate_segmenter(model, info, str(data))
        assert scores.count == 5 and logged["val_miou"] == pytest.approx(scores.miou, abs=1e-9)
