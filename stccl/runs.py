"""Run folders: config.json, metrics.jsonl and self-describing checkpoints.

Layout of `reports/runs/<name>/` (see STYLE.md):

    config.json       resolved options, written before any work
    machine.json      the machine of every session that trained the run (started, platform, CPU,
                      threads, device, torch version, commit), one entry per start or resume, written
                      with that session's first log line or checkpoint
    metrics.jsonl     one JSON object per logged step
    ckpt_last.pt      {"model", "optimizer", "config", "step", "rng", "extra"}
    ckpt_last.pt is written atomically; a crash during the write keeps the
    previous good checkpoint.

Both trainers (metric and SPFEM) use `RunDir`, so resume, the non-finite guard
and rank-0-only writing behave the same everywhere.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import platform
import signal
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stccl.config import to_dict
from stccl.distributed import DistInfo
from stccl.io import (StcclError, append_jsonl, atomic_path, atomic_write_bytes, atomic_write_json, read_json,
                      read_jsonl, to_json)

CKPT_NAME = "ckpt_last.pt"
MACHINE_NAME = "machine.json"


class NonFiniteLossError(StcclError):
    """Raised when a loss is NaN/inf; the last good checkpoint is kept."""


def rng_state() -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Fault injection for the crash-safety tests: when this variable names a step,
# the process writes half of that step's checkpoint to its temp file and then
# SIGKILLs itself, as a machine losing power mid-write would.
_KILL_IN_WRITE_ENV = "STCCL_TEST_KILL_IN_CHECKPOINT_WRITE"
# Test hook: when this variable names a step, the process SIGKILLs itself right
# after logging that step (before that step's checkpoint, if any), as a job
# killed between steps would. Deterministic, unlike killing from outside.
_KILL_AT_STEP_ENV = "STCCL_TEST_KILL_AT_STEP"


def save_checkpoint(path: str | Path, payload: dict) -> Path:
    """torch.save to memory, then an atomic write: never a torn checkpoint on disk."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    if os.environ.get(_KILL_IN_WRITE_ENV) == str(payload.get("step")):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
    return atomic_write_bytes(path, data)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """Load a kit checkpoint, naming the file when it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise StcclError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, wrong format, ...
        raise StcclError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); "
                         "delete it or point at another file") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise StcclError(f"{path}: not a stccl checkpoint (expected keys 'model' and 'config')")
    return ckpt


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The kit checkout's commit (with "+dirty" when tracked files differ), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(device: Any = None) -> dict:
    """What a run's numbers (wall time, steps per minute) depend on: CPU, cores, threads, device, versions."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count()
    dev = torch.device(device) if device is not None else None
    gpu = torch.cuda.get_device_name(dev) if dev is not None and dev.type == "cuda" else None
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "cpu": _cpu_model(),
            "cpu_cores": cores, "torch_threads": torch.get_num_threads(),
            "device": str(dev) if dev is not None else "not recorded", "gpu": gpu, "commit": git_commit()}


def check_finite(loss: torch.Tensor | float, step: int, run_dir: Path | None = None) -> None:
    value = float(loss)
    if not math.isfinite(value):
        where = f" in {run_dir}" if run_dir else ""
        raise NonFiniteLossError(
            f"non-finite loss ({value}) at step {step}{where}; stopped, the last good "
            f"checkpoint is kept. Lower the learning rate or check the data."
        )


class RunDir:
    """One training run's folder. Only rank 0 writes."""

    def __init__(self, path: str | Path, config: Any, dist_info: DistInfo | None = None,
                 resume: bool = False, kind: str = "run", device: Any = None):
        self.path = Path(path)
        self.config = config
        self.kind = kind
        self.dist = dist_info or DistInfo()
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.ckpt_path = self.path / CKPT_NAME
        cfg_dict = {"kind": kind, **to_dict(config)} if dataclasses.is_dataclass(config) else dict(config)
        self._cfg_dict = cfg_dict
        self._machine: dict | None = None  # this session's machine, written with the first log or checkpoint
        if self.dist.is_main:
            self._prepare(resume)
            self._machine = {**machine_info(device), "world_size": self.dist.world_size}

    def _prepare(self, resume: bool) -> None:
        # A folder whose run failed before its first logged step or checkpoint (bad data, say)
        # holds only config.json: starting afresh there loses nothing.
        started = self.metrics_path.exists() or self.ckpt_path.exists()
        if self.config_path.exists() and (started or resume):
            old = read_json(self.config_path, "run config")
            if not resume:
                raise StcclError(
                    f"{self.path} already holds a run; pass --resume to continue it or choose "
                    f"another --out (nothing was overwritten)"
                )
            if _strip_volatile(old) != _strip_volatile(json_roundtrip(self._cfg_dict)):
                diff = sorted(k for k in set(old) | set(self._cfg_dict)
                              if old.get(k) != json_roundtrip(self._cfg_dict).get(k))
                raise StcclError(
                    f"{self.config_path}: the run was started with a different config "
                    f"(keys differ: {diff}); resume with the same config or use another --out"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.config_path, self._cfg_dict)

    def _record_machine(self) -> None:
        # Written when the session first produces something (a run that fails on bad data before its
        # first step leaves only config.json). A resumed run keeps the earlier sessions' entries.
        if self._machine is None:
            return
        path = self.path / MACHINE_NAME
        sessions = []
        if path.is_file() and (self.metrics_path.exists() or self.ckpt_path.exists()):
            try:
                sessions = list(read_json(path, "run machine file").get("sessions", []))
            except (StcclError, AttributeError):
                sessions = []
        atomic_write_json(path, {"sessions": sessions + [self._machine]})
        self._machine = None

    # -- logging -----------------------------------------------------------
    def log(self, record: dict) -> None:
        if self.dist.is_main:
            self._record_machine()
            append_jsonl(self.metrics_path, record)
        if os.environ.get(_KILL_AT_STEP_ENV) == str(record.get("step")):
            os.kill(os.getpid(), signal.SIGKILL)

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    # -- checkpoints ---------------------------------------------------------
    def save(self, step: int, model: torch.nn.Module, optimizer: Any = None, extra: dict | None = None,
             name: str = CKPT_NAME) -> None:
        if not self.dist.is_main:
            return
        self._record_machine()
        payload = {
            "model": _unwrap(model).state_dict(),
            "optimizer": _state_dict_of(optimizer),
            "config": self._cfg_dict,
            "step": step,
            "rng": rng_state(),
            "extra": extra or {},
        }
        save_checkpoint(self.path / name, payload)

    def load_for_resume(self, map_location: Any = "cpu") -> dict | None:
        """The last checkpoint (or None), after checking it belongs to this config.

        metrics.jsonl lines logged after that checkpoint are dropped, so a
        resumed run's log matches an uninterrupted one.
        """
        for stale in self.path.glob(f".{CKPT_NAME}.*.tmp"):  # left by a crash mid-write
            if self.dist.is_main:
                stale.unlink(missing_ok=True)
        if not self.ckpt_path.exists():
            return None
        ckpt = load_checkpoint(self.ckpt_path, map_location)
        if _strip_volatile(json_roundtrip(ckpt["config"])) != _strip_volatile(json_roundtrip(self._cfg_dict)):
            raise StcclError(f"{self.ckpt_path}: checkpoint was written by a different config; "
                             "use another --out or the matching config")
        if self.dist.is_main:
            kept = [r for r in self.metrics() if r.get("step", -1) <= ckpt["step"]]
            with atomic_path(self.metrics_path) as tmp:
                tmp.write_text("".join(to_json(r) + "\n" for r in kept), encoding="utf-8")
        return ckpt


# keys that may legitimately differ between an interrupted run and its resume
_VOLATILE = {"out", "resume", "device", "num_workers"}


def _strip_volatile(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in _VOLATILE}


def json_roundtrip(obj: Any) -> Any:
    import json

    return json.loads(to_json(obj))


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _state_dict_of(optimizer: Any) -> Any:
    if optimizer is None:
        return None
    if isinstance(optimizer, dict):
        return {k: v.state_dict() for k, v in optimizer.items()}
    return optimizer.state_dict()


def add_run_options(p, config_help: str, set_example: str) -> None:
    """The options every resumable, config-driven trainer takes (`stccl train-metric`, `stccl pretrain-backbone`):
    --config, --out, --resume, --max-steps, --device, --set, --stop-at-step, --dry-run, --no-progress."""
    p.add_argument("--config", required=True, help=config_help)
    p.add_argument("--out", default=None, help="run folder (default: reports/runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's ckpt_last.pt")
    p.add_argument("--max-steps", type=int, default=None, help="override max_steps in the config")
    p.add_argument("--device", default=None, help="override device (auto, cpu, cuda)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override any config key (YAML value), e.g. {set_example}")
    p.add_argument("--stop-at-step", type=int, default=None,
                   help="interrupt after this step with a checkpoint (the run can be resumed)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and run folder, do nothing")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
