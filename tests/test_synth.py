"""Synthetic renderer: determinism, ground-truth consistency, DTW agreement, targets, CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.interpolate import CubicSpline

from stccl import cli
from stccl.data import synth
from stccl.data.mead import EMOTIONS, MeadLayout, PairedWindowDataset, load_alignment
from stccl.io import StcclError

# A micro version of the tiny preset: all 7 emotions, 3 actors, 2 sentences, 48 px.
MICRO = dict(n_identities=3, n_test=1, n_sentences=2, size=48)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "micro"
    summary = synth.synthesize(root, synth.make_config("tiny", workers=2, **MICRO), seed=3, progress=False)
    return root, summary


def _frames(root, actor, emotion, clip):
    layout = MeadLayout(root)
    n = layout.num_frames(actor, emotion, clip)
    return np.stack([np.asarray(Image.open(layout.frame_path(actor, emotion, clip, f))) for f in range(n)])


def test_layout_and_files(micro):
    root, summary = micro
    meta = json.loads((root / "meta.json").read_text())
    assert meta["actors"] == ["S001", "S002", "S003"] and meta["test_actors"] == ["S003"]
    layout = MeadLayout(root)
    assert layout.actors() == meta["actors"]
    assert layout.emotions("S002") == list(EMOTIONS)
    assert layout.clips("S002", "sad") == [1, 2]
    frame = np.asarray(Image.open(root / "S001" / "align_img" / "happy" / "002" / "000000.jpg"))
    assert frame.shape == (48, 48, 3)
    truth = synth.load_ground_truth(root)
    assert len(truth) == summary["frames"]
    for col in ("actor", "clip", "emotion", "intensity", "sentence_time", "v_open", "e_corner", "blink",
                "pose_rot", "lm_mouth_l_x", "lm_chin_y"):
        assert col in truth.columns
    # Ground-truth rows match the frames on disk, clip by clip.
    counts = truth.groupby(["actor", "emotion", "clip"]).size()
    for (a, e, c), n in counts.items():
        assert layout.num_frames(a, e, int(c)) == n
    assert (root / "contact_sheet.png").is_file() and (root / "summary.json").is_file()
    assert summary["pairs"] == 3 * 6 * 2


def test_intensities_and_expressions(micro):
    root, _ = micro
    truth = synth.load_ground_truth(root)
    neutral = truth[truth["emotion"] == "neutral"]
    assert (neutral["intensity"] == 0).all()
    assert np.allclose(neutral[[c for c in truth.columns if c.startswith("e_")]].to_numpy(), 0)
    emo = truth[truth["emotion"] != "neutral"]
    assert set(emo["intensity"].unique()) <= {1, 2, 3} and emo["intensity"].nunique() >= 2
    # Emotions act on the upper face and the mouth corners in the documented directions.
    mean = truth.groupby("emotion")[["e_corner", "e_brow_raise", "e_eye_open", "e_cheek"]].mean()
    assert mean.loc["happy", "e_corner"] > 0.3 and mean.loc["sad", "e_corner"] < -0.3
    assert mean.loc["surprised", "e_brow_raise"] > 0.3 and mean.loc["angry", "e_brow_raise"] < 0
    assert mean.loc["happy", "e_cheek"] > 0.3 and mean.loc["surprised", "e_eye_open"] > 0.3


def test_same_sentence_same_mouth_up_to_time_warp(micro):
    """The speech part of the mouth is one function of sentence time in every emotion."""
    root, _ = micro
    truth = synth.load_ground_truth(root)
    lengths = set()
    for (actor, clip), g in truth.groupby(["actor", "clip"]):
        ref = g[g["emotion"] == "neutral"].sort_values("frame")
        for emotion, e in g.groupby("emotion"):
            e = e.sort_values("frame")
            lengths.add(len(e))
            # Neutral's trajectory, read at the emotional frames' sentence times, is the emotional trajectory.
            for p in ("v_open", "v_width", "v_round", "v_jaw"):
                warped = CubicSpline(ref["sentence_time"], ref[p])(e["sentence_time"])
                inner = (e["sentence_time"] > ref["sentence_time"].min()) & (e["sentence_time"] < ref["sentence_time"].max())
                # (interpolating between neutral frames is the only error: small)
                err = np.abs(warped[inner] - e[p].to_numpy()[inner])
                assert err.max() < 0.1 and err.mean() < 0.01, (actor, clip, emotion, p, err.max(), err.mean())
    # The table agrees with the sentence's phonemes through the one speech function.
    meta = json.loads((root / "meta.json").read_text())
    from stccl.data import face_model as fm
    for (actor, emotion, clip), g in truth.groupby(["actor", "emotion", "clip"]):
        visemes = [fm.PHONEMES[p][0] for p in meta["sentences"][f"{clip:03d}"]]
        expect = fm.speech_trajectory(visemes, g["sentence_time"].to_numpy())
        assert np.allclose(expect, g[["v_open", "v_width", "v_round", "v_jaw"]].to_numpy(), atol=1e-5)
    # ... but the renditions are not frame-aligned: clip lengths vary across emotions.
    assert len(lengths) > 3
    # Control: a different sentence does not match.
    a = truth[(truth["actor"] == "S001") & (truth["emotion"] == "neutral")]
    s1, s2 = a[a["clip"] == 1], a[a["clip"] == 2]
    t = np.linspace(0.5, min(s1["sentence_time"].max(), s2["sentence_time"].max()) - 0.5, 50)
    diff = np.interp(t, s1["sentence_time"], s1["v_open"]) - np.interp(t, s2["sentence_time"], s2["v_open"])
    assert np.abs(diff).max() > 0.2


def test_dtw_agrees_with_true_timing(micro):
    root, summary = micro
    err = summary["dtw_mean_abs_frame_error"]
    # DTW on rendered frames must beat a linear stretch and stay within a few frames of the truth.
    assert err < 2.5, summary
    assert err < 0.85 * summary["linear_stretch_mean_abs_frame_error"], summary
    assert err < 0.6 * summary["no_alignment_mean_abs_frame_error"], summary
    table = pd.read_csv(root / "dtw_errors.csv")
    assert len(table) == summary["pairs"]
    assert abs(table["dtw_mae"].mean() - err) < 1e-3


def test_alignment_file_is_official_and_loads(micro):
    root, _ = micro
    al = load_alignment(root / "aligned_path.json")
    assert sorted(al) == ["S001", "S002", "S003"]
    assert sorted(al["S001"]) == sorted(EMOTIONS[1:])
    assert sorted(al["S001"]["fear"]) == ["001_001", "002_002"]
    layout = MeadLayout(root)
    idx_n, idx_e = al["S002"]["sad"]["002_002"]
    assert idx_n[0] == 0 and idx_e[0] == 0
    assert idx_n[-1] == layout.num_frames("S002", "neutral", 2) - 1
    assert idx_e[-1] == layout.num_frames("S002", "sad", 2) - 1
    train = PairedWindowDataset(root, root / "aligned_path.json", T=5, split="train")
    test = PairedWindowDataset(root, root / "aligned_path.json", T=5, split="test")
    assert {p["actor"] for p in test.pairs} == {"S003"}
    assert not {p["actor"] for p in train.pairs} & {"S003"}
    item = train[7]
    assert item["neutral"].shape == (5, 3, 48, 48) and item["emotional"].shape == (5, 3, 48, 48)


def test_identities_differ_more_than_emotions(micro):
    """Frames of two actors differ more than two emotions of one actor (identity is visible)."""
    root, _ = micro
    mid = {(a, e): _frames(root, a, e, 1)[5].astype(np.float32) for a in ("S001", "S002", "S003")
           for e in ("neutral", "happy", "surprised")}
    across_id = np.mean([np.abs(mid[(a, "neutral")] - mid[(b, "neutral")]).mean()
                         for a, b in (("S001", "S002"), ("S001", "S003"), ("S002", "S003"))])
    across_emo = np.mean([np.abs(mid[(a, "neutral")] - mid[(a, e)]).mean()
                          for a in ("S001", "S002", "S003") for e in ("happy", "surprised")])
    assert across_id > 2 * across_emo > 0


def test_deterministic_for_a_seed(micro, tmp_path):
    root, summary = micro
    cfg = synth.make_config("tiny", workers=1, **{**MICRO, "n_identities": 2, "n_test": 1, "n_sentences": 1})
    a = synth.synthesize(tmp_path / "a", cfg, seed=3, progress=False)
    b = synth.synthesize(tmp_path / "b", synth.make_config("tiny", workers=2, **{**MICRO, "n_identities": 2,
                                                                                 "n_test": 1, "n_sentences": 1}),
                         seed=3, progress=False)
    assert a["frames"] == b["frames"]
    for actor in ("S001", "S002"):
        for emotion in EMOTIONS:
            fa = sorted((tmp_path / "a" / actor / "align_img" / emotion / "001").iterdir())
            fb = sorted((tmp_path / "b" / actor / "align_img" / emotion / "001").iterdir())
            assert [p.read_bytes() for p in fa] == [p.read_bytes() for p in fb]
            # The same frames as in the 3-actor, 2-sentence render with this seed: clips do not depend
            # on how many others are rendered.
            fm = sorted((root / actor / "align_img" / emotion / "001").iterdir())
            assert [p.read_bytes() for p in fa] == [p.read_bytes() for p in fm]
    assert (tmp_path / "a" / "aligned_path.json").read_text() == (tmp_path / "b" / "aligned_path.json").read_text()
    pd.testing.assert_frame_equal(synth.load_ground_truth(tmp_path / "a"), synth.load_ground_truth(tmp_path / "b"))
    c = synth.synthesize(tmp_path / "c", cfg, seed=4, progress=False)
    assert c["frames"] != a["frames"] or (tmp_path / "c" / "S001" / "align_img" / "neutral" / "001" / "000003.jpg"
                                          ).read_bytes() != (tmp_path / "a" / "S001" / "align_img" / "neutral" /
                                                             "001" / "000003.jpg").read_bytes()


def test_render_target(micro):
    root, _ = micro
    truth = synth.load_ground_truth(root)
    # Same emotion as the source: the clean target matches the saved (noisy, JPEG) frames.
    rows = truth[(truth["actor"] == "S002") & (truth["emotion"] == "happy") & (truth["clip"] == 1)]
    same = synth.render_target(root, "S002", 1, "happy", source_emotion="happy")
    saved = _frames(root, "S002", "happy", 1)
    assert same.shape == saved.shape and same.dtype == np.uint8
    mse = np.mean((same.astype(np.float64) - saved) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 25
    # Neutral -> happy: the neutral clip's timing (frame count) with the happy expression.
    target = synth.render_target(root, "S002", 1, "happy", source_emotion="neutral")
    neutral = _frames(root, "S002", "neutral", 1)
    assert target.shape == neutral.shape
    assert len(target) != len(rows) or not np.array_equal(target, same)
    diff = np.abs(target.astype(np.float64) - synth.render_target(root, "S002", 1, "neutral")).mean(axis=(0, 3))
    h = diff.shape[0]
    assert diff.mean() > 0.5  # the expression changes the face
    assert diff[: h // 8].mean() < diff[h // 4: 7 * h // 8].mean()  # ... not the background at the top
    assert np.array_equal(target, synth.render_target(root, "S002", 1, "happy"))  # clean: deterministic
    with pytest.raises(StcclError, match="unknown emotion"):
        synth.render_target(root, "S002", 1, "joy")


def test_landmarks_follow_the_mouth(micro):
    root, _ = micro
    t = synth.load_ground_truth(root)
    n = t[t["emotion"] == "neutral"]
    gap = n["lm_lip_in_bottom_y"] - n["lm_lip_in_top_y"]
    assert np.corrcoef(gap, n["v_open"])[0, 1] > 0.8
    assert ((t["lm_mouth_l_x"] > 0) & (t["lm_mouth_r_x"] < 48) & (t["lm_mouth_l_x"] < t["lm_mouth_r_x"])).all()


def test_cli_refuses_non_empty_out(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["synth", "--out", str(out), "--preset", "tiny"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_cli_synth_and_force(tmp_path, capsys):
    out = tmp_path / "s"
    args = ["synth", "--out", str(out), "--preset", "tiny", "--identities", "2", "--sentences", "1",
            "--size", "40", "--no-progress"]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["actors"] == 2 and summary["clips"] == 14 and summary["size"] == 40
    assert cli.main(args) == 2
    assert cli.main(args + ["--force", "--seed", "1"]) == 0
    assert json.loads((out / "meta.json").read_text())["seed"] == 1
    capsys.readouterr()
    assert cli.main(["pairs", "--root", str(out), "--align", str(out / "aligned_path.json"), "--check-frames"]) == 0
    pairs = json.loads(capsys.readouterr().out.strip())
    assert pairs["actors"] == 2 and pairs["pairs"] == 12 and pairs["test_actors"] == ["S002"]
    assert pairs["splits"]["train"]["pairs"] == pairs["splits"]["test"]["pairs"] == 6


def test_presets():
    assert synth.PRESETS["tiny"].size == 64 and synth.PRESETS["default"].size in (112, 128)
    assert synth.PRESETS["tiny"].emotions == EMOTIONS
    with pytest.raises(StcclError, match="unknown synth preset"):
        synth.make_config("huge")
    with pytest.raises(StcclError, match="n_test"):
        synth.make_config("tiny", n_identities=2, n_test=2)
    with pytest.raises(StcclError, match="besides 'neutral'"):  # no pairs to align: refused before rendering
        synth.make_config("tiny", emotions=("neutral",))


def test_timing_and_coarticulation_helpers():
    from stccl.data import face_model as fm
    s = synth.sentence_time_of_frames(np.array([2.0, 3.5, 1.5]))
    assert len(s) == 7 and np.all(np.diff(s) > 0) and s[0] == 0 and s[-1] < 3
    assert np.allclose(s[:3], [0, 0.5, 1.0])  # 2 frames in phoneme 0, then phoneme 1 starts
    # A bilabial (dominant) closes the mouth between two open vowels; an open vowel opens it.
    traj = fm.speech_trajectory(["AA", "PBM", "AA"], np.array([0.5, 1.5, 2.5]))
    assert traj[1, 0] < 0.25 < 0.7 < traj[0, 0]
    # Expressions scale with intensity; neutral is all zeros.
    assert np.allclose(fm.EXPRESSIONS["neutral"].vector(), 0)
    half = fm.EXPRESSIONS["happy"].scaled(0.5)
    assert np.isclose(half.corner, 0.5 * fm.EXPRESSIONS["happy"].corner) and half.tempo < fm.EXPRESSIONS["happy"].tempo


def test_shared_motion_render_flag_is_opt_in_and_shares_head_motion_across_emotions():
    # The flag behind the issue-4 temporal experiment: default renders are untouched; with it, head pose
    # is a function of the sentence time, so two emotions agree at equal sentence times.
    plain, shared = synth.make_config("tiny"), synth.make_config("tiny", shared_motion=True)
    assert plain.shared_motion is False
    phonemes = synth.make_sentence(0, 1, plain)
    p_n, p_s = (synth.plan_clip(plain, 0, 0, e, 1, phonemes) for e in ("neutral", "sad"))
    s_n, s_s = (synth.plan_clip(shared, 0, 0, e, 1, phonemes) for e in ("neutral", "sad"))
    assert np.array_equal(p_n.sentence_time, s_n.sentence_time) and np.array_equal(p_n.speech, s_n.speech)

    def gap(a, b):  # pose of b at a's sentence times, vs a's pose
        at = np.stack([np.interp(a.sentence_time, b.sentence_time, b.pose[:, k]) for k in range(4)], 1)
        return float(np.abs(at - a.pose).max())

    assert gap(s_n, s_s) < 0.005 < gap(p_n, p_s)
    assert s_n.blink.shape == s_n.sentence_time.shape and 0.0 <= s_n.blink.min() <= s_n.blink.max() <= 1.0


def _speech(cfg, emotion, actor=0, clip=1):
    return synth.plan_clip(cfg, 0, actor, emotion, clip, synth.make_sentence(0, clip, cfg)).speech


def test_coherence_sets_how_much_speech_the_renditions_share():
    """Same timing for every emotion, so speech trajectories compare frame by frame."""
    base = synth.make_config("tiny", emotion_timing=False, emotion_on_mouth=False)
    full = _speech(base, "neutral")
    np.testing.assert_array_equal(full, _speech(synth.make_config("tiny", emotion_timing=False,
                                                                  emotion_on_mouth=False, coherence=1.0), "neutral"))
    corr = {}
    for c in (0.0, 0.5, 1.0):
        cfg = synth.make_config("tiny", emotion_timing=False, emotion_on_mouth=False, coherence=c)
        rs, amp = [], []
        for actor in range(3):
            for clip in range(3):
                a, b = _speech(cfg, "neutral", actor, clip), _speech(cfg, "happy", actor, clip)
                rs.append(np.corrcoef(a[:, 0], b[:, 0])[0, 1])  # mouth opening
                amp.append(a[:, 0].std() / _speech(base, "neutral", actor, clip)[:, 0].std())
        corr[c] = float(np.mean(rs))
        # lowering coherence takes away common speech, not the amount of motion
        assert 0.7 < np.mean(amp) < 1.4, (c, amp)
    assert corr[1.0] > 0.99 and corr[0.0] < 0.4 and corr[0.0] < corr[0.5] < corr[1.0], corr


def test_mix_speech_weights_the_motion_by_square_roots():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4000, 4)) + 1.0, rng.normal(size=(4000, 4)) + 1.0
    m = synth.mix_speech(a, b, 0.25)
    assert abs(np.corrcoef(m[:, 1], a[:, 1])[0, 1] - 0.5) < 0.05  # sqrt(0.25)
    assert abs(m[:, 1].std() - 1.0) < 0.05 and (m[:, [0, 2]] >= 0).all()
    assert synth.mix_speech(a, b, 1.0) is a


@pytest.mark.parametrize("bad", [dict(coherence=1.5), dict(coherence=-0.1), dict(speech_cheeks=-1.0),
                                 dict(pose_speed=0.0)])
def test_new_synth_settings_are_validated(bad):
    with pytest.raises(StcclError, match=next(iter(bad))):
        synth.make_config("tiny", **bad)


def test_default_preset_is_a_tight_face_crop_with_a_large_mouth():
    """Issue 13: the mouth spans at least 20 % of the crop width; brows and chin are inside the frame."""
    from stccl.data import face_model as fm

    cfg = synth.make_config("default")
    names = list(fm.LANDMARKS)
    for a in range(cfg.n_identities):
        ident = synth.identity(0, a, f"S{a + 1:03d}")
        rest = np.zeros((1, 4))
        _, lm = fm.draw_faces(ident, rest, np.zeros((1, len(fm.EXPRESSION_PARAMS))), np.zeros(1), np.zeros((1, 4)),
                              64, zoom=cfg.zoom, centre_y=cfg.centre_y, speech_cheeks=cfg.speech_cheeks)
        p = {n: lm[0, i] for i, n in enumerate(names)}
        assert (p["mouth_r"][0] - p["mouth_l"][0]) / 64 >= 0.2, a
        assert p["brow_l_out"][1] > 0 and p["chin"][1] < 64, a
    loose = synth.make_config("loose")
    assert loose.zoom < cfg.zoom and loose.noise_std > cfg.noise_std


def test_speech_cheeks_move_the_cheeks_with_the_jaw():
    from stccl.data import face_model as fm

    ident = synth.identity(0, 0, "S001")
    speech = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 0.2, 0.0, 1.0]])  # mouth closed, then wide open
    args = (np.zeros((2, len(fm.EXPRESSION_PARAMS))), np.zeros(2), np.zeros((2, 4)), 96)
    moved = {}
    for k in (0.0, 1.0):
        img, _ = fm.draw_faces(ident, speech, *args, zoom=1.65, centre_y=0.28, speech_cheeks=k)
        moved[k] = float(np.abs(img[1] - img[0]).mean())  # lips, jaw and chin move in both
    assert moved[1.0] > 1.05 * moved[0.0], moved  # the shadows alone add ~14 % of the change
