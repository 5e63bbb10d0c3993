"""torch.distributed helpers of the trainer: rank, all-reduce, DDP wrapping, loader sharding.

Everything is a no-op in a single process, so the same script runs unchanged
under ``python`` and ``torchrun --nproc_per_node=N``.

Teardown: ``torch.distributed.nn.functional`` binds the default process group
as a default argument value (``group=group.WORLD``) when it is first imported,
and ``DistributedDataParallel`` first imports it (through ``torch._dynamo``)
when the first model is wrapped, i.e. after ``init_process_group``. Those
default values then keep the gloo group alive after
``destroy_process_group()``: its worker threads outlive the script, and at
interpreter exit a worker releasing the last collective's Python-owned tensor
needs the GIL while the interpreter finalizes, which aborts the process
(SIGABRT, "terminate called without an active exception"). Importing that
module here, when this module is imported (normally before any group exists),
binds ``None`` instead, so ``destroy_process_group()`` really stops the group.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler

if dist.is_available():  # see the module docstring: bind no live process group
    import torch.distributed.nn.functional  # noqa: F401

__all__ = [
    "all_reduce_max",
    "all_reduce_sum",
    "is_distributed",
    "no_sync",
    "rank",
    "shard_loader",
    "unwrap_ddp",
    "world_size",
    "wrap_ddp",
]


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all ranks (returned; identity in one process)."""
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_max(values: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``values`` over all ranks (identity in one process)."""
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def unwrap_ddp(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def wrap_ddp(model: nn.Module) -> nn.Module:
    """``model`` wrapped in DDP when running distributed (CPU/gloo or one device per rank)."""
    if not is_distributed() or isinstance(model, DistributedDataParallel):
        return model
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def shard_loader(loader: Any, *, shuffle_seed: int, train: bool) -> Any:
    """Give each rank its own shard of a plain ``DataLoader`` (a ``DistributedSampler``).

    Loaders that already use a ``DistributedSampler``, custom batch samplers,
    iterable datasets and non-``DataLoader`` iterables are returned unchanged
    (each rank then iterates what it was given). Training loaders keep their
    shuffling (``RandomSampler`` -> shuffled shards, reseeded per epoch by the
    trainer); validation loaders are not shuffled.
    """
    if not is_distributed() or not isinstance(loader, DataLoader):
        return loader
    if isinstance(loader.sampler, DistributedSampler) or isinstance(
        loader.dataset, IterableDataset
    ):
        return loader
    if loader.batch_size is None:  # a custom batch_sampler: cannot rebuild faithfully
        return loader
    shuffle = train and isinstance(loader.sampler, RandomSampler)
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset,
        num_replicas=world_size(),
        rank=rank(),
        shuffle=shuffle,
        seed=shuffle_seed,
        drop_last=False,
    )
    kwargs: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "sampler": sampler,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
    }
    if loader.num_workers > 0:
        kwargs["persistent_workers"] = loader.persistent_workers
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, **kwargs)


def no_sync(module: nn.Module, skip: bool) -> contextlib.AbstractContextManager[Any]:
    """``module.no_sync()`` when ``skip`` and ``module`` is DDP (a micro-batch of a gradient
    accumulation group: no all-reduce), else a null context."""
    if skip and isinstance(module, DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()
