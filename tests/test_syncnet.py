"""SyncNet: public key layout, clear load errors, MFCC recipe, crop geometry, and an offset search
that must find a known shift. No real SyncNet weights exist here: every network below is random
or hand-built, so no number in this file is a lip-sync score."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from stccl.real import syncnet as sn
from stccl.io import StcclError
from stccl.spfem.scores import NOT_COMPUTED

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_clips"
CLIP = REAL / "neutral_033_1.mp4"
needs_real = pytest.mark.skipif(not CLIP.is_file(), reason=f"real clips not found at {REAL}")

# (key, shape) of the conv / linear weights in joonson/syncnet_python's syncnet_v2.model
PUBLIC_WEIGHTS = {
    "netcnnaud.0.weight": (64, 1, 3, 3), "netcnnaud.4.weight": (192, 64, 3, 3),
    "netcnnaud.8.weight": (384, 192, 3, 3), "netcnnaud.11.weight": (256, 384, 3, 3),
    "netcnnaud.14.weight": (256, 256, 3, 3), "netcnnaud.18.weight": (512, 256, 5, 4),
    "netfcaud.0.weight": (512, 512), "netfcaud.3.weight": (1024, 512),
    "netcnnlip.0.weight": (96, 3, 5, 7, 7), "netcnnlip.4.weight": (256, 96, 1, 5, 5),
    "netcnnlip.8.weight": (256, 256, 1, 3, 3), "netcnnlip.11.weight": (256, 256, 1, 3, 3),
    "netcnnlip.14.weight": (256, 256, 1, 3, 3), "netcnnlip.18.weight": (512, 256, 1, 6, 6),
    "netfclip.0.weight": (512, 512), "netfclip.3.weight": (1024, 512),
}
BN = {"netcnnaud": (1, 5, 9, 12, 15, 19), "netcnnlip": (1, 5, 9, 12, 15, 19), "netfcaud": (1,), "netfclip": (1,)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: the CPU is shared, and a second thread mostly spins on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_state(seed=0) -> dict:
    """A random-init state dict in the public format (no num_batches_tracked), BN stats perturbed."""
    torch.manual_seed(seed)
    net = sn.SyncNet()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("syncnet") / "random_syncnet_v2.model"
    torch.save(_random_state(), path)
    return path


def test_layout_matches_public_keys_and_shapes():
    state = sn.SyncNet().state_dict()
    for key, shape in PUBLIC_WEIGHTS.items():
        assert tuple(state[key].shape) == shape, key
    bn_keys = {f"{tower}.{i}.{p}" for tower, idx in BN.items() for i in idx
               for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    biases = {k.replace("weight", "bias") for k in PUBLIC_WEIGHTS}
    assert set(state) == set(PUBLIC_WEIGHTS) | biases | bn_keys
    net = sn.SyncNet().eval()
    with torch.no_grad():
        assert net.embed_audio(torch.randn(2, 1, 13, 20)).shape == (2, 1024)
        assert net.embed_video(torch.rand(1, 3, 5, 224, 224) * 255).shape == (1, 1024)


def test_state_dict_round_trips(weights, tmp_path):
    saved = torch.load(weights)
    net = sn.load_syncnet(weights)
    assert not net.training
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())
    # a file saved from a wrapper with a "__S__." prefix is the same network
    torch.save({"__S__." + k: v for k, v in saved.items()}, tmp_path / "prefixed.model")
    x = torch.randn(3, 1, 13, 20)
    with torch.no_grad():
        assert torch.equal(sn.load_syncnet(tmp_path / "prefixed.model").embed_audio(x), net.embed_audio(x))


def test_wrong_keys_shapes_or_files_give_clear_errors(weights, tmp_path):
    state = torch.load(weights)
    renamed = dict(state)
    renamed["netcnnaud.0.weights"] = renamed.pop("netcnnaud.0.weight")
    torch.save(renamed, tmp_path / "renamed.model")
    with pytest.raises(StcclError, match=r"renamed\.model.*missing keys: netcnnaud\.0\.weight\b.*"
                                         r"unexpected keys: netcnnaud\.0\.weights"):
        sn.load_syncnet(tmp_path / "renamed.model")
    reshaped = dict(state, **{"netfcaud.3.weight": torch.zeros(512, 512)})
    torch.save(reshaped, tmp_path / "reshaped.model")
    with pytest.raises(StcclError, match=r"reshaped\.model.*wrong shapes: netfcaud\.3\.weight \(512, 512\)"):
        sn.load_syncnet(tmp_path / "reshaped.model")
    (tmp_path / "junk.model").write_bytes(b"not a checkpoint")
    with pytest.raises(StcclError, match=r"junk\.model: not a readable PyTorch state dict"):
        sn.load_syncnet(tmp_path / "junk.model")
    with pytest.raises(StcclError, match=r"nowhere\.model"):
        sn.load_syncnet(tmp_path / "nowhere.model")


def test_no_weights_means_not_computed(monkeypatch, tmp_path):
    frames = np.zeros((10, 32, 32, 3), np.uint8)
    audio = np.zeros(16000, np.float32)
    monkeypatch.delenv(sn.ENV_VAR, raising=False)
    assert sn.lse(frames, audio, 25, 16000) == NOT_COMPUTED
    # asking for weights that are not there is an error, not a silent "not computed"
    monkeypatch.setenv(sn.ENV_VAR, str(tmp_path / "missing.model"))
    with pytest.raises(StcclError, match=f"missing.model.*{sn.ENV_VAR}"):
        sn.lse(frames, audio, 25, 16000)


def test_mfcc_matches_the_public_recipe():
    # reference rows from python_speech_features 0.6 mfcc(x, 16000) (the public pipeline's MFCC)
    t = np.arange(3200) / 16000
    x = 8000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 2500 * t * (1 + t))
    m = sn.mfcc_100hz(x)
    assert m.shape == (13, 19)
    ref0 = [20.7203, 0.0366, -5.3804, 24.1544, -29.9547, -70.368, -5.7386, 5.9841, -33.0793, 11.0336, 42.7989,
            1.8745, 3.5563]
    ref10 = [20.997, 2.9568, -12.612, 26.0786, -46.229, -42.3522, 5.3438, -39.8836, -8.9584, 38.5556, -1.8632,
             16.7092, 29.6538]
    np.testing.assert_allclose(m[:, 0], ref0, atol=2e-3)
    np.testing.assert_allclose(m[:, 10], ref10, atol=2e-3)


def test_crop_follows_the_public_geometry():
    # R = column, G = row: the crop's corners tell which frame pixels it took
    h = w = 256
    frame = np.zeros((1, h, w, 3), np.uint8)
    frame[..., 0] = np.arange(w)[None, None, :]
    frame[..., 1] = np.arange(h)[None, :, None]
    out = sn.crop_faces(frame, np.array([[100.0, 100.0, 200.0, 200.0]]), size=140)
    # half-size 50, c = 0.4: rows 100..240, columns 80..220; 140 px -> one output pixel per frame pixel
    assert out[0, 0, 0, 0] == 80 and out[0, -1, -1, 0] == 219
    assert out[0, 0, 0, 1] == 100 and out[0, -1, -1, 1] == 239
    # a box at the top-left corner: outside the frame is the public grey 110
    out = sn.crop_faces(frame, np.array([[0.0, 0.0, 50.0, 50.0]]), size=70)
    # half-size 25: rows 0..70, columns -10..60, so the first 10 output columns lie left of the frame
    assert (out[0, :, :10] == 110).all() and tuple(out[0, 40, 40, :2]) == (30, 40)


class TimingNet(nn.Module):
    """Hand-built 'SyncNet' whose embeddings are the 5 frame brightnesses and the audio log energy at
    the same 5 instants, both z-scored: they match exactly when audio and video are aligned."""

    def embed_video(self, x):  # (B, 3, 5, 224, 224)
        v = x.mean(dim=(1, 3, 4)).log()  # (B, 5)
        return (v - v.mean(1, keepdim=True)) / v.std(1, keepdim=True)

    def embed_audio(self, m):  # (B, 1, 13, 20); c0 = log energy, step 4f + 1 lies inside frame f
        a = m[:, 0, 0, 1::4]  # (B, 5)
        return (a - a.mean(1, keepdim=True)) / a.std(1, keepdim=True)


@pytest.mark.parametrize("delay", [3, -2, 7])
def test_offset_search_finds_a_known_shift(delay):
    """Audio delayed by `delay` frames must give offset -delay (the public sign convention)."""
    rng = np.random.default_rng(1)
    n, margin, rate = 60, 10, 48000
    level = rng.uniform(0.2, 1.0, n + 2 * margin)  # one loudness / brightness per frame
    frames = np.repeat(np.round(200 * level[margin:margin + n]), 16 * 16 * 3).reshape(n, 16, 16, 3).astype(np.uint8)
    amp = np.repeat(level[margin - delay:margin - delay + n], rate // 25)  # audio of frame f = video of f - delay
    audio = (0.2 * amp * rng.standard_normal(len(amp))).astype(np.float32)  # no clipping at 1
    res = sn.lse(frames, audio, 25, rate, net=TimingNet())
    assert res["offset"] == -delay
    assert res["windows"] == n - 5
    assert res["lse_c"] > 3 * res["lse_d"]  # the true shift stands out from the rest


def test_distances_match_their_definition():
    g = torch.Generator().manual_seed(0)
    v, a = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    d = sn.sync_distances(v, a, vshift=3)
    assert d.shape == (7, 7)
    for i in range(7):
        for j in range(7):
            k = i + j - 3
            other = a[k] if 0 <= k < 7 else torch.zeros(4)
            assert torch.isclose(d[i, j], (v[i] - other).norm(), atol=1e-4)
    s = sn.sync_scores(d, vshift=3)
    mean = d.mean(0)
    assert s["lse_d"] == pytest.approx(float(mean.min())) and s["offset"] == 3 - int(mean.argmin())
    assert s["lse_c"] == pytest.approx(float(mean.median() - mean.min()))


def test_boxes_interpolate_and_smooth_landmarks():
    # a face drifting right by 1 px per frame, landmarks on every 3rd frame, one of them missing
    base = np.random.default_rng(0).uniform(50, 150, (68, 2))
    idx = np.arange(0, 30, 3)
    lms = base[None] + np.stack([idx, np.zeros_like(idx)], -1)[:, None, :].astype(float)  # (10, 68, 2)
    lms[4] = np.nan
    boxes = sn.boxes_from_landmarks(lms, idx, 30)
    expect = np.concatenate([base.min(0), base.max(0)])[None] + np.stack([np.arange(30), np.zeros(30)] * 2, -1)
    # the last frames lie beyond the last landmark frame (27): held constant, then median filtered
    np.testing.assert_allclose(boxes[:28], expect[:28], atol=1e-9)
    assert sn.boxes_from_landmarks(np.full((3, 68, 2), np.nan), np.arange(3), 5) is None


@needs_real
def test_lse_on_a_real_clip_with_random_weights(weights, monkeypatch):
    from stccl.real.video import read_audio, read_frames, split_panel

    n = 38  # ~1.5 s: 33 windows
    frames, fps = read_frames(CLIP, max_frames=n)
    panel = split_panel(frames, 0)  # the source face, already a face crop: resized whole
    audio, rate = read_audio(CLIP)
    monkeypatch.setenv(sn.ENV_VAR, str(weights))  # found through the variable, as a user would
    res = sn.lse(sn.crop_faces(panel, None), audio[: int(rate * n / fps)], fps, rate)
    assert res["windows"] == n - 5 and -15 <= res["offset"] <= 15
    assert np.isfinite(res["lse_d"]) and res["lse_d"] > 0 and np.isfinite(res["lse_c"]) and res["lse_c"] >= 0
    with pytest.raises(StcclError, match="25 fps"):
        sn.lse(panel, audio, 30, rate)


@needs_real
def test_evaluate_clip_adds_lse_per_method(weights, tmp_path):
    from stccl.real.published_clips import evaluate_clip
    from stccl.real.video import read_audio, read_frames, split_panel, write_video

    n = 8
    frames, fps = read_frames(CLIP, max_frames=n)
    src, out_panel = split_panel(frames, 0), split_panel(frames, 4)
    gap = np.full((n, 256, 10, 3), 255, np.uint8)
    audio, rate = read_audio(CLIP)
    write_video(tmp_path / "probe.mp4", np.concatenate([src, gap, src, gap, src[::-1], gap, out_panel], axis=2),
                fps, audio[: int(rate * n / fps)], rate)
    row = pd.Series({"clip": "probe.mp4", "target_emotion": "happy", "panel_size": 256, "panel_gap": 10,
                     "panel_0": "source", "panel_1": "baseline", "panel_2": "stccl_cm", "panel_3": "stccl_vd"})
    # landmarks on 4 frames only: the LSE path must decode all 8 again and interpolate the boxes
    res = evaluate_clip(tmp_path / "probe.mp4", row, max_frames=4, embed_stride=4, syncnet=sn.load_syncnet(weights))
    df = pd.DataFrame(res["rows"]).set_index("method")
    assert np.isfinite(df[["lse_d", "lse_c", "source_lse_d", "source_lse_c"]].to_numpy()).all()
    # the baseline panel is a copy of the source: its score equals the source's up to re-encoding noise,
    # while the real published output is a different face crop
    assert df.loc["baseline", "lse_d"] == pytest.approx(df.loc["baseline", "source_lse_d"], rel=0.02)
    assert df.loc["stccl_vd", "lse_d"] != pytest.approx(df.loc["stccl_vd", "source_lse_d"], rel=0.02)


def test_table_shows_lse_only_when_computed():
    from stccl.real.published_clips import lse_note, markdown_table

    base = {"method": "baseline", "csim": 0.9, "csim_sd": 0.0, "fad": 0.1, "mouth_dist": 0.1, "mouth_dist_sd": 0.0,
            "mouth_open_r": 0.5, "mouth_open_r_sd": 0.0, "mouth_open_r_best_lag": 0.6, "median_best_lag_frames": 0,
            "mouth_open_r_vs_baseline": float("nan"), "clips": 1, "frames": 10}
    assert "LSE" not in markdown_table(pd.DataFrame([base]))
    lse = {"lse_d": 7.25, "lse_d_sd": 0.5, "lse_c": 1.5, "lse_c_sd": 0.25, "source_lse_d": 6.75, "source_lse_c": 2.0}
    table = markdown_table(pd.DataFrame([{**base, **lse}]))
    assert "LSE-D ↓" in table and "7.250 ± 0.500 | 1.500 ± 0.250 | 6.750 / 2.000 |" in table
    assert "not computed" in lse_note(None) and sn.ENV_VAR in lse_note(None)
    assert "not computed" not in lse_note(Path("syncnet_v2.model"))
