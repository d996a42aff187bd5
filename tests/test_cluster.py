"""Cluster life under torchrun (gloo on CPU): one command that an elastic restart re-runs continues the run to
the uninterrupted weights, and two launchers joined by a c10d rendezvous (two nodes on one host) train the same
run as two processes on one node, with only global rank 0 writing."""
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

RUN = ["--model", "convnext_atto", "--data", "synthetic", "--synthetic-samples", "96", "--synthetic-classes", "4",
       "--img-size", "32", "--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--warmup-epochs", "0.5",
       "--hflip", "0", "--randaugment-magnitude", "none", "--random-erasing", "0", "--save-every-steps", "2",
       "--progress", "false"]

# `python -m modernconv` with one fault: on its first life, global rank 1 SIGKILLs itself after optimizer step
# KILL_AT (past the step-2 checkpoint, in the middle of the first epoch)
WORKER = textwrap.dedent("""
    import os, signal, sys
    from modernconv.cli import main
    from modernconv.engine.train import Trainer

    kill_at, step = int(os.environ.get("KILL_AT", "0")), Trainer._optimizer_step

    def step_or_die(self):
        done = step(self)
        self.steps_here = getattr(self, "steps_here", 0) + 1
        first_life = os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"
        if kill_at and first_life and self.dist.rank == 1 and self.steps_here == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return done

    Trainer._optimizer_step = step_or_die
    sys.exit(main(sys.argv[1:]))
""")


ELASTIC = ["--standalone", "--nproc-per-node", "2", "--max-restarts", "2"]
TWO_NODES = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:{port}",
             "--rdzv-id", "exp1"]


def test_the_readme_shows_the_tested_commands():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for args in (ELASTIC, TWO_NODES):
        shown = f"torchrun {' '.join(args).format(port=29500)}"
        assert shown in readme.replace(" \\\n        ", ""), shown
    assert readme.count("-m modernconv train -c RECIPE.yaml --output runs/exp1 --resume auto") == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script, run_dir, *torchrun_args: str, kill_at: int = 0) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KILL_AT": str(kill_at)}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *torchrun_args, str(script), "train",
                             *RUN, "--output", str(run_dir), "--resume", "auto"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def same_weights(a, b) -> bool:
    a, b = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The worker script and an uninterrupted run on 2 processes of one node."""
    root = tmp_path_factory.mktemp("cluster")
    script = root / "worker.py"
    script.write_text(WORKER)
    finish(launch(script, root / "one_node", "--standalone", "--nproc-per-node", "2"))
    return script, root / "one_node"


def test_an_elastic_restart_continues_the_run_to_the_uninterrupted_weights(cluster, tmp_path):
    script, uninterrupted = cluster
    run = tmp_path / "elastic"
    out, err = finish(launch(script, run, *ELASTIC, kill_at=3))
    assert "resume auto: started a new run (the folder held none)" in out  # the first life
    assert "resume auto: continued the saved run from epoch 1, batch 2 (step 2)" in out  # the restarted group
    assert "exitcode: -9" in err  # torchrun saw the worker killed, and restarted the group
    # the surviving process said what happened in one line, not a collective's internals
    assert "another process of this distributed run stopped" in err and "unexpected" not in err
    assert same_weights(run, uninterrupted)


def test_two_nodes_on_one_host_train_the_run_of_two_processes_on_one_node(cluster, tmp_path):
    script, uninterrupted = cluster
    run = tmp_path / "two_nodes"
    port = free_port()
    nodes = [launch(script, run, *(a.format(port=port) for a in TWO_NODES)) for _ in range(2)]
    outputs = [finish(node)[0] for node in nodes]
    assert same_weights(run, uninterrupted)
    # only global rank 0 speaks and writes: one node printed the run, and the folder holds one run's files
    assert sorted("epoch 1/1" in out for out in outputs) == [False, True]
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in uninterrupted.iterdir())
