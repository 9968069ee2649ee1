"""Every grid point of the default params reaches the configs of the runs it trains (no training).

`stccl.pipeline.ablation.run_ablation_batch` is driven as notebook 05 drives it (with `jobs: 1`, so every
call stays in this process). The pipeline builds the typed configs itself (`steps.metric_config`,
`steps.spfem_config`); the functions that would train on them (`steps.run_metric`, `steps.run_spfem`) record
the config and folder instead, and the evaluation is a stub. The recorded configs are then compared with what
each grid point asks for, and the rows with the configs that were actually handed to the trainers.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from stccl.config import replace
from stccl.pipeline import ablation, steps
from stccl.pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = ROOT / "params" / "default.yaml"
STUB_SCORE = 0.123
# SPFEM keys that legitimately differ between the variants of the grid (everything else must match the default)
SPFEM_VARIANT_KEYS = {"name", "stccl", "stccl_variant", "stccl_checkpoint"}


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _flat(cfg) -> dict:
    return _flatten(dataclasses.asdict(cfg))


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    """(params, {grid point: {"run", "row", "metric" cfg or None, "metric_run", "spfem" cfg}}, metric trainings)."""
    tmp = tmp_path_factory.mktemp("ablation")
    data = yaml.safe_load(DEFAULT_PARAMS.read_text())
    data.update(run_dir=str(tmp / "runs"), report_dir=str(tmp / "report"), data_root=str(tmp / "data"),
                metric_config=str(ROOT / data["metric_config"]), spfem_config=str(ROOT / data["spfem_config"]))
    params_file = tmp / "default.yaml"
    params_file.write_text(yaml.safe_dump(data))
    params, paths = load_params(params_file)
    params = replace(params, jobs=1)  # parallel_map then calls in this process, where the stubs are

    metric_calls: list[tuple[str, object]] = []
    spfem_calls: dict[str, object] = {}

    def fake_run_metric(cfg, run, force=False, shipped=True):
        metric_calls.append((str(run), cfg))
        return run

    def fake_run_spfem(cfg, run, force=False, shipped=True):
        assert str(run) not in spfem_calls, f"SPFEM run {run} trained twice"
        spfem_calls[str(run)] = cfg
        return run

    def fake_evaluate(params_, run, force=False):
        return {"summary": {"mouth_l1": STUB_SCORE}}

    mp = pytest.MonkeyPatch()
    mp.setattr(steps, "run_metric", fake_run_metric)
    mp.setattr(steps, "run_spfem", fake_run_spfem)
    mp.setattr(ablation, "evaluate_run", fake_evaluate)
    try:
        rows = ablation.run_ablation_batch(params, paths)
    finally:
        mp.undo()

    metric_by_dir: dict[str, list] = {}
    for run_dir, cfg in metric_calls:
        metric_by_dir.setdefault(run_dir, []).append(cfg)
    points = {}
    for run, row in zip(params.ablation.runs, rows):
        spfem_dir = paths.ablation_dir / run.name / "spfem"
        metric_dir = row["metric_run"]
        points[run.name] = {"run": run, "row": row, "row_file": paths.ablation_dir / run.name / "row.json", "spfem": spfem_calls[str(spfem_dir)], "metric_run": metric_dir,
                            "metric": metric_by_dir[metric_dir][-1] if metric_dir else None}
    return params, points, metric_by_dir


def test_default_grid_covers_the_factors_of_the_issue():
    params, _ = load_params(DEFAULT_PARAMS)
    keys = {k for r in params.ablation.runs for k in [*r.metric, *r.spfem]}
    assert {"loss.tau", "loss.adaptive", "loss.lambda_T", "loss.use_spatial", "loss.use_temporal", "T",
            "variant"} <= keys
    assert {r.spfem.get("variant", "vd") for r in params.ablation.runs} == {"baseline", "vd", "cm"}


def test_every_grid_point_reaches_its_metric_and_spfem_configs(resolved):
    params, points, metric_by_dir = resolved
    a = params.ablation
    default_metric = _flat(points["default"]["metric"])
    default_spfem = _flat(points["default"]["spfem"])
    metric_dirs: dict[str, set] = {}
    for name, p in points.items():
        run, spfem = p["run"], p["spfem"]
        variant = run.spfem.get("variant", "vd")
        # SPFEM: the variant, the STCCL switch, the grid's steps and seed, the point's other SPFEM settings
        assert spfem.name == variant and spfem.stccl is (variant != "baseline"), name
        assert spfem.steps == a.spfem_steps and spfem.seed == a.seed, name
        for key, val in run.spfem.items():
            if key != "variant":
                assert _get(spfem, key) == val, (name, key)
        # ... and nothing else differs from the default point's SPFEM config
        flat = _flat(spfem)
        changed = {k for k in flat if flat[k] != default_spfem[k]} - SPFEM_VARIANT_KEYS
        assert changed == set(run.spfem) - {"variant"}, (name, changed)
        if variant == "baseline":
            assert p["metric"] is None, name  # no metric network is trained for the baseline point
            continue
        assert spfem.stccl_variant == variant, name
        # the SPFEM loss comes from the checkpoint of the metric run trained for this point
        assert spfem.stccl_checkpoint == str(Path(p["metric_run"]) / "ckpt_last.pt"), name
        metric = p["metric"]
        assert metric.max_steps == a.metric_steps, name
        # every training of this metric folder got the same config (shared retrains are not redone differently)
        assert all(c == metric for c in metric_by_dir[p["metric_run"]]), name
        # the point's metric settings are in the typed config the trainer gets (not a stray top-level key) ...
        for key, val in run.metric.items():
            assert _get(metric, key) == val, (name, key)
        # ... and nothing else differs from the default point's metric config
        flat = _flat(metric)
        changed = {k for k in flat if flat[k] != default_metric[k]}
        assert changed == set(run.metric), (name, changed)
        metric_dirs.setdefault(json.dumps(run.metric, sort_keys=True), set()).add(p["metric_run"])
    # points with the same metric settings share one retrain; different settings never do
    assert all(len(d) == 1 for d in metric_dirs.values()), metric_dirs
    assert len({next(iter(d)) for d in metric_dirs.values()}) == len(metric_dirs)
    # and no metric run is trained that no grid point uses
    assert set(metric_by_dir) == {next(iter(d)) for d in metric_dirs.values()}
    # the grid really shares: the "cm" point (an SPFEM-only factor) uses the default point's metric retrain
    assert points["cm"]["metric_run"] == points["default"]["metric_run"]


def test_the_named_factors_reach_the_trainers(resolved):
    """The factors of the issue, spelled out (the generic check above follows whatever the yaml says)."""
    _, points, _ = resolved
    d = points["default"]["metric"]
    m = {n: p["metric"] for n, p in points.items()}
    assert m["tau_0.05"].loss.tau == 0.05 and m["tau_0.1"].loss.tau == 0.1 and d.loss.tau not in (0.05, 0.1)
    assert m["T_3"].T == 3 and m["T_7"].T == 7 and d.T not in (3, 7)
    assert m["no_adaptive"].loss.adaptive is False and d.loss.adaptive is True
    # the default objective is the positive control's: spatial terms, mismatched negatives (issue 13)
    assert (d.loss.use_spatial, d.loss.use_temporal, d.loss.spatial_negatives) == (True, False, "mismatched")
    assert (m["paper_joint"].loss.use_temporal, m["paper_joint"].loss.spatial_negatives) == (True, "frame")
    assert (m["joint_mismatched"].loss.use_temporal, m["joint_mismatched"].loss.spatial_negatives) == \
        (True, "mismatched")
    assert m["lambdaT_1"].loss.lambda_T == 1.0 and d.loss.lambda_T != 1.0 and m["lambdaT_1"].loss.use_temporal
    assert m["frame_negatives"].loss.spatial_negatives == "frame" and not m["frame_negatives"].loss.use_temporal
    assert (m["temporal_only"].loss.use_spatial, m["temporal_only"].loss.use_temporal) == (False, True)
    assert points["cm"]["spfem"].stccl_variant == "cm" and points["default"]["spfem"].stccl_variant == "vd"
    assert points["no_stccl"]["spfem"].stccl is False


def test_the_row_records_the_point_and_the_settings_both_stages_used(resolved):
    params, points, _ = resolved
    a = params.ablation
    for name, p in points.items():
        run, row, spfem, metric = p["run"], p["row"], p["spfem"], p["metric"]
        assert (row["run"], row["factor"], row["level"]) == (name, run.factor, run.level)
        assert json.loads(row["metric_overrides"]) == run.metric
        assert json.loads(row["spfem_overrides"]) == run.spfem
        assert row["variant"] == run.spfem.get("variant", "vd")
        assert (row["metric_steps"], row["spfem_steps"]) == (a.metric_steps, a.spfem_steps)
        assert row["mouth_l1"] == STUB_SCORE  # the evaluation's scores are in the row
        # what the SPFEM trainer was given
        assert row["spfem_clip_frames"] == spfem.clip_frames, name
        if metric is None:
            assert row["metric_run"] == "", name
            for key in ("metric_T", "metric_lambda_T", "metric_tau", "metric_terms", "metric_negatives", "metric_adaptive",
                        "spfem_stccl_lambda_S", "spfem_stccl_lambda_T", "spfem_lambda_stccl"):
                assert row[key] == "", (name, key)
            continue
        assert (row["spfem_stccl_lambda_S"], row["spfem_stccl_lambda_T"], row["spfem_lambda_stccl"]) == \
            (spfem.stccl_lambda_S, spfem.stccl_lambda_T, spfem.lambda_stccl), name
        # what the metric trainer was given
        terms = "+".join(t for t, on in (("S", metric.loss.use_spatial), ("T", metric.loss.use_temporal)) if on)
        assert (row["metric_T"], row["metric_lambda_T"], row["metric_tau"], row["metric_terms"],
                row["metric_adaptive"]) == (metric.T, metric.loss.lambda_T, metric.loss.tau, terms,
                                            metric.loss.adaptive), name
    assert points["paper_joint"]["row"]["metric_terms"] == "S+T"
    assert points["temporal_only"]["row"]["metric_terms"] == "T"
    assert points["default"]["row"]["metric_terms"] == "S"
    assert (points["default"]["row"]["metric_negatives"], points["paper_joint"]["row"]["metric_negatives"]) == \
        ("mismatched", "frame")
    # the row file on disk is the returned row
    for name, p in points.items():
        assert json.loads(p["row_file"].read_text()) == json.loads(json.dumps(p["row"])), name
