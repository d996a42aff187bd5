"""Deterministic, resumable data loaders: the order and the augmentation depend only on (seed, epoch).

Build one loader per epoch and iterate it once. The sample order is DistributedSampler's (seed, epoch) shuffle
(with one replica when not distributed), and ``start_batch`` drops the first batches
of that order without loading them, so a run resumed mid-epoch sees exactly the batches it had not seen.

Augmentation randomness: with ``num_workers > 0`` each worker's torch, ``random`` and numpy RNGs are seeded by
torch from a base seed drawn from a second (seed, epoch) generator, so batches are reproducible. With
``num_workers == 0`` the transforms use the main process's global torch RNG: the engine reseeds it at the
start of every epoch. After a mid-epoch resume the order is exact; the augmentation draws are reproducible
but not those of the uninterrupted run."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..errors import ConfigError


def worker_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of the workers' base seed for (seed, epoch)."""
    if seed < 0 or epoch < 0:
        raise ConfigError(f"seed ({seed}) and epoch ({epoch}) must be >= 0")
    worker_seed = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(worker_seed))


def epoch_order(dataset: Dataset, train: bool, seed: int, epoch: int, distributed: bool,
                num_replicas: int | None, rank: int | None) -> list[int]:
    """This process's sample indices for the epoch: shuffled for training, in order for evaluation.

    One process shuffles exactly as DistributedSampler does, so N processes of batch B see together the
    batches that one process of batch N*B sees. Evaluation splits the set into disjoint strided shares, none
    padded, so metrics summed over the processes count every sample exactly once."""
    if distributed and not train:
        world = num_replicas if num_replicas is not None else torch.distributed.get_world_size()
        return list(range(rank if rank is not None else torch.distributed.get_rank(), len(dataset), world))
    if distributed or train:
        sampler = DistributedSampler(dataset, num_replicas=num_replicas if distributed else 1,
                                     rank=rank if distributed else 0, shuffle=train, seed=seed, drop_last=train)
        sampler.set_epoch(epoch)
        return list(sampler)
    return list(range(len(dataset)))


def batches_per_epoch(num_samples: int, batch_size: int, world_size: int = 1) -> int:
    """Full training batches each process gets from ``num_samples`` per epoch (DistributedSampler with
    ``drop_last`` gives every process ``num_samples // world_size`` samples; the last partial batch is dropped)."""
    return num_samples // world_size // batch_size


def build_loader(dataset: Dataset, batch_size: int, train: bool, seed: int, epoch: int = 0, num_workers: int = 0,
                 distributed: bool = False, start_batch: int = 0, *, num_replicas: int | None = None,
                 rank: int | None = None, pin_memory: bool = False, collate_fn: Callable | None = None) -> DataLoader:
    """A loader over one epoch of ``dataset`` (training: shuffled, last partial batch dropped), its samples put
    together by ``collate_fn`` (None: stacked tensors).

    ``num_replicas`` / ``rank`` default to the initialised process group's when ``distributed``."""
    if batch_size < 1 or start_batch < 0 or num_workers < 0:
        raise ConfigError(f"batch size ({batch_size}) must be positive and start batch ({start_batch}) and "
                          f"workers ({num_workers}) non-negative")
    worker_gen = worker_generator(seed, epoch)
    order = epoch_order(dataset, train, seed, epoch, distributed, num_replicas, rank)
    num_batches = batches_per_epoch(len(order), batch_size) if train else math.ceil(len(order) / batch_size)
    if train and num_batches == 0:
        raise ConfigError(f"batch size {batch_size} is larger than the {len(order)} training images per process; "
                          f"lower the batch size")
    if start_batch > num_batches:
        raise ConfigError(f"cannot resume at batch {start_batch}: this epoch has only {num_batches} batches "
                          f"(did the batch size change?)")
    return DataLoader(dataset, batch_size=batch_size, sampler=order[start_batch * batch_size:], drop_last=train,
                      num_workers=num_workers, generator=worker_gen, pin_memory=pin_memory, collate_fn=collate_fn)
