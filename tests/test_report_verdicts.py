"""The report's verdict and change functions on hand-made tables: met, not met, tie, saturated, missing values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from stccl.pipeline.figures import pos_neg_table
from stccl.pipeline.report import (TARGET_EMOTION_POINTS, TARGET_MOUTH_DROP_PCT, TARGET_NEG, TARGET_POS, _direction,
                                   pct_change, pos_neg_verdict, spfem_verdict)


# ---------------------------------------------------------------------------- percent change and direction

@pytest.mark.parametrize("new, base, expected", [
    (0.8, 1.0, "-20.0%"),
    (1.25, 1.0, "+25.0%"),
    (1.0, 1.0, "+0.0%"),
    (-0.5, -1.0, "+50.0%"),      # relative to |base|: a rise from -1 to -0.5 is +50 %
    (0.10, 0.12, "-16.7%"),
    (1.0, 0.0, "n/a"),           # no base to divide by
    (math.nan, 1.0, "n/a"),
    (1.0, math.inf, "n/a"),
])
def test_pct_change(new, base, expected):
    assert pct_change(new, base) == expected


@pytest.mark.parametrize("new, base, higher_better, expected", [
    (0.9, 0.8, True, "better than"),
    (0.9, 0.8, False, "worse than"),
    (0.7, 0.8, True, "worse than"),
    (0.7, 0.8, False, "better than"),
    (0.8, 0.8, True, "no change from"),   # tie
    (math.nan, 0.8, True, "no change from"),
])
def test_direction(new, base, higher_better, expected):
    assert _direction(new, base, higher_better) == expected


# ---------------------------------------------------------------------------- the diagnostic's target

def _diag(spatial_pos, spatial_neg, temporal_pos, temporal_neg):
    return {"spatial_pos": spatial_pos, "spatial_neg": spatial_neg,
            "temporal_pos": temporal_pos, "temporal_neg": temporal_neg}


def _verdict_lists(text: str) -> tuple[str, str]:
    met = text.split("met by ", 1)[1].split("; not met by ", 1)[0]
    missed = text.split("; not met by ", 1)[1]
    return met, missed


def test_pos_neg_verdict_met_not_met_and_edges():
    before = {"vd": _diag(0.5, 0.3, 0.5, 0.3), "cm": _diag(0.5, 0.3, 0.5, 0.3)}
    after = {"vd": _diag(0.95, 0.05, TARGET_POS, -TARGET_NEG),    # spatial met; temporal met exactly at the edges
             "cm": _diag(0.95, 0.15, 0.89, 0.0)}                  # spatial: neg too high; temporal: pos too low
    text = pos_neg_verdict(pos_neg_table(before, after))
    met, missed = _verdict_lists(text)
    assert "VD spatial (0.950 / 0.050)" in met and "VD temporal (0.900 / -0.100)" in met
    assert "CM spatial (0.950 / 0.150)" in missed and "CM temporal (0.890 / 0.000)" in missed
    assert "CM" not in met and "VD" not in missed


def test_pos_neg_verdict_none_met_and_all_met():
    before = {"vd": _diag(0.5, 0.3, 0.5, 0.3)}
    # saturated positives with negatives just outside the band: a perfect positive is not enough
    text = pos_neg_verdict(pos_neg_table(before, {"vd": _diag(1.0, 0.11, 1.0, -0.11)}))
    assert _verdict_lists(text) == ("none", "VD spatial (1.000 / 0.110), VD temporal (1.000 / -0.110) (pos / neg).")
    text = pos_neg_verdict(pos_neg_table(before, {"vd": _diag(0.96, 0.0, 0.98, 0.01)}))
    assert _verdict_lists(text)[1] == "none (pos / neg)."


# ---------------------------------------------------------------------------- the SPFEM target

def _table(base: dict, vd: dict) -> pd.DataFrame:
    """A comparison table like `stccl compare`'s: per-variant means and the change column vs the baseline."""
    rows = []
    for variant, vals in (("baseline", base), ("vd", vd)):
        rows.append({"variant": variant, "runs": 3, "mouth_l1_mean": vals["mouth_l1"],
                     "emotion_acc_mean": vals["emotion_acc"], "csim_mean": vals["csim"],
                     "mouth_l1_change_vs_baseline_pct": 100 * (vals["mouth_l1"] - base["mouth_l1"]) / base["mouth_l1"]})
    return pd.DataFrame(rows)


BASE = {"mouth_l1": 0.020, "emotion_acc": 0.60, "csim": 0.95}


def _checks(text: str) -> dict[str, str]:
    """'mouth_l1 ...: yes; CSIM ...: no; ...' -> {'mouth_l1': 'yes', 'CSIM': 'no', 'emotion': ...}."""
    inner = text.split("** (", 1)[1].rsplit(").", 1)[0]
    out = {}
    for part in inner.split("; "):
        label, _, answer = part.rpartition(": ")
        out[label.split()[0]] = answer
    return out


def test_spfem_verdict_met():
    text = spfem_verdict(_table(BASE, {"mouth_l1": 0.016, "emotion_acc": 0.58, "csim": 0.96}), "vd")
    assert "**Target, +STCCL (VD): met**" in text
    assert _checks(text) == {"mouth_l1": "yes", "CSIM": "yes", "emotion": "yes"}
    assert "20.0 % lower" in text and "-2.0 points" in text


@pytest.mark.parametrize("vd, failing", [
    ({"mouth_l1": 0.019, "emotion_acc": 0.60, "csim": 0.95}, "mouth_l1"),    # only 5 % lower
    ({"mouth_l1": 0.016, "emotion_acc": 0.50, "csim": 0.95}, "emotion"),     # 10 points of accuracy lost
    ({"mouth_l1": 0.016, "emotion_acc": 0.70, "csim": 0.95}, "emotion"),     # 10 points gained: also outside ±5
    ({"mouth_l1": 0.016, "emotion_acc": 0.60, "csim": 0.949}, "CSIM"),       # identity slightly worse
    ({"mouth_l1": 0.024, "emotion_acc": 0.60, "csim": 0.95}, "mouth_l1"),    # mouth error went up
])
def test_spfem_verdict_not_met_names_the_failing_check(vd, failing):
    text = spfem_verdict(_table(BASE, vd), "vd")
    assert "**Target, +STCCL (VD): not met**" in text
    checks = _checks(text)
    assert checks[failing] == "no" and all(v == "yes" for k, v in checks.items() if k != failing)


def test_spfem_verdict_ties_and_saturation_at_the_thresholds():
    # the required drop, the same CSIM, the allowed accuracy change (each at its bound, up to rounding): met
    edge = {"mouth_l1": BASE["mouth_l1"] * (1 - TARGET_MOUTH_DROP_PCT / 100) - 1e-12,
            "emotion_acc": BASE["emotion_acc"] - TARGET_EMOTION_POINTS + 1e-9, "csim": BASE["csim"]}
    text = spfem_verdict(_table(BASE, edge), "vd")
    assert "met**" in text and "not met" not in text
    # saturated scores: both at accuracy 1 and CSIM 1 count as a tie, not a loss
    sat_base = {"mouth_l1": 0.02, "emotion_acc": 1.0, "csim": 1.0}
    text = spfem_verdict(_table(sat_base, {"mouth_l1": 0.01, "emotion_acc": 1.0, "csim": 1.0}), "vd")
    assert _checks(text) == {"mouth_l1": "yes", "CSIM": "yes", "emotion": "yes"} and "+0.0 points" in text
    # no mouth change at all: a tie is not a drop
    text = spfem_verdict(_table(BASE, dict(BASE)), "vd")
    assert _checks(text)["mouth_l1"] == "no" and "not met" in text
