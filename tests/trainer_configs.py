"""Test-only trainer configs and helpers shared by the resume, determinism and torchrun tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# keys whose values are wall-clock timings, not results
TIMING_KEYS = {"elapsed_s", "sec_per_step"}


def metric_yaml(path: Path, root: Path, steps: int = 12, ckpt_every: int = 4) -> Path:
    path.write_text(
        f"data_root: {root}\nsize: 48\nT: 3\nbatch_size: 2\nmax_steps: {steps}\nlog_every: 1\n"
        f"ckpt_every: {ckpt_every}\nthreads: 1\ndevice: cpu\n"
        "loss: {spatial_samples: [8, 4, 2, 1], temporal_factor: 2}\n")
    return path


def spfem_yaml(path: Path, root: Path, steps: int = 12, ckpt_every: int = 4) -> Path:
    path.write_text(
        f"name: baseline\ndata_root: {root}\nclip_frames: 2\nbatch_size: 2\nsteps: {steps}\nlog_every: 1\n"
        f"ckpt_every: {ckpt_every}\np_reference: 0.5\nthreads: 1\ndevice: cpu\n"
        "generator: {base_channels: 8, num_down: 1, num_res: 1, code_dim: 16}\n"
        "discriminator: {base_channels: 8, num_layers: 2}\n"
        "aux: {frame_stride: 4, steps: 5, batch_size: 8}\n")
    return path


COMMANDS = {"metric": ("train-metric", metric_yaml), "spfem": ("train-spfem", spfem_yaml)}


def cli_args(kind: str, config: Path, out: Path, *extra: str) -> list[str]:
    return [COMMANDS[kind][0], "--config", str(config), "--out", str(out), "--no-progress", *extra]


def run_cli_subprocess(args: list[str], env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m stccl.cli ARGS` in a fresh process (one thread, so the numbers match in-process runs)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "stccl.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])


def records(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]
