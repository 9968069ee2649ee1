"""Crash safety: SIGKILL between steps and during a checkpoint write, then `--resume`.

Each trainer is run in a subprocess that kills itself through the test hooks in
stccl.runs (STCCL_TEST_KILL_AT_STEP: after logging step n; STCCL_TEST_KILL_IN_
CHECKPOINT_WRITE: half-way through writing step n's checkpoint). The same command
with --resume must then finish with exactly the metrics of an uninterrupted run
(CPU, same seed): same batches, same sampled positions, same weights.
"""

from __future__ import annotations

import signal

import pytest
from trainer_configs import COMMANDS, cli_args, records, run_cli_subprocess

from stccl.cli import main as cli_main
from stccl.runs import CKPT_NAME, load_checkpoint


@pytest.mark.parametrize("kind", ["metric", "spfem"])
def test_kill_between_steps_and_mid_checkpoint_then_resume_matches_uninterrupted(kind, micro_root, tmp_path):
    config = COMMANDS[kind][1](tmp_path / f"{kind}.yaml", micro_root, steps=12, ckpt_every=4)
    full, run = tmp_path / "full", tmp_path / "killed"
    assert cli_main(cli_args(kind, config, full)) == 0
    expected = records(full)
    assert [r["step"] for r in expected] == list(range(1, 13))

    # 1) killed between steps: after logging step 6, two steps past the step-4 checkpoint
    proc = run_cli_subprocess(cli_args(kind, config, run), env={"STCCL_TEST_KILL_AT_STEP": "6"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [r["step"] for r in records(run)] == list(range(1, 7))
    assert load_checkpoint(run / CKPT_NAME)["step"] == 4

    # 2) the resumed run is killed again while writing the step-8 checkpoint:
    #    the torn temp file is left behind and the step-4 checkpoint survives
    proc = run_cli_subprocess(cli_args(kind, config, run, "--resume"),
                              env={"STCCL_TEST_KILL_IN_CHECKPOINT_WRITE": "8"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert list(run.glob(f".{CKPT_NAME}.*.tmp")), "the fault hook should leave a half-written temp file"
    assert load_checkpoint(run / CKPT_NAME)["step"] == 4

    # without --resume the folder is refused and left alone
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert cli_main(cli_args(kind, config, run)) == 2
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before

    # 3) the same command with --resume runs to the end from step 4
    assert cli_main(cli_args(kind, config, run, "--resume")) == 0
    assert not list(run.glob(f".{CKPT_NAME}.*.tmp"))
    assert records(run) == expected  # exact equality of every logged loss
    assert load_checkpoint(run / CKPT_NAME)["step"] == 12
    a, b = load_checkpoint(full / CKPT_NAME)["model"], load_checkpoint(run / CKPT_NAME)["model"]
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_resume_refuses_a_different_config(micro_root, tmp_path):
    config = COMMANDS["metric"][1](tmp_path / "a.yaml", micro_root, steps=4, ckpt_every=2)
    run = tmp_path / "run"
    assert cli_main(cli_args("metric", config, run, "--stop-at-step", "2")) == 0
    other = COMMANDS["metric"][1](tmp_path / "b.yaml", micro_root, steps=4, ckpt_every=2)
    other.write_text(other.read_text().replace("T: 3", "T: 2"))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert cli_main(cli_args("metric", other, run, "--resume")) == 2
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
