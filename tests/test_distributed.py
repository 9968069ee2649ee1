"""Two processes under torchrun (gloo on CPU): sharded data, averaged gradients, rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from trainer_configs import COMMANDS, cli_args, records

from stccl.core.train_metric import INIT_CKPT_NAME
from stccl.runs import CKPT_NAME, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "stccl.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)


@pytest.mark.parametrize("kind", ["metric", "spfem"])
def test_two_gloo_processes_write_one_run_folder(kind, micro_root, tmp_path):
    config = COMMANDS[kind][1](tmp_path / f"{kind}.yaml", micro_root, steps=4, ckpt_every=2)
    out = tmp_path / "run"
    proc = _torchrun(cli_args(kind, config, out))
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-6000:]}"
    # rank 0 alone wrote: one config, one log with each step once, one checkpoint (and the metric run its
    # initial weights), the machine record, no temp files
    expected = ["config.json", "machine.json", "metrics.jsonl", CKPT_NAME, *([INIT_CKPT_NAME] if kind == "metric" else [])]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert json.loads((out / "config.json").read_text())["kind"] == kind
    assert [r["step"] for r in records(out)] == [1, 2, 3, 4]
    ckpt = load_checkpoint(out / CKPT_NAME)
    assert ckpt["step"] == 4 and ckpt["config"]["kind"] == kind
    assert not any(k.startswith("module.") for k in ckpt["model"])  # unwrapped: loads on one process
    if kind == "metric":
        # printed once (rank 0), and each rank saw half of the epoch: sharded sampling
        summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert len(summaries) == 1
        s = summaries[0]
        assert s["steps_per_epoch"] == (s["train_windows"] // 2) // 2  # windows / ranks / batch_size


def test_a_failing_rank_reports_its_error_and_status(micro_root, tmp_path):
    """Under torchrun the CLI leaves without interpreter teardown: the error line and exit status must survive."""
    config = COMMANDS["metric"][1](tmp_path / "metric.yaml", tmp_path / "no_such_root", steps=2, ckpt_every=1)
    proc = _torchrun(cli_args("metric", config, tmp_path / "run"))
    assert proc.returncode != 0
    assert "stccl train-metric: error:" in proc.stderr and "no_such_root" in proc.stderr
