"""Known answers for the calibration statistics (stccl.real.calibration) on hand-made 68-point tracks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stccl.real import calibration as cal

FPS = 25.0


def neutral_face(iod: float = 100.0) -> np.ndarray:
    """A (68, 2) frontal face: outer eye corners (36, 45) `iod` apart on a horizontal line at y = 0.

    Only the points the statistics read are placed with care; eyes have aspect ratio 0.3.
    """
    p = np.zeros((68, 2))
    s = iod / 100.0
    # eyes: 36..41 image-left eye, 42..47 image-right eye; corners at x = -50, -20 and 20, 50
    for base, x0 in ((36, -50.0), (42, 20.0)):
        w = 30.0
        p[base + 0] = (x0, 0)
        p[base + 3] = (x0 + w, 0)
        p[base + 1] = (x0 + w / 3, -0.3 * w / 2)
        p[base + 2] = (x0 + 2 * w / 3, -0.3 * w / 2)
        p[base + 5] = (x0 + w / 3, 0.3 * w / 2)
        p[base + 4] = (x0 + 2 * w / 3, 0.3 * w / 2)
    p[8] = (0, 120)                      # chin
    p[[3, 4, 12, 13]] = [(-60, 70), (-55, 85), (55, 85), (60, 70)]
    p[30] = (0, 50)                      # nose tip
    p[31], p[35] = (-12, 58), (12, 58)   # nose wings
    p[48], p[54] = (-25, 80), (25, 80)   # mouth corners
    p[62], p[66] = (0, 78), (0, 82)      # inner lips
    return p * s


def track(n: int = 100) -> np.ndarray:
    return np.repeat(neutral_face()[None], n, 0)


def test_sinusoidal_mouth_opening_amplitude_and_velocity():
    """Inner-lip gap swinging 0.1 IOD peak to peak at 2 Hz: amplitude and mean speed of that sine."""
    n, f, a = 250, 2.0, 0.1  # 10 s at 25 fps, 2 Hz, peak-to-peak 0.1 IOD
    lms = track(n)
    t = np.arange(n) / FPS
    gap = (0.04 + a * (1 - np.cos(2 * np.pi * f * t)) / 2) * 100.0  # pixels; IOD = 100 px
    lms[:, 62, 1] = 80 - gap / 2
    lms[:, 66, 1] = 80 + gap / 2
    stats = cal.clip_statistics(lms, FPS)
    # p95 - p5 of a sine of peak-to-peak a (uniform phase) is a * sin(0.45 pi)
    assert stats["mouth_open_amp"] == pytest.approx(a * np.sin(0.45 * np.pi), rel=0.02)
    # mean |dx/dt| of a sine of peak-to-peak a at f Hz is 2 a f (sampled: slightly less)
    assert stats["mouth_open_vel"] == pytest.approx(2 * a * f, rel=0.03)
    assert stats["mouth_open_mean"] == pytest.approx(0.04 + a / 2, rel=0.02)
    for s in ("mouth_width", "jaw_drop", "cheek", "nasolabial", "head_x", "head_y", "head_roll", "head_yaw",
              "head_pitch", "head_scale"):  # nothing else moves
        assert stats[f"{s}_amp"] == pytest.approx(0.0, abs=1e-9), s
        assert stats[f"{s}_vel"] == pytest.approx(0.0, abs=1e-9), s


def test_velocity_counts_steps_of_a_slow_quantised_drift():
    """A 1-pixel step every 5th frame moves at 0.2 px/frame = 5 px/s at 25 fps, although the median step is 0."""
    x = np.floor(np.arange(101) / 5.0)  # 20 steps in 100 differences
    assert cal.velocity(x, FPS) == pytest.approx(0.2 * FPS)
    x[50] = np.nan  # the two differences touching a missing frame are skipped
    assert cal.velocity(x, FPS) == pytest.approx(np.nanmean(np.abs(np.diff(x))) * FPS)


def test_amplitude_is_robust_range():
    x = np.r_[np.linspace(0, 1, 101), np.nan]
    assert cal.amplitude(x) == pytest.approx(0.9)
    assert np.isnan(cal.amplitude(np.array([np.nan, 1.0])))


def test_head_translation_roll_and_scale():
    """A head sliding 0.3 IOD right, turning to 10 degrees roll and growing 20 %, each known exactly."""
    n = 101
    base = neutral_face()
    k = np.linspace(0, 1, n)
    ang = np.radians(10.0) * k
    scale = np.exp(np.log(1.2) * k)
    c, s = np.cos(ang), np.sin(ang)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (N, 2, 2)
    lms = np.einsum("nij,kj->nki", rot, base) * scale[:, None, None] + np.stack([30.0 * k, 0 * k], -1)[:, None]
    stats = cal.clip_statistics(lms, FPS)
    iod_med = 100.0 * np.median(scale)
    assert stats["head_x_amp"] == pytest.approx(0.9 * 30.0 / iod_med, rel=1e-6)
    assert stats["head_x_vel"] == pytest.approx(30.0 / iod_med / 100 * FPS, rel=1e-6)
    assert stats["head_roll_amp"] == pytest.approx(9.0, rel=1e-6)
    assert stats["head_roll_vel"] == pytest.approx(10.0 / 100 * FPS, rel=1e-6)
    assert stats["head_scale_amp"] == pytest.approx(0.9 * np.log(1.2), rel=1e-6)
    # shape signals are in the face's own frame and units: unchanged by the similarity motion
    for name in ("mouth_open", "mouth_width", "jaw_drop", "cheek", "nasolabial", "head_yaw", "head_pitch"):
        assert stats[f"{name}_amp"] == pytest.approx(0.0, abs=1e-9), name


def test_shape_signals_known_values():
    sig = cal.frame_signals(neutral_face(iod=200.0)[None])
    assert sig["mouth_open"][0] == pytest.approx(0.04)
    assert sig["mouth_width"][0] == pytest.approx(0.5)
    assert sig["jaw_drop"][0] == pytest.approx(1.2)
    assert sig["cheek"][0] == pytest.approx(0.775)
    assert sig["nasolabial"][0] == pytest.approx(np.hypot(13, 22) / 100)
    assert sig["head_yaw"][0] == pytest.approx(0.0)
    assert sig["head_pitch"][0] == pytest.approx(0.5)
    assert sig["ear"][0] == pytest.approx(0.3)
    turned = neutral_face()
    turned[30, 0] = 10.0  # nose tip 0.1 IOD towards the image right
    assert cal.frame_signals(turned[None])["head_yaw"][0] == pytest.approx(0.1)


def close_eyes(lms: np.ndarray, frames, closure: float) -> None:
    """Scale both eyes' vertical lid points by (1 - closure) on `frames`."""
    for base in (36, 42):
        lids = [base + 1, base + 2, base + 4, base + 5]
        lms[np.ix_(frames, lids, [1])] *= 1 - closure


def test_two_blinks_give_their_rate():
    n = 125  # 5 s at 25 fps
    lms = track(n)
    for onset in (20, 80):  # two 4-frame blinks, with a half-closed wobble in the second
        close_eyes(lms, list(range(onset, onset + 4)), 0.9)
    close_eyes(lms, [82], -0.6)  # partly reopened mid-blink (still under the re-arm level): not a new blink
    lms[50, 36:48] = np.nan      # a frame without a face is neither a blink nor an end of one
    assert list(cal.blink_onsets(cal.frame_signals(lms)["ear"])) == [20, 80]
    stats = cal.clip_statistics(lms, FPS)
    assert stats["blinks"] == 2
    assert stats["blink_rate"] == pytest.approx(2 / 5.0)
    assert stats["frames_found"] == n - 1


def test_jitter_around_threshold_is_one_blink():
    ear = np.full(50, 0.3)
    ear[10:16] = [0.2, 0.22, 0.19, 0.23, 0.2, 0.21]  # crosses 0.7 x median (0.21) several times, never above 0.85 x
    assert len(cal.blink_onsets(ear)) == 1
    ear[30:33] = 0.1
    assert len(cal.blink_onsets(ear)) == 2


def test_summary_pools_blinks_and_compare_flags_tolerance():
    import pandas as pd

    per_clip = pd.DataFrame({s: [1.0, 2.0, 4.0] for s in cal.STATISTICS})
    per_clip["blinks"] = [0, 1, 2]
    per_clip["seconds"] = [2.0, 2.0, 2.0]
    med = cal.summarise(per_clip)
    assert med["mouth_open_amp"] == 2.0
    assert med["blink_rate"] == pytest.approx(3 / 6.0)
    real = {s: 1.0 for s in cal.STATISTICS}
    synth = dict(real, mouth_open_amp=1.24, mouth_open_vel=0.74, blink_rate=0.0)
    res = cal.compare(real, synth)
    assert res["mouth_open_amp"] == {"ratio": pytest.approx(1.24), "within": True}
    assert res["mouth_open_vel"]["within"] is False
    assert res["blink_rate"]["within"] is False


def test_box_from_eyes_and_mouth_follows_the_face():
    """Upright: centre = eye + d (dx, dy), side = side x d; rolled 90 degrees: the offsets turn with the face."""
    eye = np.array([[100.0, 100.0], [110.0, 100.0]])
    mouth = np.array([[100.0, 150.0], [110.0, 150.0]])
    box = cal.box_from_eyes_mouth(eye, mouth)
    dx, dy, side = cal.BOX_FROM_EYES_MOUTH
    centre = eye + 50.0 * np.array([dx, dy])  # offsets measured in image x, y on upright real faces
    np.testing.assert_allclose((box[:, :2] + box[:, 2:]) / 2, centre)
    np.testing.assert_allclose(box[:, 2] - box[:, 0], side * 50.0)
    turned = cal.box_from_eyes_mouth(np.array([[100.0, 100.0]] * 2), np.array([[50.0, 100.0]] * 2))  # mouth to the left
    np.testing.assert_allclose((turned[0, :2] + turned[0, 2:]) / 2, [100.0 - 50.0 * dy, 100.0 + 50.0 * dx])


def test_default_preset_scales_the_speech_motion_by_its_gains():
    """Other presets keep the drawn width and jaw; the default scales open, width and round, and jaw by its gains."""
    from stccl.data import synth

    for name in ("tiny", "loose", "control", "mead-v1"):
        assert synth.PRESETS[name].speech_width_gain == 1.0 and synth.PRESETS[name].speech_jaw_gain == 1.0
    for name in ("tiny", "loose", "control"):
        assert synth.PRESETS[name].speech_open_gain == 1.0
    cfg = synth.make_config("default")
    base = dataclasses.replace(cfg, speech_open_gain=1.0, speech_width_gain=1.0, speech_jaw_gain=1.0)
    ph = synth.make_sentence(0, 1, base)
    a = synth.plan_clip(base, 0, 0, "neutral", 1, ph).speech
    b = synth.plan_clip(cfg, 0, 0, "neutral", 1, ph).speech
    gains = [cfg.speech_open_gain, cfg.speech_width_gain, cfg.speech_width_gain, cfg.speech_jaw_gain]
    assert len(set(gains)) > 1  # the gains differ, so a swapped column would fail
    np.testing.assert_allclose(b, a * np.array(gains))
    with pytest.raises(Exception, match="speech_jaw_gain"):
        synth.make_config("default", speech_jaw_gain=-1.0)


def test_real_clip_landmarks_reads_the_source_panel_of_a_shipped_clip():
    """The real side end to end on one shipped clip (3 frames): the manifest row picks the source panel."""
    from pathlib import Path

    from stccl.real.published_clips import read_manifest

    real = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_clips"
    manifest = read_manifest(real / "manifest.csv")
    row = manifest.iloc[0]
    lm, fps = cal.real_clip_landmarks(real / row["clip"], row, max_frames=3)
    assert lm.shape == (3, 68, 2) and fps > 0
    size = int(row["panel_size"])
    assert np.all((lm >= 0) & (lm < size))  # coordinates inside one panel, not the whole side-by-side frame


def truth_points(n: int, centres: float = 60.0) -> dict[str, np.ndarray]:
    """Renderer-style points (eye centres `centres` apart) of a still, frontal face, n frames."""
    one = {"eye_l": (-centres / 2, 0.0), "eye_r": (centres / 2, 0.0), "lip_in_top": (0.0, 78.0),
           "lip_in_bottom": (0.0, 82.0), "mouth_l": (-25.0, 80.0), "mouth_r": (25.0, 80.0), "chin": (0.0, 120.0),
           "nose_tip": (0.0, 50.0)}
    pts = {k: np.repeat(np.asarray(v)[None], n, 0) for k, v in one.items()}
    pts["blink"] = np.zeros(n)
    return pts


def test_truth_signals_use_the_dlib_iod_scale_and_read_blinks_from_the_closure():
    """Eye centres 60 px apart with iod_scale 100/60: lengths in units of a 100 px IOD, as the dlib reader's."""
    n = 250
    pts = truth_points(n)
    t = np.arange(n) / FPS
    gap = (0.04 + 0.1 * (1 - np.cos(2 * np.pi * 2.0 * t)) / 2) * 100.0  # the opening of the dlib test above
    pts["lip_in_top"][:, 1] = 80 - gap / 2
    pts["lip_in_bottom"][:, 1] = 80 + gap / 2
    pts["blink"][[40, 41, 42, 150, 151]] = [0.5, 1.0, 0.5, 0.6, 1.0]  # two closures
    sig = cal.truth_signals(pts, iod_scale=100.0 / 60.0)
    np.testing.assert_allclose(sig["iod"], 100.0)
    stats = cal.signal_statistics(sig, FPS)
    lms = track(n)
    lms[:, 62, 1] = 80 - gap / 2
    lms[:, 66, 1] = 80 + gap / 2
    ref = cal.clip_statistics(lms, FPS)
    assert stats["mouth_open_amp"] == pytest.approx(ref["mouth_open_amp"])
    assert stats["mouth_open_vel"] == pytest.approx(ref["mouth_open_vel"])
    assert stats["mouth_width_amp"] == pytest.approx(0.0, abs=1e-12)
    assert stats["jaw_drop_amp"] == pytest.approx(0.0, abs=1e-12)
    assert stats["blinks"] == 2 and stats["blink_rate"] == pytest.approx(2 / 10.0)
    for s in ("cheek", "nasolabial"):  # no renderer point for them
        assert np.isnan(stats[f"{s}_amp"]) and np.isnan(stats[f"{s}_vel"])


def test_truth_signals_turn_with_the_head():
    """A 10-degree roll of every point: head_roll reads 10, the face-frame signals do not change."""
    pts = truth_points(5)
    a = np.radians(10.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    turned = {k: (v @ rot.T if v.ndim == 2 else v) for k, v in pts.items()}
    s0, s1 = cal.truth_signals(pts, 1.5), cal.truth_signals(turned, 1.5)
    np.testing.assert_allclose(s1["head_roll"], 10.0)
    for k in ("mouth_open", "mouth_width", "jaw_drop", "head_yaw", "head_pitch"):
        np.testing.assert_allclose(s1[k], s0[k], atol=1e-12)


def test_table_marks_statistics_a_reader_cannot_measure():
    import pandas as pd

    real = pd.DataFrame([{**{s: 1.0 for s in cal.STATISTICS}, "blinks": 1, "seconds": 4.0, "source": "real"}])
    truth = pd.DataFrame([{**{s: 1.1 for s in cal.STATISTICS}, "cheek_amp": np.nan, "cheek_vel": np.nan,
                           "blinks": 1, "seconds": 4.0, "source": "synth x truth"}])
    table = cal.comparison_table(pd.concat([real, truth], ignore_index=True))
    within = dict(zip(table["statistic"], table["synth x truth within"]))
    assert within["cheek_amp"] == "n/a" and within["mouth_open_amp"] == "yes"
    assert "synth x truth: 21/21" in cal.markdown(table)
