"""Catalogue of malformed inputs the kit accepts from users, and how each one is refused.

Every case builds one bad input in a scratch folder and runs the `stccl`
command that reads it. Each must give ONE clear error (exit status 2, one line
on stderr, beginning `stccl <command>: error:`) that names the file and the
problem, and must change no file that existed before: run folders, data,
checkpoints and the bad input itself are left byte-for-byte as they were.
The README ("Bad inputs") counts the entries of CASES.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
from trainer_configs import metric_yaml, spfem_yaml

from stccl.cli import main as cli_main
from stccl.io import StcclError
from stccl.runs import CKPT_NAME, load_checkpoint, save_checkpoint

REAL_CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real_clips"


@pytest.fixture(scope="module")
def metric_run(micro_root, tmp_path_factory):
    """A finished 2-step metric run (config.json, metrics.jsonl, ckpt_last.pt) to damage copies of."""
    base = tmp_path_factory.mktemp("bad_inputs")
    out = base / "metric_run"
    assert cli_main(["train-metric", "--config", str(metric_yaml(base / "m.yaml", micro_root, 2, 2)),
                     "--out", str(out), "--no-progress"]) == 0
    return out


class Ctx:
    """What a case may use: a scratch folder, the micro data set and a finished metric run."""

    def __init__(self, tmp: Path, root: Path, metric_run: Path):
        self.tmp, self.root, self._metric_run = tmp, root, metric_run

    def data_copy(self) -> Path:
        dst = self.tmp / "data"
        shutil.copytree(self.root, dst, ignore=shutil.ignore_patterns(".aux"))
        return dst

    def run_copy(self) -> Path:
        dst = self.tmp / "run"
        shutil.copytree(self._metric_run, dst)
        return dst

    def metric_config(self, extra: str = "", root: Path | None = None) -> Path:
        p = metric_yaml(self.tmp / "metric.yaml", root or self.root, 2, 2)
        p.write_text(p.read_text() + extra)
        return p

    def spfem_config(self, extra: str = "") -> Path:
        p = spfem_yaml(self.tmp / "spfem.yaml", self.root, 2, 2)
        p.write_text(p.read_text() + extra)
        return p

    def alignment(self, mutate: Callable[[dict], None]) -> Path:
        data = json.loads((self.root / "aligned_path.json").read_text())
        mutate(data)
        p = self.tmp / "aligned_bad.json"
        p.write_text(json.dumps(data))
        return p


def _first_pair(data: dict) -> list:
    actor = next(iter(data))
    emo = next(iter(data[actor]))
    return data[actor][emo][next(iter(data[actor][emo]))]


def _train_metric(ctx: Ctx, config: Path, *extra: str) -> list[str]:
    return ["train-metric", "--config", str(config), "--out", str(ctx.tmp / "new_run"), "--no-progress", *extra]


def _clip_dir(root: Path) -> Path:
    return root / "S001" / "align_img" / "neutral" / "001"


def _pairs(ctx: Ctx, align: Path, *extra: str) -> list[str]:
    return ["pairs", "--root", str(ctx.root), "--align", str(align), *extra]


# name -> (build(ctx) -> (argv, file the message must name), words the message must contain)
CASES: dict[str, tuple[Callable[[Ctx], tuple[list[str], Path]], tuple[str, ...]]] = {}


def case(name: str, *words: str):
    def register(build):
        CASES[name] = (build, words)
        return build
    return register


# -- configs -------------------------------------------------------------------
@case("metric config: unknown key", "batch_sise")
def _(ctx):
    cfg = ctx.metric_config("batch_sise: 4\n")
    return _train_metric(ctx, cfg), cfg


@case("metric config: wrong type", "batch_size")
def _(ctx):
    cfg = ctx.metric_config()
    cfg.write_text(cfg.read_text().replace("batch_size: 2", "batch_size: two"))
    return _train_metric(ctx, cfg), cfg


@case("metric config: unknown nested key", "tua")
def _(ctx):
    cfg = ctx.metric_config()
    cfg.write_text(cfg.read_text().replace("loss: {", "loss: {tua: 0.1, "))
    return _train_metric(ctx, cfg), cfg


@case("metric config: not valid YAML")
def _(ctx):
    cfg = ctx.metric_config("net: [iresnet_tiny\n")
    return _train_metric(ctx, cfg), cfg


@case("metric config: file missing", "not found")
def _(ctx):
    cfg = ctx.tmp / "no_such_config.yaml"
    return _train_metric(ctx, cfg), cfg


@case("spfem config: unknown key", "lambda_foo")
def _(ctx):
    cfg = ctx.spfem_config("lambda_foo: 1.0\n")
    return ["train-spfem", "--config", str(cfg), "--out", str(ctx.tmp / "new_run"), "--no-progress"], cfg


@case("spfem config: wrong type in a nested section", "base_channels")
def _(ctx):
    cfg = ctx.spfem_config()
    cfg.write_text(cfg.read_text().replace("base_channels: 8, num_down", "base_channels: [8], num_down"))
    return ["train-spfem", "--config", str(cfg), "--out", str(ctx.tmp / "new_run"), "--no-progress"], cfg


@case("spfem config: stccl on without a metric checkpoint", "stccl_checkpoint")
def _(ctx):
    cfg = ctx.spfem_config("stccl: true\n")
    return ["train-spfem", "--config", str(cfg), "--out", str(ctx.tmp / "new_run"), "--no-progress"], cfg


@case("params file: unknown notebook", "notebook", "99_nope")
def _(ctx):
    p = ctx.tmp / "params.yaml"
    p.write_text("notebooks: [99_nope]\n")
    return ["reproduce", "--params", str(p)], p


@case("params file: unknown key", "seedz")
def _(ctx):
    p = ctx.tmp / "params.yaml"
    p.write_text("seedz: [0]\n")
    return ["reproduce", "--params", str(p)], p


# -- alignment files -------------------------------------------------------------
@case("alignment: index lists of unequal length", "length")
def _(ctx):
    align = ctx.alignment(lambda d: _first_pair(d)[1].pop())
    return _pairs(ctx, align), align


@case("alignment: negative frame index", "negative")
def _(ctx):
    def neg(d):
        _first_pair(d)[0][0] = -3
    align = ctx.alignment(neg)
    return _pairs(ctx, align), align


@case("alignment: unknown emotion", "emotion", "grumpy")
def _(ctx):
    def rename(d):
        actor = next(iter(d))
        d[actor]["grumpy"] = d[actor].pop(next(iter(d[actor])))
    align = ctx.alignment(rename)
    return _pairs(ctx, align), align


@case("alignment: pair key not NNN_MMM", "1-1")
def _(ctx):
    def rekey(d):
        actor = next(iter(d))
        emo = next(iter(d[actor]))
        d[actor][emo]["1-1"] = d[actor][emo].pop(next(iter(d[actor][emo])))
    align = ctx.alignment(rekey)
    return _pairs(ctx, align), align


@case("alignment: not JSON")
def _(ctx):
    align = ctx.tmp / "aligned_bad.json"
    align.write_text('{"S001": {"happy": ')
    return _pairs(ctx, align), align


@case("alignment: index past the last frame on disk", "past the end")
def _(ctx):
    def far(d):
        _first_pair(d)[0][-1] = 10_000
    align = ctx.alignment(far)
    # the message names the frame folder the index does not fit
    return _pairs(ctx, align, "--check-frames"), _clip_dir(ctx.root)


@case("alignment: bad file given to train-metric", "length")
def _(ctx):
    align = ctx.alignment(lambda d: _first_pair(d)[1].pop())
    cfg = ctx.metric_config(f"align_path: {align}\n")
    return _train_metric(ctx, cfg), align


# -- frames ------------------------------------------------------------------------
@case("frames: clip folder missing", "not found")
def _(ctx):
    data = ctx.data_copy()
    shutil.rmtree(_clip_dir(data))
    return ["pairs", "--root", str(data), "--check-frames"], _clip_dir(data)


@case("frames: clip folder holds no frames", "no")
def _(ctx):
    data = ctx.data_copy()
    for f in _clip_dir(data).glob("*.jpg"):
        f.unlink()
    return ["pairs", "--root", str(data), "--check-frames"], _clip_dir(data)


@case("frames: one frame missing inside a clip", "missing")
def _(ctx):
    data = ctx.data_copy()
    gone = _clip_dir(data) / "000005.jpg"
    gone.unlink()
    return ["pairs", "--root", str(data), "--check-frames"], gone


@case("frames: corrupt JPEG files", "decode")
def _(ctx):
    data = ctx.data_copy()
    for f in data.glob("*/align_img/*/*/*.jpg"):
        f.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return _train_metric(ctx, ctx.metric_config(root=data)), data


@case("frames: data root missing", "not found")
def _(ctx):
    data = ctx.tmp / "no_such_data"
    return _train_metric(ctx, ctx.metric_config(root=data)), data


# -- videos ------------------------------------------------------------------------
def _prep_video(ctx: Ctx, video: Path) -> list[str]:
    return ["prep-video", "--video", str(video), "--out", str(ctx.tmp / "prepared"), "--actor", "X001",
            "--emotion", "neutral", "--clip", "1"]


@case("video: not a video at all", "video")
def _(ctx):
    video = ctx.tmp / "garbage.mp4"
    video.write_bytes(b"\x00\x01 not an mp4 " * 100)
    return _prep_video(ctx, video), video


@case("video: truncated mp4", "video")
def _(ctx):
    src = sorted(REAL_CLIPS.glob("*.mp4"))
    if not src:
        pytest.skip(f"no real clip under {REAL_CLIPS}")
    video = ctx.tmp / "truncated.mp4"
    data = src[0].read_bytes()
    video.write_bytes(data[: len(data) // 3])
    return _prep_video(ctx, video), video


@case("video: file missing", "not found")
def _(ctx):
    video = ctx.tmp / "missing.mp4"
    return _prep_video(ctx, video), video


# -- checkpoints ---------------------------------------------------------------------
@case("checkpoint: truncated on disk, --resume", "not a readable checkpoint")
def _(ctx):
    run = ctx.run_copy()
    ckpt = run / CKPT_NAME
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    cfg = ctx.metric_config()
    return ["train-metric", "--config", str(cfg), "--out", str(run), "--resume", "--no-progress"], ckpt


@case("checkpoint: written by another config, --resume", "different config")
def _(ctx):
    run = ctx.run_copy()
    ckpt = load_checkpoint(run / CKPT_NAME)
    ckpt["config"] = {**ckpt["config"], "T": 2}
    save_checkpoint(run / CKPT_NAME, ckpt)
    cfg = ctx.metric_config()
    return ["train-metric", "--config", str(cfg), "--out", str(run), "--resume", "--no-progress"], run / CKPT_NAME


@case("run folder: started with another config, --resume", "different config")
def _(ctx):
    run = ctx.run_copy()
    cfg = ctx.metric_config("lr: 0.5\n")
    return ["train-metric", "--config", str(cfg), "--out", str(run), "--resume", "--no-progress"], run / "config.json"


@case("run folder: reused without --resume", "--resume")
def _(ctx):
    run = ctx.run_copy()
    cfg = ctx.metric_config()
    return ["train-metric", "--config", str(cfg), "--out", str(run), "--no-progress"], run


@case("checkpoint: truncated, given to diagnose", "not a readable checkpoint")
def _(ctx):
    run = ctx.run_copy()
    ckpt = run / CKPT_NAME
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    return ["diagnose", "--checkpoint", str(ckpt), "--data", str(ctx.root), "--no-progress"], ckpt


@case("checkpoint: not a torch file", "checkpoint")
def _(ctx):
    ckpt = ctx.tmp / "notes.pt"
    ckpt.write_text("these are my notes, not weights\n")
    return ["diagnose", "--checkpoint", str(ckpt), "--data", str(ctx.root), "--no-progress"], ckpt


@case("checkpoint: an SPFEM checkpoint where a metric one is expected", "metric")
def _(ctx):
    run = ctx.run_copy()
    ckpt = load_checkpoint(run / CKPT_NAME)
    ckpt["config"] = {**ckpt["config"], "kind": "spfem"}
    path = ctx.tmp / "spfem_ckpt.pt"
    save_checkpoint(path, ckpt)
    return ["diagnose", "--checkpoint", str(path), "--data", str(ctx.root), "--no-progress"], path


@case("checkpoint: a metric run given to evaluate", "SPFEM")
def _(ctx):
    run = ctx.run_copy()
    return ["evaluate", "--run", str(run), "--no-progress"], run / CKPT_NAME


def _snapshot(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for folder in folders if folder.exists()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_clear_error_and_overwrites_nothing(name, micro_root, metric_run, tmp_path, capsys):
    build, words = CASES[name]
    ctx = Ctx(tmp_path, micro_root, metric_run)
    argv, named = build(ctx)
    before = _snapshot(tmp_path, micro_root, metric_run)
    capsys.readouterr()
    status = cli_main(argv)
    err = capsys.readouterr().err.strip()
    assert status == 2, f"{name}: exit status {status}, stderr: {err[-1500:]}"
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # tqdm bars aside
    assert len(lines) == 1 and lines[0].startswith(f"stccl {argv[0]}: error:"), err
    assert str(named) in err, f"{name}: the message does not name {named}: {err}"
    for word in words:
        assert word.lower() in err.lower(), f"{name}: expected {word!r} in: {err}"
    after = _snapshot(tmp_path, micro_root, metric_run)
    changed = [str(p) for p in before if after.get(p) != before[p]]
    assert not changed, f"{name}: files changed or removed: {changed}"
    # a training command may have created its new run folder's config.json before it met the bad
    # input; such an unstarted folder does not block the next attempt (see test below)
    new = [p for p in after if p not in before and p != tmp_path / "new_run" / "config.json"]
    assert not new, f"{name}: left new files {new}"


def test_a_run_folder_that_never_started_can_be_reused(tmp_path):
    from stccl.runs import RunDir

    RunDir(tmp_path / "run", {"lr": 1.0}, kind="metric")  # then the data turned out to be bad
    RunDir(tmp_path / "run", {"lr": 2.0}, kind="metric")  # a fresh attempt is allowed
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == 2.0
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(StcclError, match="--resume"):
        RunDir(tmp_path / "run", {"lr": 2.0}, kind="metric")


def test_catalogue_size():
    # the README's "Bad inputs" section quotes this number; update both together
    assert len(CASES) == 33
