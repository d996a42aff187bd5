"""torchrun with 2 CPU processes (gloo): identical parameters on both ranks, equal to one process over the
same global batches."""
import json
import os
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

from modernconv.config import load_config
from modernconv.engine import train

CONFIG = dict(model="convnext_atto", data="synthetic", synthetic_samples=96, synthetic_classes=4, img_size=32,
              epochs=2, lr=1e-3, warmup_epochs=0.5, scale=[1.0, 1.0], hflip=0.0, randaugment_magnitude=None,
              random_erasing=0.0, mixup=0.0, cutmix=0.0, drop_path_rate=0.0, progress=False)

WORKER = textwrap.dedent("""
    import json, sys
    from safetensors.torch import save_file
    from modernconv.config import load_config
    from modernconv.engine import Trainer

    trainer = Trainer(load_config(None, json.loads(sys.argv[1])))
    trainer.fit()
    state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, f"{sys.argv[2]}/rank{trainer.dist.rank}.safetensors")
    trainer.close()
""")


def test_two_processes_match_one_process_over_the_same_global_batches(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cfg = json.dumps({**CONFIG, "batch_size": 8, "output": str(tmp_path / "ddp")})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), cfg, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
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
