"""The ablation grid: one factor at a time around the default, each grid point a metric retrain + SPFEM run.

Grid points with the same metric overrides share one metric retrain (its folder is keyed by the
overrides); the distinct retrains run first, then the grid points, `params.jobs` at a time, each in
its own process (`stccl.pipeline.steps.parallel_map`). A finished grid point is reused.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
from pathlib import Path

from stccl.io import atomic_write_json, to_json
from stccl.pipeline.params import AblationRun, Paths, ReproduceParams
from stccl.pipeline.steps import (evaluate_run, metric_config, parallel_map, spfem_config, train_metric_run,
                                  train_spfem_run)


def ablation_metric_dir(paths: Paths, overrides: dict) -> Path:
    """Grid points with the same metric overrides share one metric retrain (keyed by the overrides)."""
    key = to_json(dict(sorted(overrides.items())))
    return paths.ablation_dir / f"metric_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def flat_scores(ev: dict) -> dict[str, float]:
    """The numeric headline scores of an eval.json (its 'summary' mapping, else its top-level numbers)."""
    src = ev.get("summary", ev) if isinstance(ev, dict) else {}
    out = {}
    for k, v in src.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def settings_used(params: ReproduceParams, paths: Paths, run: AblationRun, variant: str,
                  metric_ckpt: Path | None) -> dict:
    """The settings each stage of a grid point ran with, read from the resolved configs.

    The metric's window T and lambda_T only shape metric training; the plug-in sees SPFEM's clip_frames
    and weighs its terms with stccl_lambda_S / stccl_lambda_T. Empty where a stage does not use STCCL.
    """
    a = params.ablation
    extra = {k: v for k, v in run.spfem.items() if k != "variant"}
    scfg = spfem_config(params, paths, variant, a.seed, metric_ckpt, extra, a.spfem_steps)
    out: dict = {"metric_T": "", "metric_lambda_T": "", "metric_tau": "", "metric_terms": "",
                 "metric_negatives": "", "metric_adaptive": "", "spfem_clip_frames": scfg.clip_frames, "spfem_stccl_lambda_S": "",
                 "spfem_stccl_lambda_T": "", "spfem_lambda_stccl": ""}
    if variant != "baseline":
        mcfg = metric_config(params, paths, dict(run.metric), a.metric_steps)
        loss = mcfg.loss
        out.update(metric_T=mcfg.T, metric_lambda_T=loss.lambda_T, metric_tau=loss.tau,
                   metric_terms="+".join(t for t, on in (("S", loss.use_spatial), ("T", loss.use_temporal)) if on),
                   metric_negatives=loss.spatial_negatives if loss.use_spatial else "",
                   metric_adaptive=loss.adaptive, spfem_stccl_lambda_S=scfg.stccl_lambda_S,
                   spfem_stccl_lambda_T=scfg.stccl_lambda_T, spfem_lambda_stccl=scfg.lambda_stccl)
    return out


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
           "spfem_steps": a.spfem_steps, **settings_used(params, paths, run, variant, metric_ckpt),
           **flat_scores(ev)}
    atomic_write_json(folder / "row.json", row)
    return row


def _metric_retrain(overrides: dict, params: ReproduceParams, paths: Paths) -> None:
    train_metric_run(params, paths, run=ablation_metric_dir(paths, overrides), extra=overrides,
                     steps=params.ablation.metric_steps)


def run_ablation_batch(params: ReproduceParams, paths: Paths, force: bool = False) -> list[dict]:
    """Every grid point of `params.ablation.runs`, in order; returns the result rows.

    The distinct metric retrains are done first (grid points share them), then the grid points run,
    `params.jobs` at a time. `force` clears the grid's folder and starts it over.
    """
    a = params.ablation
    if force and paths.ablation_dir.exists():
        shutil.rmtree(paths.ablation_dir)
    metric_sets: list[dict] = []
    for r in a.runs:
        if dict(r.spfem).get("variant", "vd") != "baseline" and dict(r.metric) not in metric_sets:
            metric_sets.append(dict(r.metric))
    parallel_map(functools.partial(_metric_retrain, params=params, paths=paths), metric_sets, params.jobs)
    return parallel_map(functools.partial(ablation_run, params, paths), list(a.runs), params.jobs)
