"""Every notebook executes under papermill with tiny smoke parameters; assertions on what they recorded.

One session-scoped run of `stccl reproduce` (all six notebooks, the ablation batch included) into a
temporary folder; each test then checks one notebook's recorded outputs: files exist, metrics are finite and
in their ranges. Budget: a few minutes on 2 shared cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from stccl.pipeline import runner
from stccl.pipeline.params import NOTEBOOKS, load_params

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _tiny_params(tmp: Path) -> dict:
    params = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    params.update({
        "run_dir": str(tmp / "run"), "report_dir": str(tmp / "report"),
        "synth": {"identities": 4, "sentences": 1},
        "metric_steps": 2, "spfem_steps": 2,
        "spfem_set": {"aux": {"steps": 4, "batch_size": 16}},
        "eval": {"max_clips": 1, "target_emotions": ["happy"], "lpips": False},
        "diagnose_batches": 1, "frames_to_show": 3,
    })
    runs = {r["name"]: r for r in params["ablation"]["runs"]}
    params["ablation"] = {"metric_steps": 1, "spfem_steps": 1, "seed": 0,
                          "runs": [runs["default"], runs["cm"], runs["tau_0.05"]]}
    return params


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    pfile = tmp / "tiny.yaml"
    pfile.write_text(yaml.safe_dump(_tiny_params(tmp)))
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)  # notebooks run with cwd = the project root (they read params/ and notebooks/)
    try:
        rc = runner.reproduce(pfile, progress=False)
        _, paths = load_params(pfile)
    finally:
        mp.undo()
    return rc, paths


def _values(paths, nb: str) -> dict:
    rec = json.loads((paths.outputs_dir / f"{nb}.json").read_text())
    for f in rec["files"].values():
        p = Path(f) if Path(f).is_absolute() else ROOT / f
        assert p.exists(), f"{nb} declared {f} but it is missing"
    return rec["values"]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_runner_finished(smoke):
    rc, paths = smoke
    assert rc == 0, "a notebook failed; see the .status/*.json files of the smoke run"
    for nb in NOTEBOOKS:
        status = json.loads((paths.status_dir / f"{nb}.json").read_text())
        assert status["status"] == "ok", (nb, status)
        assert (paths.run_dir / f"{nb}.ipynb").is_file()
    # a second run skips every step
    steps, _ = runner.plan(paths.params_file)
    assert {s.action for s in steps} == {"skip"}


def test_01_data_prep(smoke):
    _, paths = smoke
    v = _values(paths, "01_data_prep")
    summary = json.loads((paths.data_root / "summary.json").read_text())
    assert summary["actors"] == 4 and summary["pairs"] == 4 * 6
    assert v["rows"] > 5 and v["pair_shown"][1] == "happy"
    assert 0 <= summary["dtw_mean_abs_frame_error"] < summary["no_alignment_mean_abs_frame_error"] + 1


def test_02_correlation_analysis(smoke):
    _, paths = smoke
    v = _values(paths, "02_correlation_analysis")
    for variant in ("vd", "cm"):
        for key in ("spatial_pos", "spatial_neg", "temporal_pos", "temporal_neg"):
            x = v["pos_neg_before"][variant][key]
            assert _finite(x) and -1.0 <= x <= 1.0, (variant, key, x)
    import numpy as np

    z = np.load(paths.run_dir / "correlation_snapshot.npz")
    w = z["w_map"][np.isfinite(z["w_map"])]
    assert w.size > 0 and (w >= 1.0).all() and (w <= 2.0).all()  # weights are 1 or 2 h^2 with h < 1


def test_03_train_metric(smoke):
    _, paths = smoke
    v = _values(paths, "03_train_metric")
    recs = [json.loads(l) for l in (paths.metric_run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert recs and recs[-1]["step"] == 2 and all(_finite(r["loss"]) and r["loss"] > 0 for r in recs)
    pn = pd.read_csv(paths.run_dir / "pos_neg.csv")
    assert set(pn["variant"]) == {"vd", "cm"} and len(pn) == 8
    assert pn[["before", "after"]].abs().le(1.0).all().all()
    assert all(_finite(x["after"]) for x in v.values())


def test_04_train_spfem(smoke):
    _, paths = smoke
    v = _values(paths, "04_train_spfem")
    assert set(v) == {"baseline_s0", "weak_emotion_s0", "vd_s0", "cm_s0"}
    for scores in v.values():
        assert 0.0 <= scores["emotion_acc"] <= 1.0
        assert -1.0 <= scores["csim"] <= 1.0
        assert 0.0 <= scores["mouth_l1"] <= 1.0 and scores["fad"] >= 0.0
    table = pd.read_csv(paths.run_dir / "spfem_comparison.csv")
    assert list(table["variant"]) == ["baseline", "weak_emotion", "vd", "cm", "copy"]
    ev = json.loads((paths.spfem_run("vd", 0) / "eval.json").read_text())
    assert ev["stccl"] is True and ev["stccl_variant"] == "vd" and ev["steps"] == 2
    # the edit-less control: the baseline without STCCL, its emotion loss scaled by weak_emotion_cls_factor
    cfgs = {v: json.loads((paths.spfem_run(v, 0) / "config.json").read_text()) for v in ("baseline", "weak_emotion")}
    factor = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())["weak_emotion_cls_factor"]
    assert cfgs["weak_emotion"]["stccl"] is False
    assert cfgs["weak_emotion"]["lambda_cls"] == pytest.approx(factor * cfgs["baseline"]["lambda_cls"])
    assert cfgs["weak_emotion"]["lambda_cls"] < cfgs["baseline"]["lambda_cls"]


def test_05_ablations(smoke):
    _, paths = smoke
    assert _values(paths, "05_ablations")["runs"] == 3
    df = pd.read_csv(paths.run_dir / "ablations.csv")
    assert list(df["run"]) == ["default", "cm", "tau_0.05"]
    assert df["mouth_l1"].between(0, 1).all() and df["emotion_acc"].between(0, 1).all()
    # default and cm share one metric retrain; tau 0.05 has its own
    assert df.loc[0, "metric_run"] == df.loc[1, "metric_run"] != df.loc[2, "metric_run"]
    for name in df["run"]:
        assert json.loads((paths.ablation_dir / name / "row.json").read_text())["run"] == name
    # each row records what both stages used: the metric's window vs the plug-in's clip
    tau = df.set_index("run").loc["tau_0.05"]
    assert tau["metric_tau"] == 0.05 and tau["metric_T"] == 5 and tau["spfem_clip_frames"] == 3
    assert df.loc[0, "metric_lambda_T"] == 5.0 and df.loc[0, "spfem_stccl_lambda_T"] == 1.0


def test_06_report(smoke):
    _, paths = smoke
    _values(paths, "06_figures_and_report")
    report = (paths.report_dir / "REPORT.md").read_text()
    for section in ("## 1. Data", "## 3. Metric network", "## 4. SPFEM", "## 5. Ablations"):
        assert section in report
    assert "Not run" not in report
    # the smoke preset checks the pipeline only: tables and figures, no verdicts (issue 15)
    assert "**Pipeline check only.**" in report and "**Target" not in report and "**Control" not in report
    assert "pipeline check only, no verdicts" in (paths.report_dir / "results_vs_paper.md").read_text()
    # issue 14: the comparison (copy, baseline, edit-less control, +VD, +CM) is written, its verdicts are not
    comp = pd.read_csv(paths.report_dir / "spfem_targets_comparison.csv")
    assert list(comp["variant"]) == ["copy", "baseline", "weak_emotion", "vd", "cm"]
    assert not (paths.report_dir / "spfem_target_verdicts.csv").exists()
    html = (paths.report_dir / "REPORT.html").read_text()
    assert "<table>" in html and 'src="figures/pos_neg.png"' in html
    # numbers in the text are the saved ones
    pn = pd.read_csv(paths.run_dir / "pos_neg.csv")
    r = pn[(pn.variant == "vd") & (pn.measure == "spatial_pos")].iloc[0]
    assert f"VD spatial pos: {r.before:.3f}" in report
    for name in ("alignment", "pos_neg", "side_by_side", "ablations", "correlation_weights", "spfem_training",
                 "spfem_comparison", "correlation_cm"):
        assert (paths.report_dir / "figures" / f"{name}.png").is_file()
        assert (paths.report_dir / "figures" / f"{name}.pdf").is_file()
    for table in ("data_summary", "pos_neg", "spfem_comparison", "ablations"):
        assert (paths.report_dir / f"{table}.md").is_file()
