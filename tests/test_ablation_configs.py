"""Every grid point of the default params reaches the configs of the runs it trains (dry run, no training).

`stccl.reproduce.ablation_run` is driven as notebook 05 drives it; its `stccl train-metric` /
`train-spfem` commands run with `--dry-run` (the trainers' own config resolution, nothing trained) and its
evaluation is a stub. The resolved configs are then compared with what each grid point asks for.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stccl import reproduce
from stccl.cli import main as cli_main
from stccl.config import merge_overrides

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = ROOT / "params" / "default.yaml"


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture()
def resolved(tmp_path, monkeypatch):
    """{grid point name: {"metric": resolved config or None, "metric_run": folder, "spfem": ..., "row": ...}}."""
    data = yaml.safe_load(DEFAULT_PARAMS.read_text())
    data.update(run_dir=str(tmp_path / "runs"), report_dir=str(tmp_path / "report"), data_root=str(tmp_path / "data"),
                metric_config=str(ROOT / data["metric_config"]), spfem_config=str(ROOT / data["spfem_config"]))
    params_file = tmp_path / "default.yaml"
    params_file.write_text(yaml.safe_dump(data))
    params, paths = reproduce.load_params(params_file)

    seen: dict[str, dict] = {}

    def fake_run_cli(argv, capture=False):
        argv = [str(a) for a in argv]
        out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else None
        if argv[0] in ("train-metric", "train-spfem"):
            import contextlib
            import io

            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert cli_main([*argv, "--dry-run"]) == 0
            seen[str(out)] = {"kind": argv[0], "config": json.loads(buf.getvalue().strip().splitlines()[-1])["config"]}
            return ""
        if argv[0] == "evaluate":
            run = Path(argv[argv.index("--run") + 1])
            run.mkdir(parents=True, exist_ok=True)
            (run / "eval.json").write_text(json.dumps({"summary": {"mouth_l1": 0.1}}))
            return ""
        raise AssertionError(f"unexpected command {argv}")

    monkeypatch.setattr(reproduce, "run_cli", fake_run_cli)
    points = {}
    for run in params.ablation.runs:
        row = reproduce.ablation_run(params, paths, run)
        spfem_dir = paths.ablation_dir / run.name / "spfem"
        metric_dir = row["metric_run"]
        points[run.name] = {"run": run, "row": row, "spfem": seen[str(spfem_dir)]["config"],
                            "metric_run": metric_dir, "metric": seen[metric_dir]["config"] if metric_dir else None}
    return params, points


def test_default_grid_covers_the_factors_of_the_issue():
    params, _ = reproduce.load_params(DEFAULT_PARAMS)
    keys = {k for r in params.ablation.runs for k in [*r.metric, *r.spfem]}
    assert {"loss.tau", "loss.adaptive", "T", "variant"} <= keys


def test_every_grid_point_reaches_its_metric_and_spfem_configs(resolved):
    params, points = resolved
    a = params.ablation
    default_metric = _flatten(points["default"]["metric"])
    metric_dirs = {}
    for name, p in points.items():
        run = p["run"]
        spfem = p["spfem"]
        variant = run.spfem.get("variant", "vd")
        # SPFEM: the variant, the STCCL switch, the batch's steps and seed, the point's other SPFEM settings
        assert spfem["stccl"] is (variant != "baseline"), name
        assert spfem["steps"] == a.spfem_steps and spfem["seed"] == a.seed, name
        for key, val in run.spfem.items():
            if key != "variant":
                assert _get(spfem, key) == val, (name, key)
        if variant == "baseline":
            assert p["metric"] is None, name  # no metric network is trained for the baseline point
            continue
        assert spfem["stccl_variant"] == variant, name
        # the SPFEM loss comes from the checkpoint of the metric run trained for this point
        assert spfem["stccl_checkpoint"] == str(Path(p["metric_run"]) / "ckpt_last.pt"), name
        metric = _flatten(p["metric"])
        assert metric["max_steps"] == a.metric_steps, name
        # the point's metric settings are in its metric config ...
        for key, val in run.metric.items():
            assert metric[key] == val, (name, key)
        # ... and nothing else differs from the default point's metric config
        changed = {k for k in metric if metric[k] != default_metric[k]}
        assert changed == set(run.metric), (name, changed)
        metric_dirs.setdefault(json.dumps(run.metric, sort_keys=True), set()).add(p["metric_run"])
    # points with the same metric settings share one retrain; different settings never do
    assert all(len(d) == 1 for d in metric_dirs.values())
    assert len({next(iter(d)) for d in metric_dirs.values()}) == len(metric_dirs)


def test_the_row_records_the_point(resolved):
    _, points = resolved
    for name, p in points.items():
        run, row = p["run"], p["row"]
        assert (row["run"], row["factor"], row["level"]) == (name, run.factor, run.level)
        assert json.loads(row["metric_overrides"]) == run.metric
        assert json.loads(row["spfem_overrides"]) == run.spfem
        assert row["variant"] == run.spfem.get("variant", "vd")


def test_the_metric_overrides_reach_the_trainers_options(resolved):
    """The dotted keys land in the loss options the trainer builds (not a stray top-level key)."""
    from stccl.core.train_metric import load_metric_config

    _, points = resolved
    for name, p in points.items():
        if p["metric"] is None:
            continue
        cfg = load_metric_config(None, merge_overrides({}, _flatten(p["metric"])))
        for key, val in p["run"].metric.items():
            obj = cfg
            for part in key.split("."):
                obj = getattr(obj, part)
            assert obj == val, (name, key)
