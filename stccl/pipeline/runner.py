"""Batch reproduction: run the notebooks in order with papermill, from one params file.

    stccl reproduce --params params/smoke.yaml [--only 03,04] [--force] [--dry-run]

Each notebook `notebooks/NN_name.py` (jupytext py:percent) is converted in
memory and executed with kernel "python3", cwd = the project root, into
`reports/runs/<params stem>/NN_name.ipynb`. A notebook records the files it
made with `record_outputs`; the runner writes `.status/NN_name.json` after a
successful run. A step whose status is ok, whose executed notebook exists and
whose recorded outputs all exist is skipped unless --force. The first failing
notebook stops the run: its partially executed notebook is kept and the
failing cell is printed.

This module is also the glue the notebooks call (`ensure_data`,
`train_metric_run`, `train_spfem_run`, `evaluate_run`, `diagnose_json`,
`run_ablation_batch`): each one drives a `stccl` sub-command through its
documented CLI, so the notebooks never hold model code.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from stccl.config import from_dict, load_yaml, merge_overrides, to_dict
from stccl.io import StcclError, atomic_write_json, atomic_write_text, read_json, to_json

NOTEBOOKS = (
    "01_data_prep",
    "02_correlation_analysis",
    "03_train_metric",
    "04_train_spfem",
    "05_ablations",
    "06_figures_and_report",
)
ABLATION_TEMPLATE = "ablation_run"   # notebooks/ablation_run.py: one grid point, run by 05 with papermill
KERNEL = "python3"
VARIANTS = ("baseline", "vd", "cm")


# ---------------------------------------------------------------------------
# Params
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthParams:
    """Overrides of the `stccl synth` preset (None: the preset's value)."""

    identities: int | None = None
    sentences: int | None = None
    size: int | None = None
    workers: int | None = None


@dataclass(frozen=True)
class AblationRun:
    """One grid point: overrides of the metric config (non-empty -> the metric is retrained) and of SPFEM."""

    name: str
    factor: str                 # the factor varied (row group of the table), e.g. "tau"
    level: str                  # its value as shown in the table, e.g. "0.05"
    metric: dict = field(default_factory=dict)
    spfem: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AblationParams:
    metric_steps: int = 3       # steps of each metric retrain
    spfem_steps: int = 3        # steps of each SPFEM run
    seed: int = 0
    runs: tuple[AblationRun, ...] = ()
    publish_dir: str | None = None   # also write ablations.csv/.md + figure here (default.yaml: reports)


@dataclass(frozen=True)
class ReproduceParams:
    preset: str = "tiny"                       # stccl synth preset
    data_root: str | None = None               # default: reports/runs/<stem>/data (rendered there)
    seeds: tuple[int, ...] = (0,)              # SPFEM seeds of the main comparison
    device: str = "auto"
    threads: int = 0                           # torch CPU threads in the notebooks (0: torch's default)
    jobs: int = 1                              # training runs at once, each its own process (cores / threads)
    synth: SynthParams = field(default_factory=SynthParams)
    metric_config: str = "params/metric_tiny.yaml"
    metric_steps: int | None = None            # override the metric config's steps
    metric_set: dict = field(default_factory=dict)   # more metric config overrides
    spfem_config: str = "params/spfem_tiny.yaml"
    spfem_steps: int | None = None
    spfem_set: dict = field(default_factory=dict)
    variants: tuple[str, ...] = VARIANTS       # baseline, +STCCL (VD), +STCCL (CM)
    eval_args: tuple[str, ...] = ()            # extra `stccl evaluate` arguments
    diagnose_split: str = "test"
    diagnose_batches: int = 20                 # batches of windows averaged by `stccl diagnose`
    frames_to_show: int = 6                    # frames per row in the side-by-side figure
    ablation: AblationParams = field(default_factory=AblationParams)
    notebooks: tuple[str, ...] = NOTEBOOKS
    report_dir: str | None = None              # default: reports/<stem>
    run_dir: str | None = None                 # default: reports/runs/<stem>


@dataclass(frozen=True)
class Paths:
    """Where every output of one params file goes (all relative to the project root)."""

    stem: str
    params_file: Path
    run_dir: Path          # reports/runs/<stem>: executed notebooks, data, runs (not committed)
    report_dir: Path       # reports/<stem>: REPORT.md, figures, tables (committed)
    data_root: Path

    @property
    def metric_run(self) -> Path:
        return self.run_dir / "metric"

    def spfem_run(self, variant: str, seed: int) -> Path:
        return self.run_dir / f"spfem_{variant}_s{seed}"

    @property
    def ablation_dir(self) -> Path:
        return self.run_dir / "ablations"

    @property
    def outputs_dir(self) -> Path:
        return self.run_dir / "outputs"

    @property
    def status_dir(self) -> Path:
        return self.run_dir / ".status"


def load_params(path: str | os.PathLike) -> tuple[ReproduceParams, Paths]:
    """Validated params and the output paths they imply."""
    path = Path(path)
    params = from_dict(ReproduceParams, load_yaml(path), where=str(path))
    allowed = set(NOTEBOOKS)
    unknown = [n for n in params.notebooks if n not in allowed]
    if unknown:
        raise StcclError(f"{path}: key 'notebooks': unknown notebook(s) {unknown}; known: {list(NOTEBOOKS)}")
    bad = [v for v in params.variants if v not in VARIANTS]
    if bad:
        raise StcclError(f"{path}: key 'variants': unknown variant(s) {bad}; known: {list(VARIANTS)}")
    names = [r.name for r in params.ablation.runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise StcclError(f"{path}: key 'ablation.runs': duplicate run name(s) {dup}; give every run its own name")
    if not params.seeds:
        raise StcclError(f"{path}: key 'seeds': give at least one seed")
    if params.jobs < 1:
        raise StcclError(f"{path}: key 'jobs': must be >= 1, got {params.jobs}")
    stem = path.stem
    run_dir = Path(params.run_dir) if params.run_dir else Path("reports/runs") / stem
    report_dir = Path(params.report_dir) if params.report_dir else Path("reports") / stem
    data_root = Path(params.data_root) if params.data_root else run_dir / "data"
    return params, Paths(stem, path, run_dir, report_dir, data_root)


def notebook_context(params_file: str, data_root: str | None = None, preset: str | None = None,
                     device: str | None = None, seeds: Sequence[int] | None = None,
                     run_name: str | None = None) -> tuple[ReproduceParams, Paths]:
    """Params and paths for a notebook, with its papermill parameters applied on top of the params file."""
    from stccl.config import replace

    params, paths = load_params(params_file)
    changes: dict[str, Any] = {}
    if data_root:
        changes["data_root"] = str(data_root)
    if preset:
        changes["preset"] = preset
    if device:
        changes["device"] = device
    if seeds:
        changes["seeds"] = [int(s) for s in seeds]
    if changes:
        params = replace(params, **changes)
    if run_name and run_name != paths.stem:
        paths = Paths(run_name, paths.params_file,
                      Path(params.run_dir) if params.run_dir else Path("reports/runs") / run_name,
                      Path(params.report_dir) if params.report_dir else Path("reports") / run_name,
                      Path("reports/runs") / run_name / "data")
    if params.data_root:
        paths = Paths(paths.stem, paths.params_file, paths.run_dir, paths.report_dir, Path(params.data_root))
    if params.threads:
        import torch

        torch.set_num_threads(params.threads)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    return params, paths


# ---------------------------------------------------------------------------
# Glue called by the notebooks: each step is a `stccl` sub-command
# ---------------------------------------------------------------------------

_WORKER = threading.local()   # set in parallel_map's worker threads: run_cli then starts a process


def run_cli(argv: Sequence[str], capture: bool = False) -> str:
    """Run `stccl ARGV`; raise StcclError on a non-zero exit. Returns stdout if captured.

    In this process normally; in a child process (`python -m stccl`) when called from a `parallel_map`
    worker, so that concurrent runs neither share stdout redirection nor torch's thread pool.
    """
    argv = [str(a) for a in argv]
    if getattr(_WORKER, "isolated", False):
        proc = subprocess.run([sys.executable, "-m", "stccl", *argv], capture_output=True, text=True)
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        if not capture:
            sys.stdout.write(stdout)
    else:
        from stccl.cli import main

        out = io.StringIO()
        err = io.StringIO()
        with contextlib.ExitStack() as stack:
            if capture:
                stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
            rc = main(argv)
        stdout, stderr = out.getvalue(), err.getvalue()
    if rc != 0:
        raise StcclError(f"`stccl {' '.join(argv)}` failed with exit status {rc}: {stderr.strip()[-2000:]}")
    return stdout


def parallel_map(fn, items: Sequence, jobs: int = 1) -> list:
    """`[fn(x) for x in items]`, with up to `jobs` calls at once (their `stccl` commands in child processes).

    Results keep the order of `items`. At the first failure no new call starts; the running ones finish
    (their outputs are complete or resumable) and the first error is raised.
    """
    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    def call(x):
        _WORKER.isolated = True
        try:
            return fn(x)
        finally:
            _WORKER.isolated = False

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(call, x) for x in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        wait(futures)
        for f in futures:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()
        return [f.result() for f in futures]


def ensure_data(params: ReproduceParams, paths: Paths, force: bool = False) -> Path:
    """Render the synthetic data set unless `paths.data_root` already holds one (or is a user's MEAD root)."""
    root = paths.data_root
    if (root / "summary.json").is_file() and not force:
        return root
    if params.data_root and root.is_dir() and any(root.iterdir()) and not (root / "meta.json").is_file():
        return root  # a prepared MEAD-layout root given by the user: nothing to render
    argv = ["synth", "--out", root, "--preset", params.preset, "--seed", params.seeds[0], "--no-progress"]
    s = params.synth
    for flag, val in (("--identities", s.identities), ("--sentences", s.sentences), ("--size", s.size),
                      ("--workers", s.workers)):
        if val is not None:
            argv += [flag, val]
    if root.exists() and any(root.iterdir()):
        argv.append("--force")
    run_cli(argv, capture=True)
    return root


def derived_config(base: str | os.PathLike, overrides: dict, out: str | os.PathLike) -> Path:
    """Write `base` YAML with `overrides` applied to `out` (the exact config of a run, kept beside it)."""
    import yaml

    data = merge_overrides(load_yaml(base), overrides)
    return atomic_write_text(out, yaml.safe_dump(data, sort_keys=False))


def _finished(run: Path, steps: int | None) -> bool:
    """A run folder whose checkpoint and log reached `steps` (None: any checkpoint)."""
    from stccl.io import read_jsonl

    if not (run / "ckpt_last.pt").is_file():
        return False
    if steps is None:
        return True
    logged = [r.get("step", 0) for r in read_jsonl(run / "metrics.jsonl")]
    return bool(logged) and max(logged) >= steps


def _train(command: str, config: Path, run: Path, steps: int | None, force: bool) -> Path:
    if force and run.exists():
        import shutil

        shutil.rmtree(run)
    if _finished(run, steps):
        return run
    argv = [command, "--config", config, "--out", run, "--no-progress"]
    if (run / "ckpt_last.pt").is_file():
        argv.append("--resume")
    elif run.exists():
        import shutil

        shutil.rmtree(run)  # a folder without a checkpoint holds nothing worth keeping
    run_cli(argv, capture=True)
    return run


def metric_overrides(params: ReproduceParams, paths: Paths, extra: dict | None = None,
                     steps: int | None = None) -> dict:
    """Overrides of the metric config (stccl.core.train_metric.MetricTrainConfig keys; `loss.tau` reaches sections)."""
    ov: dict[str, Any] = {"data_root": str(paths.data_root), "device": params.device}
    if params.metric_steps is not None:
        ov["max_steps"] = params.metric_steps
    if params.threads:
        ov["threads"] = params.threads
    ov.update(params.metric_set)
    if steps is not None:
        ov["max_steps"] = steps
    ov.update(extra or {})
    return ov


def train_metric_run(params: ReproduceParams, paths: Paths, run: Path | None = None, extra: dict | None = None,
                     steps: int | None = None, force: bool = False) -> Path:
    """Train (or reuse) a metric network run; returns the run folder (with ckpt_last.pt)."""
    run = Path(run or paths.metric_run)
    ov = metric_overrides(params, paths, extra, steps)
    config = derived_config(params.metric_config, ov, run.parent / f"{run.name}.config.yaml")
    return _train("train-metric", config, run, load_yaml(config).get("max_steps") or None, force)


def spfem_overrides(params: ReproduceParams, paths: Paths, variant: str, seed: int,
                    metric_ckpt: Path | None = None, extra: dict | None = None, steps: int | None = None) -> dict:
    if variant not in VARIANTS:
        raise StcclError(f"unknown SPFEM variant {variant!r}; expected one of {list(VARIANTS)}")
    ov: dict[str, Any] = {"name": variant, "data_root": str(paths.data_root), "device": params.device,
                          "seed": int(seed), "stccl": variant != "baseline"}
    if variant != "baseline":
        ov["stccl_variant"] = variant
        ov["stccl_checkpoint"] = str(metric_ckpt or (paths.metric_run / "ckpt_last.pt"))
    if params.spfem_steps is not None:
        ov["steps"] = params.spfem_steps
    if params.threads:
        ov["threads"] = params.threads
    ov.update(params.spfem_set)
    if steps is not None:
        ov["steps"] = steps
    ov.update(extra or {})
    return ov


def train_spfem_run(params: ReproduceParams, paths: Paths, variant: str, seed: int, run: Path | None = None,
                    metric_ckpt: Path | None = None, extra: dict | None = None, steps: int | None = None,
                    force: bool = False) -> Path:
    """Train (or reuse) one SPFEM run: baseline, +STCCL (VD) or +STCCL (CM)."""
    run = Path(run or paths.spfem_run(variant, seed))
    ov = spfem_overrides(params, paths, variant, seed, metric_ckpt, extra, steps)
    config = derived_config(params.spfem_config, ov, run.parent / f"{run.name}.config.yaml")
    return _train("train-spfem", config, run, load_yaml(config).get("steps"), force)


def prepare_aux_nets(params: ReproduceParams, paths: Paths) -> None:
    """Train the SPFEM config's aux nets ahead of the runs (`stccl aux-nets`), one net per job.

    Runs started in parallel would otherwise each train the nets they find missing from the cache.
    """
    from stccl.spfem.aux_nets import NET_SPECS

    ov = spfem_overrides(params, paths, "baseline", params.seeds[0])
    config = derived_config(params.spfem_config, ov, paths.run_dir / "aux_nets.config.yaml")
    parallel_map(lambda name: run_cli(["aux-nets", "--config", config, "--nets", name, "--no-progress"],
                                      capture=True), list(NET_SPECS), params.jobs)


def train_and_evaluate(params: ReproduceParams, paths: Paths, force: bool = False) -> dict[tuple[str, int], Path]:
    """Every (variant, seed) SPFEM run of the main comparison, trained and evaluated, `params.jobs` at a time."""
    if params.jobs > 1:
        prepare_aux_nets(params, paths)
    todo = [(variant, seed) for seed in params.seeds for variant in params.variants]

    def one(task: tuple[str, int]) -> Path:
        variant, seed = task
        run = train_spfem_run(params, paths, variant, seed, force=force)
        evaluate_run(params, run, force=force)
        return run

    return dict(zip(todo, parallel_map(one, todo, params.jobs)))


def evaluate_run(params: ReproduceParams, run: Path, force: bool = False) -> dict:
    """`stccl evaluate --run RUN` (skipped when eval.json is newer than the checkpoint); returns eval.json."""
    run = Path(run)
    ev = run / "eval.json"
    ckpt = run / "ckpt_last.pt"
    if force or not ev.is_file() or (ckpt.is_file() and ev.stat().st_mtime < ckpt.stat().st_mtime):
        run_cli(["evaluate", "--run", run, "--no-progress", *params.eval_args], capture=True)
    return read_json(ev, "evaluation file")


def diagnose_json(checkpoint: Path, data_root: Path, out: Path, split: str = "test", batches: int = 20,
                  force: bool = False) -> dict:
    """`stccl diagnose` pos/neg similarities of a trained checkpoint, saved to `out` (JSON) and returned."""
    out = Path(out)
    if out.is_file() and not force:
        return read_json(out, "diagnose output")
    argv = ["diagnose", "--checkpoint", checkpoint, "--data", data_root, "--split", split, "--batches", batches,
            "--no-progress"]
    text = run_cli(argv, capture=True)
    result = _last_json(text, " ".join(map(str, argv)))
    atomic_write_json(out, result)
    return result


def diagnose_before(params: ReproduceParams, paths: Paths, force: bool = False) -> dict:
    """Pos/neg similarities of the metric network at initialisation (same seed and architecture as the run
    notebook 03 trains, as `stccl diagnose --untrained` builds it), saved to run_dir/diagnose_before.json."""
    out = paths.run_dir / "diagnose_before.json"
    if out.is_file() and not force:
        return read_json(out, "diagnose output")
    from stccl.data.mead import PairedWindowDataset
    from stccl.core.diagnose import correlation_diagnostic
    from stccl.io import seed_everything
    from stccl.core.metric_net import MetricNet
    from stccl.core.train_metric import load_metric_config

    config = derived_config(params.metric_config, metric_overrides(params, paths),
                            paths.run_dir / "metric_untrained.config.yaml")
    cfg = load_metric_config(config)
    seed_everything(cfg.seed)
    net = MetricNet(cfg.net)
    dataset = PairedWindowDataset(cfg.data_root, cfg.alignment_file(), T=cfg.T, split=params.diagnose_split,
                                  test_actors=cfg.test_actors, size=cfg.size)
    result = correlation_diagnostic(net, dataset, cfg.loss, max_batches=params.diagnose_batches)
    result = {"checkpoint": None, "untrained": True, "step": 0, "data": str(cfg.data_root),
              "split": params.diagnose_split, **result}
    atomic_write_json(out, result)
    return result


def evaluate_copy_baseline(params: ReproduceParams, paths: Paths, reference_run: Path, force: bool = False) -> dict:
    """The 'copy the input' reference (perfect speech, no expression change), scored like `reference_run`.

    `stccl evaluate --baseline copy --like RUN` takes the run's data, size and aux config, so the same cached
    evaluation nets score it as the runs.
    """
    out = paths.run_dir / "eval_copy"
    if force or not (out / "eval.json").is_file():
        run_cli(["evaluate", "--baseline", "copy", "--like", reference_run, "--out", out, "--no-progress",
                 *params.eval_args], capture=True)
    return read_json(out / "eval.json", "copy-baseline evaluation")


def save_side_by_side(paths: Paths, runs: dict[str, Path], out: Path, emotion: str = "happy",
                      n_frames: int = 6) -> Path:
    """Frames of one held-out clip: source, ground truth and each run's output, saved as .npz for the figures."""
    import numpy as np
    import torch

    from stccl.data.mead import EMOTIONS, MeadLayout, frames_to_tensor, resolve_test_actors
    from stccl.spfem.evaluate import generator_output_fn
    from stccl.io import atomic_path
    from stccl.data.synth import render_target
    from stccl.spfem.train import load_generator

    root = paths.data_root
    layout = MeadLayout(root)
    actor = resolve_test_actors(root)[0]
    clip = layout.clips(actor, "neutral")[0]
    n = layout.num_frames(actor, "neutral", clip)
    idx = np.linspace(0, n - 1, n_frames).round().astype(int)
    rows, frames = [], []
    for name, run in runs.items():
        G, cfg = load_generator(run, "cpu")
        source = layout.load_frames(actor, "neutral", clip, np.arange(n), cfg.size)  # (N, 3, H, W)
        with torch.no_grad():
            output = generator_output_fn(G, "cpu")(source, EMOTIONS.index(emotion), None).clamp(0, 1)
        if not rows:
            target = frames_to_tensor(render_target(root, actor, clip, emotion), cfg.size)
            rows += ["source (neutral)", f"ground truth ({emotion})"]
            frames += [source[idx], target[idx]]
        rows.append(name)
        frames.append(output[idx])
    arr = (torch.stack(frames).permute(0, 1, 3, 4, 2).numpy() * 255 + 0.5).astype(np.uint8)  # (R, N, H, W, 3)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, frames=arr, rows=np.array(rows), frame_index=idx,
                            title=np.array(f"test actor {actor}, sentence {clip:03d}: neutral -> {emotion}"))
    return out


def _last_json(text: str, what: str) -> Any:
    import json

    start = text.find("{")
    if start < 0:
        raise StcclError(f"`stccl {what}` printed no JSON; got: {text[-500:]!r}")
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise StcclError(f"`stccl {what}` printed invalid JSON ({exc})") from None


def record_outputs(paths: Paths, notebook: str, files: dict[str, str | os.PathLike],
                   values: dict[str, Any] | None = None) -> Path:
    """Called at the end of a notebook: the files it made (checked by the skip logic) and headline values."""
    missing = [f"{k}: {v}" for k, v in files.items() if not Path(v).exists()]
    if missing:
        raise StcclError(f"notebook {notebook}: declared output(s) missing: {missing}")
    return atomic_write_json(paths.outputs_dir / f"{notebook}.json",
                             {"notebook": notebook, "files": {k: str(v) for k, v in files.items()},
                              "values": values or {}})


def read_outputs(paths: Paths, notebook: str) -> dict:
    return read_json(paths.outputs_dir / f"{notebook}.json", f"recorded outputs of notebook {notebook}")


# ---------------------------------------------------------------------------
# Ablation batch (papermill over one YAML per grid point)
# ---------------------------------------------------------------------------

def write_ablation_params(params: ReproduceParams, paths: Paths) -> list[Path]:
    """One YAML per grid point under reports/runs/<stem>/ablations/params/ (the batch's inputs)."""
    import yaml

    out = []
    for r in params.ablation.runs:
        p = paths.ablation_dir / "params" / f"{r.name}.yaml"
        atomic_write_text(p, yaml.safe_dump({"params_file": str(paths.params_file), **to_dict(r)}, sort_keys=False))
        out.append(p)
    return out


def ablation_metric_dir(paths: Paths, overrides: dict) -> Path:
    """Grid points with the same metric overrides share one metric retrain (keyed by the overrides)."""
    import hashlib

    key = to_json(dict(sorted(overrides.items())))
    return paths.ablation_dir / f"metric_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def ablation_run(params: ReproduceParams, paths: Paths, run: AblationRun, force: bool = False) -> dict:
    """Train the metric (per distinct metric overrides) + SPFEM + evaluate one grid point; returns its row.

    Every grid point, the default one included, uses a metric retrained with `ablation.metric_steps`, so
    the rows differ only in the factor varied. The SPFEM variant comes from `spfem: {variant: vd|cm|baseline}`.
    """
    a = params.ablation
    folder = paths.ablation_dir / run.name
    extra = dict(run.spfem)
    variant = extra.pop("variant", "vd")
    metric_ckpt = None
    metric_dir = None
    if variant != "baseline":
        metric_dir = ablation_metric_dir(paths, dict(run.metric))
        train_metric_run(params, paths, run=metric_dir, extra=dict(run.metric), steps=a.metric_steps, force=force)
        metric_ckpt = metric_dir / "ckpt_last.pt"
    s = train_spfem_run(params, paths, variant, a.seed, run=folder / "spfem", metric_ckpt=metric_ckpt,
                        extra=extra, steps=a.spfem_steps, force=force)
    ev = evaluate_run(params, s, force=force)
    row = {"run": run.name, "factor": run.factor, "level": run.level, "variant": variant,
           "metric_run": str(metric_dir) if metric_dir else "", "metric_overrides": to_json(dict(run.metric)),
           "spfem_overrides": to_json(dict(run.spfem)), "metric_steps": a.metric_steps,
           "spfem_steps": a.spfem_steps, **flat_scores(ev)}
    atomic_write_json(folder / "row.json", row)
    return row


def flat_scores(ev: dict) -> dict[str, float]:
    """The numeric headline scores of an eval.json (its 'summary' mapping, else its top-level numbers)."""
    src = ev.get("summary", ev) if isinstance(ev, dict) else {}
    out = {}
    for k, v in src.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def run_ablation_batch(params: ReproduceParams, paths: Paths, force: bool = False,
                       progress: bool = True) -> list[dict]:
    """Execute notebooks/ablation_run.py once per grid YAML with papermill; returns the result rows.

    The distinct metric retrains are done first (grid points share them), then the grid points run,
    `params.jobs` at a time. `force` clears the grid's folder and starts it over.
    """
    import shutil

    from tqdm import tqdm

    a = params.ablation
    if force and paths.ablation_dir.exists():
        shutil.rmtree(paths.ablation_dir)
    files = write_ablation_params(params, paths)
    metric_sets: list[dict] = []
    for r in a.runs:
        if dict(r.spfem).get("variant", "vd") != "baseline" and dict(r.metric) not in metric_sets:
            metric_sets.append(dict(r.metric))
    parallel_map(lambda m: train_metric_run(params, paths, run=ablation_metric_dir(paths, m), extra=m,
                                            steps=a.metric_steps), metric_sets, params.jobs)
    bar = tqdm(total=len(a.runs), desc="ablations", disable=not progress, file=sys.stderr)

    def one(item: tuple[AblationRun, Path]) -> dict:
        r, pfile = item
        folder = paths.ablation_dir / r.name
        nb_out = folder / f"{ABLATION_TEMPLATE}.ipynb"
        status = folder / "status.json"
        if not _step_done(status, nb_out, [folder / "row.json"]):
            ok, msg, secs = execute_notebook(Path("notebooks") / f"{ABLATION_TEMPLATE}.py", nb_out,
                                             {"params_file": str(paths.params_file), "run_name": r.name,
                                              "data_root": str(paths.data_root), "run_stem": paths.stem,
                                              "force": False})
            _write_status(status, ok, secs, msg)
            if not ok:
                raise StcclError(f"ablation run {r.name} ({pfile}) failed: {msg}; see {nb_out}")
        bar.update(1)
        return read_json(folder / "row.json", f"ablation result of {r.name}")

    try:
        return parallel_map(one, list(zip(a.runs, files)), params.jobs)
    finally:
        bar.close()


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    notebook: str
    source: Path
    output: Path
    action: str       # "run" | "skip" | "force"


def _step_done(status: Path, nb_out: Path, outputs: Sequence[Path]) -> bool:
    if not status.is_file() or not nb_out.is_file():
        return False
    try:
        ok = read_json(status).get("status") == "ok"
    except StcclError:
        return False
    return ok and all(Path(p).exists() for p in outputs)


def _declared_outputs(paths: Paths, notebook: str) -> list[Path] | None:
    rec = paths.outputs_dir / f"{notebook}.json"
    if not rec.is_file():
        return None
    try:
        return [Path(p) for p in read_json(rec).get("files", {}).values()]
    except StcclError:
        return None


def parse_only(only: str | None, path: Path) -> list[str] | None:
    """'03,04' or '03_train_metric' -> notebook names; unknown -> StcclError."""
    if not only:
        return None
    names = []
    for item in (s.strip() for s in only.split(",") if s.strip()):
        hits = [n for n in NOTEBOOKS if n == item or n.split("_", 1)[0] == item]
        if not hits:
            raise StcclError(f"--only {only!r}: unknown notebook {item!r}; use numbers like 03 or names "
                             f"from {list(NOTEBOOKS)}")
        names.extend(hits)
    return names


def plan(params_path: str | os.PathLike, only: str | None = None, force: bool = False) -> tuple[list[Step], Paths]:
    params, paths = load_params(params_path)
    chosen = parse_only(only, paths.params_file)
    names = [n for n in params.notebooks if chosen is None or n in chosen]
    if chosen:
        absent = [n for n in chosen if n not in params.notebooks]
        if absent:
            raise StcclError(f"{paths.params_file}: --only names {absent}, which its 'notebooks' list leaves out")
    steps = []
    for n in names:
        out = paths.run_dir / f"{n}.ipynb"
        declared = _declared_outputs(paths, n)
        done = declared is not None and _step_done(paths.status_dir / f"{n}.json", out, declared)
        action = "force" if force else ("skip" if done else "run")
        steps.append(Step(n, Path("notebooks") / f"{n}.py", out, action))
    return steps, paths


def notebook_parameters(paths: Paths, params: ReproduceParams, force: bool = False) -> dict:
    """What papermill injects into every notebook's `parameters` cell."""
    return {"params_file": str(paths.params_file), "data_root": str(paths.data_root), "preset": params.preset,
            "device": params.device, "seeds": list(params.seeds), "run_name": paths.stem, "force": bool(force)}


def execute_notebook(source: Path, output: Path, parameters: dict, progress: bool = False,
                     cwd: Path | None = None) -> tuple[bool, str, float]:
    """Execute a jupytext .py notebook into `output` with papermill. Returns (ok, message, seconds)."""
    import jupytext
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    if not source.is_file():
        raise StcclError(f"notebook source not found: {source}; run from the project root")
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    from jupyter_client.kernelspec import NoSuchKernel

    try:
        pm.execute_notebook(nb, str(output), parameters=parameters, kernel_name=KERNEL,
                            cwd=str(cwd or Path.cwd()), progress_bar=progress, log_output=False)
    except NoSuchKernel:
        raise StcclError(f"no Jupyter kernel named {KERNEL!r}; install it with `make setup` (or "
                         f"`.venv/bin/python -m ipykernel install --sys-prefix --name {KERNEL}`)") from None
    except PapermillExecutionError as exc:
        # cell_index counts every cell of the executed notebook, the injected-parameters cell included
        src = exc.source.strip().splitlines()
        head = src[0] if src else ""
        msg = (f"cell {exc.cell_index} (In [{exc.exec_count}]) of {source} failed with {exc.ename}: "
               f"{exc.evalue}\n  cell starts: {head}")
        return False, msg, time.perf_counter() - t0
    return True, "ok", time.perf_counter() - t0


def _write_status(path: Path, ok: bool, seconds: float, message: str) -> None:
    atomic_write_json(path, {"status": "ok" if ok else "failed", "seconds": round(seconds, 2), "message": message,
                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def reproduce(params_path: str | os.PathLike, only: str | None = None, force: bool = False,
              dry_run: bool = False, progress: bool = True, out=None) -> int:
    """Run the plan; returns 0, or 1 at the first failed notebook."""
    out = out or sys.stdout
    steps, paths = plan(params_path, only, force)
    params, _ = load_params(params_path)
    if dry_run:
        print(f"plan for {paths.params_file} -> {paths.run_dir} (report: {paths.report_dir})", file=out)
        for s in steps:
            print(f"  {s.action:5s} {s.source} -> {s.output}", file=out)
        return 0
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    timings = {}
    for s in steps:
        if s.action == "skip":
            print(f"[skip] {s.notebook} (done: {s.output}; --force to rerun)", file=out, flush=True)
            continue
        print(f"[run ] {s.notebook} -> {s.output}", file=out, flush=True)
        status = paths.status_dir / f"{s.notebook}.json"
        status.unlink(missing_ok=True)
        ok, msg, secs = execute_notebook(s.source, s.output, notebook_parameters(paths, params, force),
                                         progress=progress)
        _write_status(status, ok, secs, msg)
        timings[s.notebook] = round(secs, 1)
        if not ok:
            print(f"[FAIL] {s.notebook}: {msg}\n  executed notebook saved: {s.output}", file=out, flush=True)
            return 1
        print(f"[ ok ] {s.notebook} in {secs:.1f} s", file=out, flush=True)
    total = time.perf_counter() - t_all
    if timings:
        atomic_write_json(paths.run_dir / "timings.json", {"notebooks": timings, "total_s": round(total, 1)})
    print(f"done in {total:.1f} s; report: {paths.report_dir / 'REPORT.md'}", file=out)
    return 0


def _cmd_reproduce(args) -> int:
    return reproduce(args.params, only=args.only, force=args.force, dry_run=args.dry_run,
                     progress=not args.no_progress)


def add_cli(sub) -> None:
    p = sub.add_parser("reproduce", help="run the notebooks in order with papermill (the whole reproduction)",
                       description="Execute notebooks/01..06 with papermill from one params file into "
                                   "reports/runs/<params stem>/, skipping finished steps.")
    p.add_argument("--params", default="params/smoke.yaml", help="params file (default params/smoke.yaml)")
    p.add_argument("--only", default=None, help="comma-separated notebooks, e.g. 03,04")
    p.add_argument("--force", action="store_true", help="rerun steps (and their runs) even if done")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--no-progress", action="store_true", help="no papermill progress bars")
    p.set_defaults(func=_cmd_reproduce)
