"""One code path for one process and for `torchrun --nproc_per_node=N`: the training shares its
batches (DistributedDataParallel), the inference its images, `own_share` of them per process.

Under torchrun (its environment variables set) the first `current_process()` joins the process
group: NCCL with one GPU per process (LOCAL_RANK), gloo on CPUs. Without torchrun it is one process
of rank 0, and every collective here returns at once.
"""
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from src.model import default_device


@dataclass(frozen=True)
class Process:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self):
        return self.rank == 0


def current_process() -> Process:
    """This process; joins the process group when started by torchrun and not joined yet."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Process(0, 1, default_device())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(dist.get_rank(), world_size, device)


def own_share(indices, proc: Process) -> list:
    """The items of `indices` this process works on: those i with i % world_size == rank, disjoint
    between the processes and together all of them."""
    return [i for i in indices if i % proc.world_size == proc.rank]


def wait_for_all() -> None:
    """Returns once every process got here (at once without torchrun)."""
    if dist.is_initialized():
        dist.barrier()


def summed(array, proc: Process) -> np.ndarray:
    """The int64 `array` summed over all processes (itself without torchrun)."""
    if not dist.is_initialized():
        return np.asarray(array, np.int64)
    total = torch.as_tensor(np.asarray(array, np.int64), device=proc.device)
    dist.all_reduce(total)
    return total.cpu().numpy()


def leave_process_group() -> None:
    """Under torchrun: waits for every process, then leaves the group (a process that exits while
    gloo's threads still run is aborted by the C++ runtime)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
