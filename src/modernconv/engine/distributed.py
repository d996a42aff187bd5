"""Multi-process training on PyTorch's own engine (torchrun + DistributedDataParallel)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_rank() -> int:
    """This process's rank as torchrun set it in the environment (0 when run alone)."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        store = _restart_store(world)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", store=store,
                                rank=info.rank if store else -1, world_size=world if store else -1)
    # depthwise (C, 1, k, k) weight grads come back with a different stride on their size-1 dim: same layout
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def _restart_store(world: int) -> dist.Store | None:
    """The store a group restarted by torchrun (``--max-restarts``) must join through, or None for torch's own.

    torchrun shares its rendezvous store with the workers, so a restarted group can read the addresses the
    group before it left there and wait for dead processes (pytorch issue 135712). On one node each restart's
    keys get their own prefix (all workers share the agent's restart count); across nodes the counts differ,
    so that launch must give every group a store of its own (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1)."""
    env = os.environ
    if env.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or int(env.get("TORCHELASTIC_MAX_RESTARTS", "0")) == 0:
        return None
    if int(env.get("GROUP_WORLD_SIZE", "1")) > 1:
        raise ConfigError("torchrun --max-restarts across nodes: launch every node with "
                          "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 (a restarted group would otherwise read the old "
                          "group's addresses from the shared store and hang)")
    shared = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), world, is_master=False,
                           timeout=default_pg_timeout)
    return dist.PrefixStore(f"modernconv/restart{env.get('TORCHELASTIC_RESTART_COUNT', '0')}", shared)


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``values`` over all processes (a no-op on one)."""
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_max(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The largest of ``values`` over all processes, element by element (a no-op on one)."""
    if info.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every process: DDP keeps the parameters equal, but
    each process updates its statistics on its own share after DDP's last broadcast, so the processes would
    evaluate (and rank 0 save) different models."""
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def gather_objects(obj: object, info: DistInfo) -> list:
    """Every process's ``obj``, in rank order (``[obj]`` on one process); every rank must call it."""
    if not info.enabled:
        return [obj]
    gathered: list = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every process (``obj`` itself on one); every rank must call it."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
