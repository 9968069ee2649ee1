"""Test helper (not a test): `stccl.cli` with each rank's weights and first gradients dumped for comparison.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_worker.py DUMP_DIR train-metric ...
    python tests/dist_worker.py DUMP_DIR train-spfem ...

Every rank (not only rank 0, which alone writes checkpoints) saves, whenever the trainer saves a checkpoint,
its parameters and buffers to DUMP_DIR/rank{r}_step{s}.pt. For the SPFEM trainer the gradients of the first
step are also saved before and after the hand-written averaging (`_sync_grads`): DUMP_DIR/rank{r}_grads.pt,
a list with one {"raw": {...}, "synced": {...}} per call (generator, then discriminator).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from stccl import runs
from stccl.spfem import train as train_spfem


def main() -> int:
    dump = Path(sys.argv[1])
    dump.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))

    original_save = runs.RunDir.save

    def save(self, step, model, *args, **kwargs):
        state = {k: v.detach().clone() for k, v in runs._unwrap(model).state_dict().items()}
        torch.save(state, dump / f"rank{rank}_step{step}.pt")
        return original_save(self, step, model, *args, **kwargs)

    runs.RunDir.save = save

    original_sync = train_spfem._sync_grads
    calls: list[dict] = []

    def sync(module, dist_info):
        record = len(calls) < 2  # step 1: the generator's, then the discriminator's gradients
        if record:
            raw = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                   for n, p in module.named_parameters()}
        original_sync(module, dist_info)
        if record:
            synced = {n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                      for n, p in module.named_parameters()}
            calls.append({"raw": raw, "synced": synced})
            if len(calls) == 2:
                torch.save(calls, dump / f"rank{rank}_grads.pt")

    train_spfem._sync_grads = sync

    from stccl.cli import main as cli_main

    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
