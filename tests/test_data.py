"""MEAD-layout loaders: alignment validation, windows, identity splits, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stccl import cli
from stccl.data.mead import (EMOTIONS, ClipWindowDataset, MeadLayout, PairedWindowDataset, load_alignment,
                        resolve_test_actors, split_actors, summarise_pairs)
from stccl.io import StcclError

REAL_ALIGN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mead" / "aligned_path36.json"

# actor -> emotion -> clip -> number of frames
CLIPS = {
    "A01": {"neutral": {1: 12, 2: 9}, "happy": {1: 10, 2: 11}, "sad": {1: 14}},
    "A02": {"neutral": {1: 11, 2: 8}, "happy": {1: 9, 2: 8}, "sad": {1: 12}},
    "B03": {"neutral": {1: 10, 2: 10}, "happy": {1: 12, 2: 9}, "sad": {1: 10}},
}


def _diag_path(n, m):
    """A monotone path from (0, 0) to (n-1, m-1), like a DTW path."""
    L = max(n, m)
    return [list(np.round(np.linspace(0, n - 1, L)).astype(int).tolist()),
            list(np.round(np.linspace(0, m - 1, L)).astype(int).tolist())]


@pytest.fixture(scope="module")
def mead(tmp_path_factory):
    root = tmp_path_factory.mktemp("mead")
    rng = np.random.default_rng(0)
    for actor, emos in CLIPS.items():
        for emo, clips in emos.items():
            for clip, n in clips.items():
                d = root / actor / "align_img" / emo / f"{clip:03d}"
                d.mkdir(parents=True)
                for f in range(n):
                    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(d / f"{f:06d}.jpg")
    align = {a: {e: {f"{c:03d}_{c:03d}": _diag_path(CLIPS[a]["neutral"][c], n) for c, n in CLIPS[a][e].items()}
                 for e in ("happy", "sad")} for a in CLIPS}
    path = root / "aligned_path.json"
    path.write_text(json.dumps(align))
    return root, path, align


def test_real_alignment_counts():
    s = summarise_pairs(REAL_ALIGN)
    assert s["actors"] == 36 and s["pairs"] == 648
    assert s["emotions"] == list(EMOTIONS[1:])
    assert s["test_actors"] == ["W021"]
    assert s["splits"]["test"] == {"actors": 1, "pairs": 18, "windows": s["splits"]["test"]["windows"]}
    assert s["splits"]["train"]["pairs"] == 630 and s["splits"]["train"]["actors"] == 35
    # windows = sum over pairs of (path length - T + 1)
    al = load_alignment(REAL_ALIGN)
    expected = sum(len(p[0]) - 4 for a in al if a != "W021" for e in al[a] for p in al[a][e].values())
    assert s["splits"]["train"]["windows"] == expected


def test_cli_pairs_real_file(capsys):
    assert cli.main(["pairs", "--align", str(REAL_ALIGN)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["actors"] == 36 and out["pairs"] == 648 and out["test_actors"] == ["W021"]


def test_paired_windows_shapes_and_content(mead):
    root, path, align = mead
    ds = PairedWindowDataset(root, path, T=5, split="all", test_actors=["B03"])
    n_windows = sum(len(p[0]) - 4 for a in align for e in align[a] for p in align[a][e].values())
    assert len(ds) == n_windows
    item = ds[0]
    assert item["neutral"].shape == (5, 3, 24, 20) and item["emotional"].shape == (5, 3, 24, 20)
    assert item["neutral"].dtype == torch.float32
    assert 0.0 <= float(item["neutral"].min()) and float(item["neutral"].max()) <= 1.0
    assert item["step"] == 2 and item["pair"] == "001_001"
    # The window's frames are the path's frames: compare with a direct decode.
    p = align[item["actor"]][item["emotion"]][item["pair"]]
    direct = MeadLayout(root).load_frames(item["actor"], item["emotion"], 1, p[1][0:5])
    assert torch.equal(direct, item["emotional"])
    last = ds[len(ds) - 1]
    assert last["step"] >= 2
    resized = PairedWindowDataset(root, path, T=3, split="train", test_actors=["B03"], size=16)[0]
    assert resized["neutral"].shape == (3, 3, 16, 16)


def test_split_disjoint_and_complete(mead):
    root, path, _ = mead
    train = PairedWindowDataset(root, path, split="train", test_actors="B03")
    test = PairedWindowDataset(root, path, split="test", test_actors="B03")
    every = PairedWindowDataset(root, path, split="all", test_actors="B03")
    tr, te = {p["actor"] for p in train.pairs}, {p["actor"] for p in test.pairs}
    assert tr == {"A01", "A02"} and te == {"B03"} and not tr & te
    assert len(train) + len(test) == len(every)
    assert split_actors(["x", "y", "z"], ["z"], "train") == ["x", "y"]


def test_clip_windows(mead):
    root, _, _ = mead
    ds = ClipWindowDataset(root, T=4, split="train", test_actors=["B03"], emotions=["neutral", "sad"])
    expected = sum(n - 3 for a in ("A01", "A02") for e in ("neutral", "sad") for n in CLIPS[a][e].values())
    assert len(ds) == expected
    item = ds[len(ds) - 1]
    assert item["frames"].shape == (4, 3, 24, 20)
    assert item["emotion"] == "sad" and item["emotion_idx"] == EMOTIONS.index("sad")
    strided = ClipWindowDataset(root, T=4, split="test", test_actors=["B03"], stride=3)
    assert all(strided[i]["start"] % 3 == 0 for i in range(len(strided)))


def test_resolve_test_actors(tmp_path):
    assert resolve_test_actors(None) == ["W021"]
    assert resolve_test_actors(tmp_path, "A, B") == ["A", "B"]
    (tmp_path / "meta.json").write_text(json.dumps({"test_actors": ["S007"]}))
    assert resolve_test_actors(tmp_path) == ["S007"]


# ----------------------------------------------------------------- bad input

def _write(tmp_path, obj, name="bad.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


@pytest.mark.parametrize("obj, needle", [
    ("{not json", "not valid JSON"),
    ([1, 2], "official MEAD alignment format"),
    ({"M003": []}, "M003: expected a non-empty mapping of emotions"),
    ({"M003": {"joy": {"001_001": [[0], [0]]}}}, "M003/joy: unknown emotion 'joy'"),
    ({"M003": {"happy": {"1_1": [[0], [0]]}}}, "M003/happy/1_1: pair key"),
    ({"M003": {"happy": {"001_001": [[0, 1, 2]]}}}, "two lists"),
    ({"M003": {"happy": {"001_001": [[0, 1, 2], [0, 1]]}}}, "M003/happy/001_001: index lists differ in length (3 vs 2)"),
    ({"M003": {"happy": {"001_001": [[0, -1], [0, 1]]}}}, "negative frame index"),
    ({"M003": {"happy": {"001_001": [[0, 2, 1], [0, 1, 2]]}}}, "non-decreasing"),
    ({"M003": {"happy": {"001_001": [[0, 1.5], [0, 1]]}}}, "must be integers"),
    ({"M003": {"happy": {"001_001": [[], []]}}}, "non-empty list"),
])
def test_bad_alignment_files(tmp_path, capsys, obj, needle):
    p = _write(tmp_path, obj)
    with pytest.raises(StcclError) as err:
        load_alignment(p)
    assert needle in str(err.value) and "bad.json" in str(err.value)
    assert cli.main(["pairs", "--align", str(p)]) == 2
    assert needle in capsys.readouterr().err


def test_missing_alignment_file(tmp_path, capsys):
    assert cli.main(["pairs", "--align", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_missing_frame_directory(mead, tmp_path, capsys):
    root, _, align = mead
    bad = json.loads(json.dumps(align))
    bad["A01"]["happy"]["009_009"] = [[0, 1], [0, 1]]
    p = _write(tmp_path, bad, "aligned_missing.json")
    with pytest.raises(StcclError, match=r"frame folder not found: .*A01/align_img/neutral/009"):
        PairedWindowDataset(root, p, split="all", test_actors=["B03"])
    assert cli.main(["pairs", "--root", str(root), "--align", str(p), "--test-actors", "B03", "--check-frames"]) == 2
    assert "align_img/neutral/009" in capsys.readouterr().err
    # Counting alone does not open frames.
    assert cli.main(["pairs", "--root", str(root), "--align", str(p), "--test-actors", "B03"]) == 0


def test_frame_index_past_end(mead, tmp_path, capsys):
    root, _, align = mead
    bad = json.loads(json.dumps(align))
    n = len(bad["A02"]["sad"]["001_001"][1])
    bad["A02"]["sad"]["001_001"][1] = list(range(n - 1)) + [99]
    p = _write(tmp_path, bad, "aligned_past.json")
    with pytest.raises(StcclError, match=r"frame index 99 is past the end of .*A02/align_img/sad/001 \(12 frames"):
        PairedWindowDataset(root, p, split="all", test_actors=["B03"])
    assert cli.main(["pairs", "--root", str(root), "--align", str(p), "--test-actors", "B03", "--check-frames"]) == 2
    assert "past the end" in capsys.readouterr().err
    with pytest.raises(StcclError, match="past the end"):
        MeadLayout(root).load_frames("A02", "sad", 1, [0, 12])


def test_unknown_emotion_name(mead):
    root, _, _ = mead
    with pytest.raises(StcclError, match="unknown emotion 'joy'"):
        ClipWindowDataset(root, emotions=["joy"], test_actors=["B03"])
    with pytest.raises(StcclError, match="unknown emotion 'joy'"):
        MeadLayout(root).clips("A01", "joy")


def test_empty_split(mead, capsys):
    root, path, _ = mead
    with pytest.raises(StcclError, match="split 'test' is empty"):
        PairedWindowDataset(root, path, split="test", test_actors=["nobody"])
    with pytest.raises(StcclError, match="split 'train' is empty"):
        PairedWindowDataset(root, path, split="train", test_actors=["A01", "A02", "B03"])
    with pytest.raises(StcclError, match="unknown split"):
        PairedWindowDataset(root, path, split="val")
    assert cli.main(["pairs", "--align", str(path), "--test-actors", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err
    assert cli.main(["pairs", "--align", str(path), "--test-actors", "A01,A02,B03"]) == 2
    assert "split 'train' is empty" in capsys.readouterr().err


def test_missing_root(tmp_path):
    with pytest.raises(StcclError, match="data root not found"):
        MeadLayout(tmp_path / "none")


def test_missing_single_frame(tmp_path):
    d = tmp_path / "A01" / "align_img" / "neutral" / "001"
    d.mkdir(parents=True)
    for f in (0, 1, 3):  # 000002.jpg is missing: 3 files, indices 0..2 look valid by count
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / f"{f:06d}.jpg")
    with pytest.raises(StcclError, match=r"001/000002.jpg (is missing|not found)"):
        MeadLayout(tmp_path).load_frames("A01", "neutral", 1, [1, 2])
