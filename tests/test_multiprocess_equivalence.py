"""Two gloo ranks on CPU compute what one process computes over the same global batch.

`tests/dist_worker.py` runs the CLI with every rank dumping its weights at each checkpoint (and, for SPFEM,
its first gradients before and after the hand-written averaging).

What "the same global batch" means for the metric network: rank r trains on the windows
`order[r::2]`, and the IResNet's BatchNorm normalises with the statistics of each rank's own half batch
(DistributedDataParallel does not synchronise them; SyncBatchNorm is CUDA-only). The one-process reference
below therefore runs the two halves as two forwards on one network, averages their losses and takes one
Adam step: this is the arithmetic DDP must reproduce. (A one-process run with batch_size 2B normalises over
all 2B windows and gives another loss at step 1; the test measures that too, so the difference stays known.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trainer_configs import cli_args, metric_yaml, records, spfem_yaml

from stccl.core.train_metric import INIT_CKPT_NAME
from stccl.runs import CKPT_NAME, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "dist_worker.py"
STEPS = 3


def _run(args: list[str], ranks: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
                if ranks > 1 else [sys.executable])
    proc = subprocess.run([*launcher, str(WORKER), *args], env=env, capture_output=True, text=True, timeout=240,
                          cwd=ROOT)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-6000:]}"
    return proc


def _params(state: dict, names: set[str]) -> dict:
    return {k: v for k, v in state.items() if k in names}


@pytest.fixture(scope="module")
def metric_runs(micro_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mp_metric")
    config = metric_yaml(tmp / "metric.yaml", micro_root, steps=STEPS, ckpt_every=1)
    _run([str(tmp / "dump2"), *cli_args("metric", config, tmp / "run2")], ranks=2)
    return tmp, config


def _reference_metric(config: Path, steps: int, world: int = 2, split_bn: bool = True):
    """One process: per step the ranks' half batches (order[r::world]), their mean loss, one Adam step."""
    from stccl.core.correlation import sample_positions
    from stccl.data.mead import PairedWindowDataset
    from stccl.io import seed_everything
    from stccl.core.metric_net import MetricNet
    from stccl.core.train_metric import MetricObjective, _stage_shapes, epoch_order, load_metric_config

    torch.set_num_threads(1)
    cfg = load_metric_config(config)
    seed_everything(cfg.seed)
    ds = PairedWindowDataset(cfg.data_root, cfg.alignment_file(), T=cfg.T, split="train",
                             test_actors=cfg.test_actors, size=cfg.size)
    net = MetricNet(cfg.net)
    objective = MetricObjective(net, cfg.loss, cfg.symmetric)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    shapes = _stage_shapes(net, tuple(ds[0]["neutral"].shape[-2:]))
    # rank r's windows, written out here rather than taken from stccl.distributed.shard: order[r::world]
    order = epoch_order(len(ds), cfg.seed, 0)
    usable = len(order) - len(order) % world
    halves = []
    for r in range(world):
        mine = order[r:usable:world]
        halves.append([mine[i:i + cfg.batch_size] for i in range(0, len(mine) - cfg.batch_size + 1, cfg.batch_size)])
    net.train()
    losses = []
    for step in range(steps):
        samples = sample_positions(shapes, cfg.loss.spatial_samples, cfg.loss.temporal_factor, cfg.loss.central)
        parts = []
        for r in range(world):
            items = [ds[i] for i in halves[r][step]]
            parts.append((torch.stack([it["neutral"] for it in items]), torch.stack([it["emotional"] for it in items])))
        if split_bn:
            loss = sum(objective(n, e, samples)[0] for n, e in parts) / world
        else:
            loss = objective(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), samples)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, {k: v.detach().clone() for k, v in net.named_parameters()}


def test_metric_ranks_hold_identical_weights(metric_runs):
    tmp, _ = metric_runs
    # step 0: the initial weights (ckpt_init.pt), the same on both ranks before any averaging
    for step in range(0, STEPS + 1):
        a = torch.load(tmp / "dump2" / f"rank0_step{step}.pt")
        b = torch.load(tmp / "dump2" / f"rank1_step{step}.pt")
        names = {k for k in a if "running_" not in k and "num_batches" not in k}  # parameters
        for k in names:
            assert torch.equal(a[k], b[k]), (step, k)
    # the checkpoint rank 0 wrote holds the same weights
    ckpt = load_checkpoint(tmp / "run2" / CKPT_NAME)["model"]
    assert all(torch.equal(ckpt[k], a[k]) for k in names)
    init = load_checkpoint(tmp / "run2" / INIT_CKPT_NAME)
    start = torch.load(tmp / "dump2" / "rank0_step0.pt")
    assert init["step"] == 0 and all(torch.equal(init["model"][k], start[k]) for k in names)


def test_metric_two_ranks_equal_one_process_over_the_global_batch(metric_runs):
    tmp, config = metric_runs
    losses, weights = _reference_metric(config, STEPS)
    logged = [r["loss"] for r in records(tmp / "run2")]
    assert len(logged) == STEPS
    assert logged[0] == pytest.approx(losses[0], rel=1e-5)  # step 1: same weights, same data, same positions
    assert logged == pytest.approx(losses, rel=1e-4)
    final = torch.load(tmp / "dump2" / f"rank0_step{STEPS}.pt")
    for k, v in weights.items():
        assert torch.allclose(final[k], v, rtol=1e-4, atol=1e-5), (k, float((final[k] - v).abs().max()))


def test_metric_one_process_with_the_global_batch_size(metric_runs):
    """A 1-process run with batch_size 2B sees the same windows; it differs from 2 ranks only by BN statistics."""
    tmp, config = metric_runs
    _run([str(tmp / "dump1"), *cli_args("metric", config, tmp / "run1", "--set", "batch_size=4")], ranks=1)
    one = [r["loss"] for r in records(tmp / "run1")]
    joint, _ = _reference_metric(config, 1, split_bn=False)
    assert one[0] == pytest.approx(joint[0], rel=1e-5)  # the same global batch and positions, BN over all of it
    two = [r["loss"] for r in records(tmp / "run2")]
    assert one[0] != pytest.approx(two[0], rel=1e-3)  # the known difference: per-rank BN statistics


@pytest.fixture(scope="module")
def spfem_run(micro_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mp_spfem")
    config = spfem_yaml(tmp / "spfem.yaml", micro_root, steps=STEPS, ckpt_every=1)
    _run([str(tmp / "dump2"), *cli_args("spfem", config, tmp / "run2")], ranks=2)
    return tmp


def test_spfem_gradients_are_averaged_and_ranks_stay_identical(spfem_run):
    tmp = spfem_run
    g0 = torch.load(tmp / "dump2" / "rank0_grads.pt")
    g1 = torch.load(tmp / "dump2" / "rank1_grads.pt")
    assert len(g0) == len(g1) == 2  # generator, then discriminator, at step 1
    for which, (a, b) in zip(("generator", "discriminator"), zip(g0, g1)):
        differ = [k for k in a["raw"] if not torch.equal(a["raw"][k], b["raw"][k])]
        assert differ, f"{which}: both ranks had the same gradients before averaging (same data?)"
        for k in a["raw"]:
            mean = (a["raw"][k] + b["raw"][k]) / 2
            assert torch.allclose(a["synced"][k], mean, rtol=1e-5, atol=1e-7), (which, k)
            assert torch.equal(a["synced"][k], b["synced"][k]), (which, k)
    for step in range(1, STEPS + 1):
        a = torch.load(tmp / "dump2" / f"rank0_step{step}.pt")
        b = torch.load(tmp / "dump2" / f"rank1_step{step}.pt")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), step
    assert [r["step"] for r in records(tmp / "run2")] == list(range(1, STEPS + 1))
    assert json.loads((tmp / "run2" / "config.json").read_text())["kind"] == "spfem"
