"""Aux nets and the SPFEM evaluation against the synthetic ground truth; run comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from stccl.data import synth
from stccl.spfem.aux_nets import AuxConfig, cache_path, load_aux_nets, load_frame_table
from stccl.cli import main as cli_main
from stccl.data.mead import EMOTIONS, MeadLayout, frames_to_tensor
from stccl.spfem.evaluate import (EvalOptions, baseline_output_fn, compare_runs, evaluate_outputs, score_clip,
                            to_markdown)

AUX = AuxConfig(size=32, frame_stride=2, steps=120, batch_size=32, lr=3e-3)
S = AUX.size
EMOS = ("neutral", "happy", "sad")


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evaluate") / "micro"
    synth.synthesize(root, synth.make_config("tiny", n_identities=4, n_test=1, n_sentences=2, syllables=(3, 3),
                                             emotions=EMOS, workers=2), seed=7, progress=False)
    return root


@pytest.fixture(scope="module")
def nets(micro):
    return load_aux_nets(micro, ("emotion_eval", "identity_eval", "mouth"), AUX, progress=False)


def test_aux_nets_learn_on_tiny_data(micro, nets):
    from stccl.spfem.aux_nets import aux_scores

    scores = aux_scores(micro, ("emotion_eval", "identity_eval", "mouth"), AUX)
    # emotion on held-out clips of the train identities: well above chance (1/3 here)
    assert scores["emotion_eval"]["val_accuracy"] > 0.6
    assert scores["identity_eval"]["train_accuracy"] > 0.8
    # the mouth regressor beats predicting the mean (error below the parameters' spread)
    assert scores["mouth"]["val_mae_over_std"] < 0.8
    # cached: a second load does not retrain (same object state from disk)
    for name in ("emotion_eval", "identity_eval", "mouth"):
        assert cache_path(micro, name, AUX).is_file()
    again = load_aux_nets(micro, ("mouth",), AUX, progress=False, train_if_missing=False)["mouth"]
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), nets["mouth"].state_dict().values()))


def test_aux_nets_use_train_identities_only(micro):
    table = load_frame_table(micro, AuxConfig(frame_stride=8))
    meta = json.loads((micro / "meta.json").read_text())
    assert set(table.actors).isdisjoint(meta["test_actors"]) and table.actors


def _gt_and_source(root, actor, clip=1, emotion="happy", size=S):
    layout = MeadLayout(root)
    n = layout.num_frames(actor, "neutral", clip)
    source = layout.load_frames(actor, "neutral", clip, np.arange(n), size)
    target = frames_to_tensor(synth.render_target(root, actor, clip, emotion), size)
    return source, target


def test_ground_truth_scores_perfect_and_shuffled_scores_bad(micro, nets):
    actor = json.loads((micro / "meta.json").read_text())["test_actors"][0]
    source, target = _gt_and_source(micro, actor)
    happy = EMOTIONS.index("happy")
    # the ground truth as its own input and output: no mouth error, CSIM 1
    row, _ = score_clip(nets, target, target, target, happy)
    assert row["mouth_l1"] == 0.0 and row["mouth_param_err"] == 0.0
    assert row["csim"] == pytest.approx(1.0, abs=1e-5) and row["ssim"] == pytest.approx(1.0)
    assert row["mouth_ssim"] == pytest.approx(1.0)
    # the ground truth as output of the real source: still no mouth error
    row_src, _ = score_clip(nets, source, target, target, happy)
    assert row_src["mouth_l1"] == 0.0 and row_src["mouth_param_err"] == 0.0
    # the same frames shuffled in time: speech destroyed -> clearly worse mouth scores
    perm = torch.from_numpy(np.random.default_rng(0).permutation(len(target)))
    bad, _ = score_clip(nets, target, target[perm], target, happy)
    assert bad["mouth_l1"] > 0.005 and bad["mouth_param_err"] > 0.02 and bad["mouth_ssim"] < 0.95
    # the unedited input: mouth shape of the wrong emotion -> worse than the truth
    copy, _ = score_clip(nets, source, source, target, happy)
    assert copy["mouth_l1"] > 0.005


def test_emotion_accuracy_high_on_the_truth_and_low_on_a_neutral_copy(micro, nets):
    """The truth shows the target emotion: score_clip's accuracy is high; the unedited neutral input: low.

    The tiny evaluation classifier does not generalise to the one held-out identity of this data set, so
    the check runs on a train identity whose own recorded clips the classifier gets right (counted here
    with a plain argmax): what is tested is score_clip's accounting, not the classifier.
    """
    from stccl.spfem.aux_nets import batched

    layout = MeadLayout(micro)
    tests = json.loads((micro / "meta.json").read_text())["test_actors"]

    def recorded_accuracy(actor, emotion):
        clip = layout.clips(actor, emotion)[0]
        frames = layout.load_frames(actor, emotion, clip, np.arange(layout.num_frames(actor, emotion, clip)), S)
        return float((batched(nets["emotion_eval"], frames).argmax(1) == EMOTIONS.index(emotion)).float().mean())

    actor = next((a for a in layout.actors() if a not in tests
                  and all(recorded_accuracy(a, e) >= 0.9 for e in ("happy", "sad"))), None)
    assert actor is not None, "the evaluation classifier gets no train identity right: the fixture is broken"
    for emotion in ("happy", "sad"):
        idx = EMOTIONS.index(emotion)
        source, target = _gt_and_source(micro, actor, emotion=emotion)
        truth, _ = score_clip(nets, source, target, target, idx)
        copy, _ = score_clip(nets, source, source, target, idx)
        assert truth["emotion_acc"] >= 0.8, (actor, emotion, truth["emotion_acc"])
        assert copy["emotion_acc"] <= 0.2, (actor, emotion, copy["emotion_acc"])


def test_evaluate_outputs_copy_and_shuffled(micro, nets, tmp_path, monkeypatch):
    monkeypatch.delenv("STCCL_LPIPS_WEIGHTS", raising=False)  # the "absent" branch, whatever this machine holds
    opts = EvalOptions(target_emotions=("happy", "sad"), max_clips=1, lpips=True)
    copy, df = evaluate_outputs(baseline_output_fn("copy", micro, S), micro, S, opts, AUX, progress=False)
    shuf, _ = evaluate_outputs(baseline_output_fn("shuffled", micro, S), micro, S, opts, AUX, progress=False)
    assert len(df) == copy["clips"] == 2 and set(df["target_emotion"]) == {"happy", "sad"}
    s = copy["summary"]
    assert all(np.isfinite(s[k]) for k in ("mouth_l1", "mouth_param_err", "csim", "fad", "ssim", "psnr"))
    assert s["lpips"] == "not computed"  # no LPIPS weights given
    assert shuf["summary"]["mouth_param_err"] > s["mouth_param_err"]
    assert s["csim"] == pytest.approx(1.0, abs=1e-5)  # the input itself: same identity embedding
    assert 0.5 < shuf["summary"]["csim"] < 1.0  # same person, other frames


def test_evaluate_outputs_computes_lpips_when_its_weights_are_given(micro, nets, tmp_path, monkeypatch):
    from test_known_answers import _stand_in_alexnet

    torch.save(_stand_in_alexnet(), tmp_path / "alex.pth")
    monkeypatch.setenv("STCCL_LPIPS_WEIGHTS", str(tmp_path / "alex.pth"))
    monkeypatch.delenv("STCCL_LPIPS_LINEAR", raising=False)
    monkeypatch.setattr("stccl.spfem.scores._lpips_package_linear", lambda: None)
    opts = EvalOptions(target_emotions=("happy",), max_clips=1, lpips=True)
    res, _ = evaluate_outputs(baseline_output_fn("copy", micro, S), micro, S, opts, AUX, progress=False)
    lp = res["summary"]["lpips"]
    assert isinstance(lp, float) and 0 < lp < 10
    off, _ = evaluate_outputs(baseline_output_fn("copy", micro, S), micro, S,
                              EvalOptions(target_emotions=("happy",), max_clips=1, lpips=False), AUX, progress=False)
    assert off["summary"]["lpips"] == "not computed"


def test_evaluate_and_compare_cli(micro, tmp_path, capsys):
    out = tmp_path / "copy"
    args = ["evaluate", "--baseline", "copy", "--data", str(micro), "--out", str(out), "--targets", "happy",
            "--max-clips", "1", "--no-progress", "--size", str(S), *[f"--aux-set={k}={v}" for k, v in
                                                    (("size", S), ("frame_stride", 2), ("steps", 120), ("batch_size", 32),
                                                     ("lr", 3e-3))]]
    assert cli_main(args + ["--split", "test"]) == 0
    res = json.loads((out / "eval.json").read_text())
    assert res["clips"] == 1 and (out / "eval_clips.csv").is_file()
    assert cli_main(["evaluate", "--baseline", "copy", "--data", str(micro), "--out", str(out),
                     "--targets", "joyful"]) == 2
    assert cli_main(["evaluate", "--run", str(tmp_path / "missing")]) == 2


def _fake_eval(folder, name, seed, mouth):
    folder.mkdir(parents=True)
    summary = {"mouth_l1": mouth, "mouth_ssim": 0.5, "mouth_param_err": mouth * 2, "emotion_acc": 0.9, "csim": 0.95,
               "fad": 0.1, "ssim": 0.6, "psnr": 20.0, "lpips": "not computed"}
    (folder / "eval.json").write_text(json.dumps({"name": name, "seed": seed, "summary": summary}))


def test_compare_table_mean_std(tmp_path, capsys):
    runs = []
    for name, vals in (("baseline", (0.10, 0.12, 0.14)), ("stccl_vd", (0.08, 0.08, 0.08))):
        for seed, v in enumerate(vals):
            d = tmp_path / f"{name}_s{seed}"
            _fake_eval(d, name, seed, v)
            runs.append(d)
    table = compare_runs(runs)
    base = table[table["variant"] == "baseline"].iloc[0]
    assert base["runs"] == 3 and base["mouth_l1_mean"] == pytest.approx(0.12)
    assert base["mouth_l1_std"] == pytest.approx(0.02)
    vd = table[table["variant"] == "stccl_vd"].iloc[0]
    assert vd["mouth_l1_change_vs_baseline_pct"] == pytest.approx(100 * (0.08 - 0.12) / 0.12)
    md = to_markdown(table)
    assert md.count("\n") == 4 and "0.1200 ± 0.0200" in md
    stem = tmp_path / "cmp"
    assert cli_main(["compare", *map(str, runs), "--out", str(stem)]) == 0
    assert "stccl_vd" in capsys.readouterr().out
    assert pd.read_csv(stem.with_suffix(".csv"))["runs"].tolist() == [3, 3]
    assert (stem.with_suffix(".md")).read_text().startswith("| variant")


def test_evaluate_refuses_data_from_another_renderer(micro, tmp_path):
    import shutil

    from stccl.spfem.evaluate import check_renderer_matches
    from stccl.io import StcclError

    actor = json.loads((micro / "meta.json").read_text())["test_actors"][0]
    assert check_renderer_matches(micro, actor, 1, "neutral") < 0.045  # noise + JPEG only
    other = tmp_path / "other"
    shutil.copytree(micro, other, ignore=shutil.ignore_patterns(".aux"))
    meta = json.loads((other / "meta.json").read_text())
    meta["seed"] += 1  # the renderer now draws other faces than those on disk
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StcclError, match="another version of the renderer"):
        evaluate_outputs(baseline_output_fn("copy", other, S), other, S, EvalOptions(max_clips=1), AUX,
                         progress=False)


def test_frechet_distance_known_answers():
    """Same set: 0; the same set shifted by v: ||v||^2 (equal covariances cancel); fewer samples than dims works."""
    from stccl.spfem.scores import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    shift = np.arange(8) / 4.0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    small = rng.normal(size=(5, 16))  # singular covariances, as with few frames and 128-d embeddings
    d = frechet_distance(small, small + 1.0)
    assert np.isfinite(d) and d == pytest.approx(16.0, rel=1e-3)
