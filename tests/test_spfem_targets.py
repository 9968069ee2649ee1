"""Issue-14 SPFEM comparison and per-target verdicts on small hand-built tables: met, not met, margins, noise."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from stccl.io import StcclError
from stccl.pipeline.spfem_targets import (TARGET_EMOTION_DROP_POINTS, TARGET_MOUTH_DROP_PCT, comparison_markdown,
                                          spfem_comparison, target_verdicts, verdicts_markdown)


def table(rows: dict[str, dict], sd: float | None = None, runs: int = 3) -> pd.DataFrame:
    """A compare_runs-like table: {variant: {metric: mean}}; sd (same for every metric) or no SD (one run)."""
    recs = []
    for v, vals in rows.items():
        rec = {"variant": v, "runs": 1 if v == "copy" or sd is None else runs}
        for m in ("mouth_l1", "emotion_acc", "csim", "ssim"):
            rec[f"{m}_mean"] = vals[m]
            rec[f"{m}_std"] = float("nan") if v == "copy" or sd is None else sd
        recs.append(rec)
    return pd.DataFrame(recs)


GOOD = {"copy": dict(mouth_l1=0.0140, emotion_acc=0.02, csim=1.0, ssim=0.90),
        "baseline": dict(mouth_l1=0.0200, emotion_acc=0.50, csim=0.98, ssim=0.85),
        "weak_emotion": dict(mouth_l1=0.0180, emotion_acc=0.47, csim=0.985, ssim=0.86),
        "vd": dict(mouth_l1=0.0120, emotion_acc=0.48, csim=0.99, ssim=0.92)}


def verdict(v: pd.DataFrame, start: str, variant: str = "vd") -> dict:
    rows = v[v["target"].str.startswith(start) & (v["variant"] == variant)]
    assert len(rows) == 1, (start, variant)
    return rows.iloc[0].to_dict()


def test_all_targets_met():
    v = target_verdicts(table(GOOD))
    assert len(v) == 6 and set(v["verdict"]) == {"met"}
    # mouth drop 40 % -> 20 points past the 20 % threshold
    assert verdict(v, "mouth L1 at least")["margin"] == pytest.approx(40.0 - TARGET_MOUTH_DROP_PCT)
    assert verdict(v, "mouth L1 below copy")["margin"] == pytest.approx(0.0020)
    # emotion 2 points below the baseline -> 1 point inside the 3-point allowance
    assert verdict(v, "emotion")["margin"] == pytest.approx(TARGET_EMOTION_DROP_POINTS - 2.0)
    assert verdict(v, "whole-frame SSIM")["margin"] == pytest.approx(0.02)
    assert verdict(v, "edit-less")["margin"] == pytest.approx(0.0060)


@pytest.mark.parametrize("change, start, margin", [
    ({"mouth_l1": 0.0170}, "mouth L1 at least", 15.0 - TARGET_MOUTH_DROP_PCT),   # only 15 % lower
    ({"mouth_l1": 0.0150}, "mouth L1 below copy", -0.0010),                     # 25 % lower but above copy
    ({"emotion_acc": 0.45}, "emotion", TARGET_EMOTION_DROP_POINTS - 5.0),       # 5 points down
    ({"csim": 0.97}, "CSIM", -0.01),
    ({"ssim": 0.88}, "whole-frame SSIM", -0.02),
    ({"mouth_l1": 0.0150}, "edit-less", 0.0180 - 0.0150),                       # still met: below the control
])
def test_single_target_missed_by_how_much(change, start, margin):
    rows = {k: dict(v) for k, v in GOOD.items()}
    rows["vd"].update(change)
    v = verdict(target_verdicts(table(rows)), start)
    assert v["margin"] == pytest.approx(margin)
    assert v["verdict"] == ("met" if margin > 0 else "not met")


def test_control_explains_the_gain():
    rows = {k: dict(v) for k, v in GOOD.items()}
    rows["weak_emotion"].update(mouth_l1=0.0110, emotion_acc=0.30)   # edits less and keeps the mouth better
    v = verdict(target_verdicts(table(rows)), "edit-less")
    assert v["verdict"] == "not met" and v["margin"] == pytest.approx(-0.0010)
    assert "not matched" in v["note"] and "edits less" in v["note"]


def test_boundaries_strict_and_inclusive():
    rows = {k: dict(v) for k, v in GOOD.items()}
    rows["vd"].update(mouth_l1=0.0140, emotion_acc=0.47, csim=0.98, ssim=0.90)   # every threshold hit exactly
    v = target_verdicts(table(rows))
    assert verdict(v, "mouth L1 below copy")["verdict"] == "not met"            # "below" is strict
    assert verdict(v, "whole-frame SSIM")["verdict"] == "not met"               # "higher" is strict
    assert verdict(v, "emotion")["verdict"] == "met"                            # "not more than 3 below"
    assert verdict(v, "CSIM")["verdict"] == "met"                               # "not lower"
    assert verdict(v, "mouth L1 at least")["verdict"] == "met"                  # 30 % >= 20 %


def test_noise_flag_uses_standard_error():
    rows = {k: dict(v) for k, v in GOOD.items()}
    rows["vd"]["csim"] = 0.981
    v = verdict(target_verdicts(table(rows, sd=0.01)), "CSIM")
    assert v["se"] == pytest.approx(math.sqrt(2 * 0.01 ** 2 / 3))
    assert v["within_noise"]
    one_run = verdict(target_verdicts(table(rows)), "CSIM")
    assert math.isnan(one_run["se"]) and not one_run["within_noise"]


def test_missing_rows_and_columns():
    rows = {k: v for k, v in GOOD.items() if k in ("baseline", "vd", "cm")}
    rows["cm"] = dict(GOOD["vd"])
    v = target_verdicts(table(rows))
    assert set(v["variant"]) == {"vd", "cm"} and len(v) == 6   # no copy / control rows: 3 targets each
    with pytest.raises(StcclError, match="baseline"):
        target_verdicts(table({"vd": GOOD["vd"]}))
    with pytest.raises(StcclError, match="ssim_mean"):
        target_verdicts(table(GOOD).drop(columns=["ssim_mean"]))


def test_comparison_rows_and_markdown():
    t = table({**{k: GOOD[k] for k in ("vd", "baseline", "copy")}, "cm": GOOD["vd"]}, sd=0.001)
    comp = spfem_comparison(t)
    assert list(comp["variant"]) == ["copy", "baseline", "vd", "cm"]   # fixed order, absent rows skipped
    md = comparison_markdown(comp)
    assert "| copy input | 1 | 0.0140 |" in md and "0.0200 ± 0.0010" in md
    vmd = verdicts_markdown(target_verdicts(t))
    assert "**met**" in vmd and "**not met**" not in vmd
