"""The notebooks' teaching helpers (stccl.pipeline.teach) and their knobs (stccl.pipeline.params).

Fast: a tiny MetricNet on random 64 px clips, toy vectors, hand-made result dicts; no data set, no training.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from stccl.core.correlation import sample_positions
from stccl.core.losses import STCCLLoss, STCCLOptions
from stccl.core.metric_net import MetricNet, MetricNetConfig
from stccl.core.train_metric import MetricTrainConfig
from stccl.pipeline import teach
from stccl.pipeline.params import (Paths, changed_fields, knob_tag, load_params, notebook_context, synth_config,
                                   with_synth_knobs)

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "params" / "smoke.yaml"


# ---------------------------------------------------------------------------
# Knobs and run folders
# ---------------------------------------------------------------------------

def test_knob_tag_is_empty_without_overrides_and_tells_settings_apart():
    assert knob_tag({}) == ""
    a, b = knob_tag({"loss.tau": 0.1}), knob_tag({"loss.tau": 0.05})
    assert a.startswith("-") and len(a) == 9 and a != b
    assert knob_tag({"T": 3, "loss.tau": 0.1}) == knob_tag({"loss.tau": 0.1, "T": 3})  # order-free


def test_changed_fields_reaches_nested_sections():
    base = MetricTrainConfig()
    new = MetricTrainConfig(T=3, loss=STCCLOptions(tau=0.1))
    assert changed_fields(base, new) == {"T": 3, "loss.tau": 0.1}
    assert changed_fields(base, base) == {}


def test_synth_knobs_tag_the_data_folder_only_when_the_data_changes():
    params, paths = load_params(SMOKE)
    same, same_paths, diff = with_synth_knobs(params, paths, preset=params.preset, identities=params.synth.identities)
    assert diff == {} and same_paths.data_root == paths.data_root
    new, new_paths, diff = with_synth_knobs(params, paths, emotion_timing=False, noise_std=0.0)
    assert diff == {"emotion_timing": False, "noise_std": 0.0}
    assert new_paths.data_root == Path(f"{paths.data_root}{knob_tag(diff)}")
    assert new.data_root == str(new_paths.data_root)
    cfg = synth_config(new)
    assert cfg.emotion_timing is False and cfg.noise_std == 0.0 and cfg.n_identities == params.synth.identities
    _, _, diff = with_synth_knobs(params, paths, preset="control")
    assert "alignment" in diff and "emotion_on_mouth" in diff   # the control preset's own settings
    with pytest.raises(Exception, match="unknown synth knob"):
        with_synth_knobs(params, paths, colour="blue")


def test_spfem_suffix_moves_stccl_runs_but_not_the_baseline():
    p = Paths("s", Path("p.yaml"), Path("runs/s"), Path("rep/s"), Path("data"), spfem_suffix="-abc")
    assert p.spfem_run("vd", 0) == Path("runs/s/spfem_vd_s0-abc")
    assert p.spfem_run("baseline", 0) == Path("runs/s/spfem_baseline_s0")
    assert Paths("s", Path("p.yaml"), Path("runs/s"), Path("rep/s"), Path("data")).spfem_run("cm", 1) == \
        Path("runs/s/spfem_cm_s1")


# ---------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = MetricNet(MetricNetConfig(arch="iresnet_tiny")).eval()
    opts = STCCLOptions(spatial_samples=(8, 4, 4, 4), temporal_factor=2)
    clip = torch.rand(3, 3, 64, 64)
    item = {"emotional": clip, "neutral": clip.clone()}   # identical clips: every positive is exact
    fa, fb = teach.stage_features(net, item)
    samples = sample_positions([tuple(f.shape[-2:]) for f in fa], opts.spatial_samples, opts.temporal_factor,
                               opts.central, generator=torch.Generator().manual_seed(0))
    return net, opts, fa, fb, samples


def test_stage_shapes_counts_the_vectors_of_each_correlation(tiny):
    net, opts, fa, fb, samples = tiny
    df = teach.stage_shapes(fa, samples, T=3)
    assert list(df["stage"]) == [1, 2, 3, 4]
    first = df.iloc[0]
    S, N = samples[0].anchors.numel(), samples[0].temporal.numel()
    assert first["anchors S"] == S and first["spatial VD queries / frame (8 S)"] == 8 * S
    assert first["temporal VD queries / clip (T(T-1)/2 N)"] == 3 * N
    assert first["feature map (T, C, H, W)"] == str(tuple(fa[0].shape))


def test_patchnce_table_shows_each_loss_beside_log_q(tiny):
    net, opts, fa, fb, samples = tiny
    df = teach.patchnce_table(net, opts, fa, fb, samples, T=3)
    assert set(df["term"]) == {"scc", "tcc"} and set(df["variant"]) == {"vd", "cm"}
    assert all(math.isclose(c, math.log(q)) for c, q in zip(df["chance log Q"], df["Q"]))
    assert (df["cos positive"] > 0.999).all()          # A == B
    assert (df["PatchNCE"] < df["chance log Q"]).all()  # a perfect positive beats chance


def test_anchor_vd_gives_eight_neighbours_with_their_rank(tiny):
    net, opts, fa, fb, samples = tiny
    df = teach.anchor_vd(net, opts, fa, fb, samples, stage=1)
    assert len(df) == 8 and df["rank of positive"].between(1, int(df["of Q"].iloc[0])).all()
    assert df["h"].between(0.5, 1.0).all() and set(df["weight w"]) <= {1.0} | set(df["weight w"][df["h"] > opts.theta])
    assert (df["cos with positive"] > 0.999).all() and (df["rank of positive"] == 1).all()


def test_toy_shows_that_only_the_mismatched_control_separates_layout_from_speech():
    df = teach.toy_measures({"layout": (1.0, 0.0), "speech": (0.0, 1.0)}).set_index(["case", "measure"])
    for measure in ("per_query", "official"):
        layout, speech = df.loc[("layout", measure)], df.loc[("speech", measure)]
        assert layout["pos"] > 0.8 and abs(layout["neg"]) < 0.1 and abs(layout["gap"]) < 0.05
        assert speech["pos"] > 0.8 and speech["gap"] > 0.8


# ---------------------------------------------------------------------------
# Loss against chance and the "what this shows" text
# ---------------------------------------------------------------------------

def test_loss_vs_chance_reads_first_and_last_logged_values():
    recs = [{"step": 10, "scc_vd_ce": 5.0, "scc_vd_chance": 4.0, "loss": 1.0},
            {"step": 20, "scc_vd_ce": 3.0, "scc_vd_chance": 4.0, "loss": 0.5}]
    df = teach.loss_vs_chance(recs)
    assert df.to_dict("records") == [{"term": "scc_vd", "first_step": 10, "first": 5.0, "last_step": 20,
                                      "last": 3.0, "chance": 4.0, "ratio": 0.75}]


def _controls(gap: float) -> pd.DataFrame:
    row = dict(when="after", measure="official", variant="vd", kind="spatial", pos=0.9, pos_sd=0.01, neg=0.2,
               neg_sd=0.01, pos_mismatched=0.9 - gap, pos_mismatched_sd=0.01, gap=gap, gap_sd=0.01,
               paper_pos=0.96, paper_neg=0.01)
    return pd.DataFrame([row, {**row, "when": "before", "paper_pos": float("nan")}])


def test_metric_takeaways_give_the_gap_verdict_from_the_numbers():
    losses = pd.DataFrame([{"term": "scc_vd", "first_step": 10, "first": 5.0, "last_step": 20, "last": 3.0,
                            "chance": 4.0, "ratio": 0.75}])
    low = teach.metric_takeaways(losses, _controls(0.02), target_gap=0.3)
    assert "below chance" in low and "gap 0.020" in low and "none of the 1" in low and "0.90 vs 0.96" in low
    high = teach.metric_takeaways(losses, _controls(0.5), target_gap=0.3)
    assert "1 of 1 (measure, variant, kind) reach the gap target" in high and "met" in high


def test_correlation_takeaways_put_each_positive_beside_its_control():
    example = pd.DataFrame([{"term": "scc", "variant": "vd", "stage": 1, "PatchNCE": 2.0, "chance log Q": 3.0,
                             "cos positive": 0.8, "cos negatives": 0.3}])
    entry = {"pos": 0.75, "pos_sd": 0.01, "pos_mismatched": 0.74, "pos_mismatched_sd": 0.01, "gap": 0.01,
             "gap_sd": 0.01, "neg": 0.3}
    text = teach.correlation_takeaways(example, {"per_query": {"vd": {"spatial": entry}}})
    assert "PatchNCE 2.00" in text and "chance 3.00" in text
    assert "matched 0.750" in text and "mismatched-pair control 0.740" in text
    assert "0.48" in text  # the paper's 'before' number, from figures.PAPER_CONTROLS


def test_data_and_ablation_takeaways():
    summary = {"actors": 5, "test_actors": ["S004", "S005"], "sentences": 2, "emotions": 7, "pairs": 60,
               "frames": 100, "size": 64, "dtw_mean_abs_frame_error": 1.5, "no_alignment_mean_abs_frame_error": 3.0,
               "linear_stretch_mean_abs_frame_error": 2.0, "dtw_max_pair_error": 9.0}
    text = teach.data_takeaways(summary, {"emotion_timing": False, "emotion_on_mouth": True, "noise_std": 0.0},
                                "data/x")
    assert "removes 50 %" in text and "share the exact phoneme timing" in text and "another sentence" in text
    df = pd.DataFrame([{"run": "default", "factor": "default", "level": "-", "mouth_l1": 0.10},
                       {"run": "tau", "factor": "tau", "level": "0.05", "mouth_l1": 0.13},
                       {"run": "cm", "factor": "variant", "level": "CM", "mouth_l1": 0.101}])
    text = teach.ablation_takeaways(df, seed_sd=0.005)
    assert "tau = 0.05: +0.0300" in text and "twice that: tau = 0.05." in text
    assert "one seed" in teach.ablation_takeaways(df, seed_sd=None)


def test_plugin_table_scores_candidates_against_the_input_with_a_weighted_chance_level():
    torch.manual_seed(0)
    loss = STCCLLoss(MetricNet(MetricNetConfig(arch="iresnet_tiny")),
                     STCCLOptions(variant="vd", lambda_S=1.0, lambda_T=2.0, spatial_samples=(8, 4, 4, 4),
                                  temporal_factor=2))
    x = torch.rand(3, 3, 64, 64)
    df = teach.plugin_table(loss, x, {"x itself": x, "noise": torch.rand(3, 3, 64, 64)})
    total = df[df["term"] == "total (g_stccl)"].set_index("candidate")
    parts = df[df["term"] != "total (g_stccl)"].set_index(["candidate", "term"])
    expect = parts.loc[("x itself", "scc_vd"), "chance"] + 2.0 * parts.loc[("x itself", "tcc_vd"), "chance"]
    assert math.isclose(total.loc["x itself", "chance"], expect)
    assert total.loc["x itself", "PatchNCE"] < total.loc["noise", "PatchNCE"]


def test_spfem_takeaways_compare_with_the_baseline_and_chance(tmp_path):
    table = pd.DataFrame([
        {"variant": "baseline", "mouth_l1_mean": 0.05, "mouth_l1_std": float("nan"), "emotion_acc_mean": 0.3,
         "csim_mean": 0.99},
        {"variant": "vd", "mouth_l1_mean": 0.04, "mouth_l1_std": float("nan"), "emotion_acc_mean": 0.3,
         "csim_mean": 0.99},
        {"variant": "copy", "mouth_l1_mean": 0.03, "mouth_l1_std": float("nan"), "emotion_acc_mean": 0.1,
         "csim_mean": 1.0}])
    for v in ("baseline", "vd"):
        (tmp_path / v).mkdir()
        (tmp_path / v / "metrics.jsonl").write_text('{"step": 5, "g_cls": 2.5, "g_stccl": 3.0}\n')
    losses = teach.spfem_loss_table({("baseline", 0): tmp_path / "baseline", ("vd", 0): tmp_path / "vd"},
                                    {"vd": 10.0}, n_emotions=7)
    assert math.isclose(losses["g_cls_chance"].iloc[0], math.log(7))
    example = pd.DataFrame([
        {"candidate": c, "term": "total (g_stccl)", "PatchNCE": v, "cross-entropy": float("nan"), "chance": 10.0}
        for c, v in (("x itself", 1.0), ("same sentence, other emotion", 9.0), ("other sentence (mismatched)", 11.0))])
    text = teach.spfem_takeaways(table, losses, {"vd": example})
    assert "-20.0 % against the baseline" in text and "one seed: no SD" in text
    assert "g_stccl 3.00 against chance 10.00 (below chance)" in text and "g_cls 2.50 against chance 1.95" in text
    assert "below chance and below the mismatched sentence" in text and "copy of the input" in text


def test_data_takeaways_on_frame_aligned_renditions():
    summary = {"actors": 2, "test_actors": ["S002"], "sentences": 1, "emotions": 7, "pairs": 6, "frames": 10,
               "size": 64, "dtw_mean_abs_frame_error": 0.1, "no_alignment_mean_abs_frame_error": 0.0}
    text = teach.data_takeaways(summary, {"emotion_timing": False}, "d")
    assert "nan" not in text and "frame-aligned already" in text and "window at least 1 s away" in text


def test_another_data_root_gets_run_and_report_folders_of_its_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # notebook_context creates the run folder
    _, paths = load_params(SMOKE)
    _, same = notebook_context(str(SMOKE), str(paths.data_root))
    assert same.run_dir == paths.run_dir and same.data_root == paths.data_root
    _, other = notebook_context(str(SMOKE), f"{paths.data_root}-abc")
    assert other.data_root == Path(f"{paths.data_root}-abc")
    assert other.run_dir != paths.run_dir and other.run_dir.name.startswith(paths.run_dir.name + "-")
    assert other.report_dir.name.startswith(paths.report_dir.name + "-")
