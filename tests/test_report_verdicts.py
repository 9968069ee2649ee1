"""The report's verdict and change functions on hand-made tables: met, not met, not shown, tie, saturated, wording."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from stccl.pipeline.figures import pos_neg_table
from stccl.pipeline.report import (TARGET_EMOTION_POINTS, TARGET_MOUTH_DROP_PCT, TARGET_NEG, TARGET_POS, _direction,
                                   ablation_findings, against, change_words, compare_text, control_verdict,
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
    text = spfem_verdict(_table(BASE, {"mouth_l1": 0.015, "emotion_acc": 0.58, "csim": 0.96}), "vd")
    assert "**Target, +STCCL (VD): met**" in text
    assert _checks(text) == {"mouth_l1": "yes", "CSIM": "yes", "emotion": "yes"}
    assert "25.0 % lower" in text and "2.0 points lower" in text
    # an emotion gain is not a cost (issue 14: at most 3 points below the baseline)
    text = spfem_verdict(_table(BASE, {"mouth_l1": 0.015, "emotion_acc": 0.70, "csim": 0.96}), "vd")
    assert _checks(text)["emotion"] == "yes"


@pytest.mark.parametrize("vd, failing", [
    ({"mouth_l1": 0.019, "emotion_acc": 0.60, "csim": 0.95}, "mouth_l1"),    # only 5 % lower
    ({"mouth_l1": 0.0165, "emotion_acc": 0.60, "csim": 0.95}, "mouth_l1"),   # 17.5 % lower: short of 20
    ({"mouth_l1": 0.015, "emotion_acc": 0.50, "csim": 0.95}, "emotion"),     # 10 points of accuracy lost
    ({"mouth_l1": 0.015, "emotion_acc": 0.56, "csim": 0.95}, "emotion"),     # 4 points lost: more than 3
    ({"mouth_l1": 0.015, "emotion_acc": 0.60, "csim": 0.949}, "CSIM"),       # identity slightly worse
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
    assert _checks(text) == {"mouth_l1": "yes", "CSIM": "yes", "emotion": "yes"}
    assert "emotion accuracy tie (1.0000 both) (needs" in text and "points lower)" not in text.split("(needs")[-2]
    # no mouth change at all: a tie is not a drop
    text = spfem_verdict(_table(BASE, dict(BASE)), "vd")
    assert _checks(text)["mouth_l1"] == "no" and "not met" in text


# ---------------------------------------------------------------------------- wording of changes

@pytest.mark.parametrize("new, base, points, expected", [
    (0.0412, 0.0483, False, "14.7 % lower"),
    (0.0558, 0.0483, False, "15.5 % higher"),
    (0.3333333333, 0.333333329, False, "tie (0.3333 both)"),   # equal at the printed precision: a tie
    (0.4493, 0.5462, True, "9.7 points lower"),               # accuracies change in points
    (0.60, 0.58, True, "2.0 points higher"),
    (1.0, 0.0, False, "1.0000 higher"),                       # no base to divide by
    (math.nan, 1.0, False, "n/a"),
])
def test_change_words(new, base, points, expected):
    assert change_words(new, base, points=points) == expected


def test_change_words_never_signed():
    for new, base in ((0.01, 0.02), (0.03, 0.02), (0.02, 0.02), (-0.5, -1.0)):
        text = change_words(new, base)
        assert not any(c in text for c in "+-"), text


def test_spfem_verdict_mouth_rise_is_worded_higher_not_negative_lower():
    text = spfem_verdict(_table(BASE, {"mouth_l1": 0.023, "emotion_acc": 0.60, "csim": 0.95}), "vd")
    assert "mouth_l1 15.0 % higher (needs ≥ 20 % lower): no" in text
    assert "-15" not in text and "% lower (needs" not in text


# ---------------------------------------------------------------------------- yardsticks, ties and saturation

def _seeded(base: dict, vd: dict, sd: dict, runs: int = 3, copy: dict | None = None) -> pd.DataFrame:
    """A comparison table with SDs over `runs` seeds (and an optional one-seed copy row)."""
    rows = []
    for variant, vals, n in (("baseline", base, runs), ("vd", vd, runs)) + ((("copy", copy, 1),) if copy else ()):
        row = {"variant": variant, "runs": n}
        for k, v in vals.items():
            row[f"{k}_mean"], row[f"{k}_std"] = v, (sd.get(k, math.nan) if n > 1 else math.nan)
        row["mouth_l1_change_vs_baseline_pct"] = 100 * (vals["mouth_l1"] - base["mouth_l1"]) / base["mouth_l1"]
        rows.append(row)
    return pd.DataFrame(rows)


SD = {"mouth_l1": 0.001, "emotion_acc": 0.05, "csim": 0.002, "fad": 0.002}


def test_compare_text_tie_within_and_beyond_the_yardstick():
    t = _seeded({"mouth_l1": 0.0200, "emotion_acc": 0.40, "csim": 0.80, "fad": 0.5},
                {"mouth_l1": 0.0150, "emotion_acc": 0.40, "csim": 0.801, "fad": 0.5}, SD)
    assert compare_text("emotion_acc", t, "vd") == "emotion_acc tie (0.4000 both)"
    # 25 % lower, 2 SE = 2 * sqrt(2 * 0.001**2 / 3) = 0.0016 < 0.005: a claim
    assert compare_text("mouth_l1", t, "vd").endswith("25.0 % lower, beyond 2 SE (0.0016): better")
    # 0.001 apart with 2 SE 0.0033: no claim either way
    text = compare_text("csim", t, "vd")
    assert "within 2 SE" in text and "no difference shown" in text
    assert "better" not in text and "worse" not in text


def test_compare_text_flags_saturated_metrics_instead_of_quoting_a_gain():
    t = _seeded({"mouth_l1": 0.02, "emotion_acc": 0.5, "csim": 0.9868, "fad": 0.0086},
                {"mouth_l1": 0.02, "emotion_acc": 0.5, "csim": 0.9925, "fad": 0.0047}, SD,
                copy={"mouth_l1": 0.01, "emotion_acc": 0.1, "csim": 1.0, "fad": 0.0032})
    for metric in ("csim", "fad"):
        text = compare_text(metric, t, "vd")
        assert "saturated" in text and "no gain claimed" in text
        assert "%" not in text and "better" not in text
    # the same gap away from the bound is an ordinary change
    t2 = _seeded({"mouth_l1": 0.02, "emotion_acc": 0.5, "csim": 0.80, "fad": 0.5},
                 {"mouth_l1": 0.02, "emotion_acc": 0.5, "csim": 0.81, "fad": 0.4}, SD)
    assert "saturated" not in compare_text("csim", t2, "vd") and "%" in compare_text("csim", t2, "vd")


def test_compare_text_one_seed_makes_no_claim():
    t = _seeded({"mouth_l1": 0.02, "emotion_acc": 0.5, "csim": 0.8, "fad": 0.5},
                {"mouth_l1": 0.01, "emotion_acc": 0.5, "csim": 0.8, "fad": 0.5}, {}, runs=1)
    text = compare_text("mouth_l1", t, "vd")
    assert text.endswith("50.0 % lower; one seed, no spread: no claim")


def test_spfem_verdict_not_shown_when_the_threshold_lies_within_the_noise():
    # 15.3 % lower with 2 SE of the drop ~ 8 %: neither met nor missed
    t = _seeded({"mouth_l1": 0.0169, "emotion_acc": 0.5462, "csim": 0.9868},
                {"mouth_l1": 0.0143, "emotion_acc": 0.5462, "csim": 0.9925},
                {"mouth_l1": 0.001, "emotion_acc": 0.05, "csim": 0.001})
    text = spfem_verdict(t, "vd")
    assert "**Target, +STCCL (VD): not shown**" in text
    assert _checks(text)["mouth_l1"] == "not shown" and "within 2 SE of the threshold" in text
    assert "CSIM 0.9925 ± 0.0010 vs 0.9868 ± 0.0010 (needs not lower, saturated)" in text
    # a clear miss stays a miss whatever the rest says
    t.loc[t.variant == "vd", "emotion_acc_mean"] = 0.30
    assert "not met**" in spfem_verdict(t, "vd")


@pytest.mark.parametrize("value, noise, expected", [
    (0.95, math.nan, "yes"), (0.85, math.nan, "no"),
    (0.95, 0.01, "yes"),            # 0.05 above, 2 SD = 0.02
    (0.91, 0.01, "not shown"),      # 0.01 above, within 2 SD
    (0.85, 0.01, "no"),
])
def test_against_threshold(value, noise, expected):
    assert against(value, 0.9, noise) == expected


def test_control_verdict_uses_the_gap_sd():
    ct = pd.DataFrame([
        {"when": "after", "measure": "per_query", "variant": "vd", "kind": "spatial", "gap": 0.50, "gap_sd": 0.02},
        {"when": "after", "measure": "per_query", "variant": "vd", "kind": "temporal", "gap": 0.32, "gap_sd": 0.05},
        {"when": "after", "measure": "per_query", "variant": "cm", "kind": "spatial", "gap": 0.00, "gap_sd": 0.01},
    ])
    text = control_verdict(ct)
    assert "met by per_query VD spatial (0.50 ± 0.02)" in text
    assert "not met by per_query CM spatial" in text
    assert "not shown (within 2 SD of 0.3) by per_query VD temporal" in text


def test_ablation_findings_name_no_factor_inside_the_yardstick():
    ab = pd.DataFrame({"factor": ["default", "metric window T", "metric window T", "tau"],
                       "level": ["-", "3", "7", "0.05"],
                       "mouth_l1": [0.0139, 0.0133, 0.0148, 0.0137], "emotion_acc": [0.38, 0.35, 0.31, 0.23]})
    lines = ablation_findings(ab, {"mouth_l1": 0.0010, "emotion_acc": 0.05})
    assert lines[0].startswith("- mouth_l1: every grid point lies within 2 SD (0.0020)")
    assert "no factor is shown to change it" in lines[0] and "best" not in " ".join(lines)
    assert "tau = 0.05 (0.2300, 15.0 points lower: worse)" in lines[1] and "window T" not in lines[1]
