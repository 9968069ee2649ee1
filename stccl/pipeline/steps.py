"""The notebooks' steps: render data, train and evaluate runs, diagnose, each a direct call into the package.

Every step builds its typed config from the params file (`metric_config`,
`spfem_config`, `ReproduceParams.eval`) and calls the package function
(`train_metric(cfg, run)`, `train_spfem(cfg, run)`, `evaluate_run(run, opts)`);
a step whose outputs are complete is skipped. A training run whose folder is
empty is filled from a shipped checkpoint (`checkpoints/`, stccl.checkpoints)
trained with the same config on the same data, unless asked to retrain
(`force`, `stccl reproduce --retrain`, `shipped_checkpoints: false`). Several runs at once go through
`parallel_map`: a pool of spawned processes, each given the frozen config, so
that concurrent runs share neither stdout nor torch's thread pool.
"""

from __future__ import annotations

import functools
import multiprocessing
import shutil
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from stccl.checkpoints import SHIPPED_RECORD, find_shipped, retrain_requested, reuse
from stccl.config import to_dict
from stccl.core.diagnose import correlation_diagnostic
from stccl.core.losses import network_from_checkpoint
from stccl.core.metric_net import MetricNet
from stccl.core.train_metric import MetricTrainConfig, load_metric_config, train_metric
from stccl.data.mead import PairedWindowDataset
from stccl.data.synth import synthesize
from stccl.io import StcclError, atomic_write_json, read_json, read_jsonl, seed_everything
from stccl.pipeline.params import STCCL_VARIANTS, VARIANTS, Paths, ReproduceParams, synth_config
from stccl.runs import load_checkpoint
from stccl.spfem.aux_nets import NET_SPECS, load_aux_nets
from stccl.spfem.config import SpfemConfig, load_spfem_config
from stccl.spfem.evaluate import EvalOptions, eval_name, evaluate_baseline, evaluate_run as evaluate_spfem, like_run
from stccl.spfem.train import train_spfem


def parallel_map(fn: Callable, items: Sequence, jobs: int = 1) -> list:
    """`[fn(x) for x in items]`, with up to `jobs` calls at once, each in a spawned process.

    `fn` and the items must pickle (a module-level function, or a functools.partial of one, and frozen
    configs). Results keep the order of `items`. At the first failure no new call starts; the running
    ones finish (their outputs are complete or resumable) and the first error is raised.
    """
    items = list(items)
    if jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(fn, x) for x in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        wait(futures)
        for f in futures:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()
        return [f.result() for f in futures]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def ensure_data(params: ReproduceParams, paths: Paths, force: bool = False) -> Path:
    """Render the synthetic data set unless `paths.data_root` already holds one (or is a user's MEAD root)."""
    root = paths.data_root
    if (root / "summary.json").is_file() and not force:
        return root
    if params.data_root and root.is_dir() and any(root.iterdir()) and not (root / "meta.json").is_file():
        return root  # a prepared MEAD-layout root given by the user: nothing to render
    synthesize(root, synth_config(params), seed=params.seeds[0], force=root.exists() and any(root.iterdir()),
               progress=False)
    return root


# ---------------------------------------------------------------------------
# Configs of the runs
# ---------------------------------------------------------------------------

def metric_overrides(params: ReproduceParams, paths: Paths, extra: dict | None = None,
                     steps: int | None = None) -> dict:
    """Overrides of the metric config (MetricTrainConfig keys; `loss.tau` reaches sections)."""
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


def metric_config(params: ReproduceParams, paths: Paths, extra: dict | None = None,
                  steps: int | None = None) -> MetricTrainConfig:
    """The metric training config of this reproduction (`params.metric_config` with its overrides)."""
    return load_metric_config(params.metric_config, metric_overrides(params, paths, extra, steps))


def spfem_overrides(params: ReproduceParams, paths: Paths, variant: str, seed: int,
                    metric_ckpt: Path | None = None, extra: dict | None = None, steps: int | None = None) -> dict:
    if variant not in VARIANTS:
        raise StcclError(f"unknown SPFEM variant {variant!r}; expected one of {list(VARIANTS)}")
    ov: dict[str, Any] = {"name": variant, "data_root": str(paths.data_root), "device": params.device,
                          "seed": int(seed), "stccl": variant in STCCL_VARIANTS}
    if variant in STCCL_VARIANTS:
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
    if variant == "weak_emotion" and "lambda_cls" not in (extra or {}):
        # the control weakens whatever emotion weight the baseline of this reproduction uses
        base = load_spfem_config(params.spfem_config, {**ov, "name": "baseline"})
        ov["lambda_cls"] = params.weak_emotion_cls_factor * base.lambda_cls
    return ov


def spfem_config(params: ReproduceParams, paths: Paths, variant: str, seed: int, metric_ckpt: Path | None = None,
                 extra: dict | None = None, steps: int | None = None) -> SpfemConfig:
    """The SPFEM config of one run: baseline, edit-less control (weak_emotion), +STCCL (VD) or +STCCL (CM)."""
    return load_spfem_config(params.spfem_config,
                             spfem_overrides(params, paths, variant, seed, metric_ckpt, extra, steps))


# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------

def _finished(run: Path, steps: int | None) -> bool:
    """A run folder whose checkpoint and log reached `steps` (None: any checkpoint)."""
    if not (run / "ckpt_last.pt").is_file():
        return False
    if steps is None:
        return True
    logged = [r.get("step", 0) for r in read_jsonl(run / "metrics.jsonl")]
    return bool(logged) and max(logged) >= steps


def _prepare_run(run: Path, steps: int | None, force: bool) -> bool | None:
    """None: the run is finished; else whether to resume from its checkpoint (folders without one are cleared)."""
    if force and run.exists():
        shutil.rmtree(run)
    if _finished(run, steps):
        return None
    if (run / "ckpt_last.pt").is_file():
        return True
    if run.exists():
        shutil.rmtree(run)  # a folder without a checkpoint holds nothing worth keeping
    return False


def _from_shipped(kind: str, cfg: Any, run: Path) -> bool:
    """Fill the empty folder `run` from a shipped checkpoint of the same config and data; False if none."""
    run_cfg = {"kind": kind, **to_dict(cfg)}  # as RunDir writes config.json
    hit = find_shipped(run_cfg)
    if hit is None:
        return False
    reuse(run, run_cfg, *hit)
    return True


def say_if_shipped(run: Path) -> None:
    """Print (into the notebook's output) that a run's weights come from a shipped checkpoint, if they do."""
    record = Path(run) / SHIPPED_RECORD
    if record.is_file():
        src = read_json(record, "shipped-checkpoint record")
        print(f"run {run}: weights from the shipped checkpoint {src.get('checkpoint')} (sha256 "
              f"{str(src.get('sha256'))[:12]}...; same training config and data), not trained here. To train it "
              f"instead: `stccl reproduce --force`, or remove the folder and pass --retrain (or set "
              f"shipped_checkpoints: false).", flush=True)


def run_metric(cfg: MetricTrainConfig, run: Path, force: bool = False, shipped: bool = True) -> Path:
    """Train (or resume, or reuse, or fill from a shipped checkpoint) a metric run of `cfg` in `run`."""
    resume = _prepare_run(run, cfg.max_steps or None, force)
    if resume is False and shipped and not force and not retrain_requested() and _from_shipped("metric", cfg, run):
        return run
    if resume is not None:
        train_metric(cfg, run, resume=resume, progress=False)
    return run


def run_spfem(cfg: SpfemConfig, run: Path, force: bool = False, shipped: bool = True) -> Path:
    """Train (or resume, or reuse, or fill from a shipped checkpoint) an SPFEM run of `cfg` in `run`."""
    resume = _prepare_run(run, cfg.steps, force)
    if resume is False and shipped and not force and not retrain_requested() and _from_shipped("spfem", cfg, run):
        return run
    if resume is not None:
        train_spfem(cfg, run, resume=resume, progress=False)
    return run


def train_metric_run(params: ReproduceParams, paths: Paths, run: Path | None = None, extra: dict | None = None,
                     steps: int | None = None, force: bool = False) -> Path:
    """Train (or reuse, or take from checkpoints/) a metric network run; returns the run folder (with ckpt_last.pt)."""
    run = run_metric(metric_config(params, paths, extra, steps), Path(run or paths.metric_run), force,
                     params.shipped_checkpoints)
    say_if_shipped(run)
    return run


def train_spfem_run(params: ReproduceParams, paths: Paths, variant: str, seed: int, run: Path | None = None,
                    metric_ckpt: Path | None = None, extra: dict | None = None, steps: int | None = None,
                    force: bool = False) -> Path:
    """Train (or reuse, or take from checkpoints/) one SPFEM run: baseline, +STCCL (VD) or +STCCL (CM)."""
    cfg = spfem_config(params, paths, variant, seed, metric_ckpt, extra, steps)
    run = run_spfem(cfg, Path(run or paths.spfem_run(variant, seed)), force, params.shipped_checkpoints)
    say_if_shipped(run)
    return run


def evaluate_spfem_run(run: Path, opts: EvalOptions, force: bool = False) -> dict:
    """Evaluate a run (skipped when its evaluation is newer than the checkpoint); returns the evaluation."""
    run = Path(run)
    ev = run / f"{eval_name(opts)}.json"
    ckpt = run / "ckpt_last.pt"
    if force or not ev.is_file() or (ckpt.is_file() and ev.stat().st_mtime < ckpt.stat().st_mtime):
        evaluate_spfem(run, opts, progress=False, out_name=eval_name(opts))
    return read_json(ev, "evaluation file")


def evaluate_run(params: ReproduceParams, run: Path, force: bool = False) -> dict:
    """`evaluate_spfem_run` with the params file's evaluation options."""
    return evaluate_spfem_run(run, params.eval, force)


def _aux_net(cfg: SpfemConfig, name: str) -> str:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    load_aux_nets(cfg.data_root, [name], cfg.aux, "cpu", progress=False)
    return name


def prepare_aux_nets(params: ReproduceParams, paths: Paths) -> None:
    """Train the SPFEM config's aux nets ahead of the runs, one net per job.

    Runs started in parallel would otherwise each train the nets they find missing from the cache.
    """
    cfg = spfem_config(params, paths, "baseline", params.seeds[0])
    parallel_map(functools.partial(_aux_net, cfg), list(NET_SPECS), params.jobs)


def _train_and_evaluate(task: tuple[SpfemConfig, Path], opts: EvalOptions, force: bool, shipped: bool = True) -> Path:
    cfg, run = task
    run_spfem(cfg, run, force, shipped)
    evaluate_spfem_run(run, opts, force)
    return run


def train_and_evaluate(params: ReproduceParams, paths: Paths, force: bool = False) -> dict[tuple[str, int], Path]:
    """Every (variant, seed) SPFEM run of the main comparison, trained and evaluated, `params.jobs` at a time."""
    if params.jobs > 1:
        prepare_aux_nets(params, paths)
    todo = [(variant, seed) for seed in params.seeds for variant in params.variants]
    tasks = [(spfem_config(params, paths, v, s), paths.spfem_run(v, s)) for v, s in todo]
    runs = parallel_map(functools.partial(_train_and_evaluate, opts=params.eval, force=force,
                                          shipped=params.shipped_checkpoints), tasks, params.jobs)
    for run in runs:  # here, not in the workers, whose output does not reach the notebook
        say_if_shipped(run)
    return dict(zip(todo, runs))


def evaluate_copy_baseline(params: ReproduceParams, paths: Paths, reference_run: Path, force: bool = False) -> dict:
    """The 'copy the input' reference (perfect speech, no expression change), scored like `reference_run`.

    It takes the run's data, size and aux config, so the same cached evaluation nets score it as the runs.
    """
    out = paths.run_dir / "eval_copy"
    name = eval_name(params.eval)
    if force or not (out / f"{name}.json").is_file():
        data, size, aux_cfg = like_run(reference_run)
        evaluate_baseline("copy", data, size, aux_cfg, out, params.eval, name, progress=False)
    return read_json(out / f"{name}.json", "copy-baseline evaluation")


# ---------------------------------------------------------------------------
# Diagnostic of the metric network
# ---------------------------------------------------------------------------

def diagnose_json(checkpoint: Path, data_root: Path, out: Path, split: str = "test", batches: int = 20,
                  force: bool = False) -> dict:
    """Pos/neg similarities of a trained checkpoint (as `stccl diagnose`), saved to `out` (JSON) and returned."""
    out = Path(out)
    if out.is_file() and not force:
        return read_json(out, "diagnose output")
    ckpt = load_checkpoint(checkpoint)
    net, options = network_from_checkpoint(ckpt, str(checkpoint))
    cfg = ckpt["config"]
    data = Path(data_root)
    dataset = PairedWindowDataset(data, data / "aligned_path.json", T=int(cfg.get("T", 5)), split=split,
                                  size=cfg.get("size"))
    result = correlation_diagnostic(net, dataset, options, max_batches=batches, progress=False)
    result = {"checkpoint": str(checkpoint), "untrained": False, "step": int(ckpt.get("step", 0)),
              "data": str(data), "split": split, **result}
    atomic_write_json(out, result)
    return result


def diagnose_before(params: ReproduceParams, paths: Paths, force: bool = False) -> dict:
    """Pos/neg similarities of the metric network at initialisation (same seed and architecture as the run
    notebook 03 trains, as `stccl diagnose --untrained` builds it), saved to run_dir/diagnose_before.json."""
    out = paths.run_dir / "diagnose_before.json"
    if out.is_file() and not force:
        return read_json(out, "diagnose output")
    cfg = metric_config(params, paths)
    seed_everything(cfg.seed)
    net = MetricNet(cfg.net)
    dataset = PairedWindowDataset(cfg.data_root, cfg.alignment_file(), T=cfg.T, split=params.diagnose_split,
                                  test_actors=cfg.test_actors, size=cfg.size)
    result = correlation_diagnostic(net, dataset, cfg.loss, max_batches=params.diagnose_batches)
    result = {"checkpoint": None, "untrained": True, "step": 0, "data": str(cfg.data_root),
              "split": params.diagnose_split, **result}
    atomic_write_json(out, result)
    return result
