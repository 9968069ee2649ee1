"""Optional multi-process training under `torchrun`.

Nothing here is needed on a single process: every helper degrades to the
single-process behaviour when WORLD_SIZE is unset or 1.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that torchrun describes in the environment.

    gloo on CPU, nccl on CUDA. Returns a single-process DistInfo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    faulthandler.enable()  # a rank that aborts in C++ code still prints where its threads were
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """On CUDA each rank takes the GPU of its local rank."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def shard(indices: list[int], info: DistInfo) -> list[int]:
    """This rank's share of a (shuffled) index list; every rank gets the same count."""
    if not info.enabled:
        return list(indices)
    usable = len(indices) - len(indices) % info.world_size
    return list(indices[info.rank:usable:info.world_size])


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a (detached) tensor over ranks, for logging identical numbers everywhere."""
    if not info.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def exit_without_teardown(status: int) -> None:
    """End a torchrun worker once its work is done, written and its process group destroyed.

    With torch 2.13 + gloo on CPU, a rank sometimes aborted *after* the last
    barrier, with everything already written ("terminate called without an
    active exception", SIGABRT; two of ~500 two-rank launches on a 2-core
    machine, and one CI run), which torchrun turns into a failed job.
    Leaving with os._exit skips the interpreter's and the C++ runtime's
    teardown, where that abort most likely happens (not proven: it was too
    rare to catch with faulthandler, which is now on for every rank); streams
    are flushed first, and nothing else is pending by then (checkpoints and
    logs are written atomically and synchronously).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
