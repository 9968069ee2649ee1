"""Face preparation on the real clips: alignment, MEAD layout, DTW pairs, bad inputs."""

import json
from pathlib import Path

import numpy as np
import pytest

from stccl.cli import main
from stccl.io import StcclError

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_clips"
CLIP = REAL / "neutral_033_2.mp4"
pytestmark = pytest.mark.skipif(not (REAL / "manifest.csv").is_file(), reason=f"real clips not found at {REAL}")

N = 10  # frames per prepared clip: enough for windows of T=5, fast on one core


def _tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def source_frames():
    from stccl.real.video import read_frames, split_panel

    frames, _ = read_frames(CLIP, max_frames=N)
    return split_panel(frames, 0)  # (N, 256, 256, 3)


def test_face_found_and_aligned_to_template(source_frames):
    from stccl.real import dlib_faces as faces
    from stccl.real.prep import align_clip, template_px

    size = 224
    aligned, log = align_clip(source_frames, size=size)
    assert aligned.shape == (N, size, size, 3) and aligned.dtype == np.uint8
    assert log["no_face_frames"] == []
    # Detect again in the aligned crops: the 5 points must sit on the template.
    errs = []
    for img in aligned[::3]:
        rect = faces.detect(img)
        assert rect is not None
        errs.append(np.linalg.norm(faces.landmarks(img, rect, 5) - template_px(size), axis=-1).mean())
    assert np.mean(errs) < 0.03 * size, errs


def test_short_gap_is_interpolated_long_gap_and_no_face_fail(source_frames):
    from stccl.real.prep import align_clip

    frames = source_frames.copy()
    frames[4:6] = 128  # two blank frames: interpolated
    aligned, log = align_clip(frames, size=64, max_gap=3)
    assert log["no_face_frames"] == [4, 5] and log["gaps"] == [[4, 5]]
    # a finite crop box was carried over the gap (a NaN box would warp to black)
    assert aligned[4].min() == aligned[4].max() == 128
    full, _ = align_clip(source_frames, size=64, max_gap=3)
    assert np.abs(aligned[[0, 9]].astype(int) - full[[0, 9]]).mean() < 3  # frames with a face barely move
    with pytest.raises(StcclError, match="clipX.*no face for more than 1"):
        align_clip(frames, size=64, max_gap=1, source="clipX")
    with pytest.raises(StcclError, match="blank.mp4: no face found in any of its 10 frames"):
        align_clip(np.full_like(frames, 90), size=64, source="blank.mp4")


def _prep(root, *extra, video=CLIP, panel="source"):
    args = ["prep-video", "--video", str(video), "--out", str(root), "--max-frames", str(N), *extra]
    if panel is not None:
        args += ["--panel", panel]
    return main(args)


def test_prep_video_writes_the_mead_layout_the_loader_reads(tmp_path, capsys):
    from stccl.data.mead import MeadLayout, load_alignment, PairedWindowDataset
    from stccl.real.video import read_wav

    root = tmp_path / "prepared"
    assert _prep(root, "--actor", "M033", "--emotion", "neutral", "--clip", "1") == 0
    # the emotional rendition: the STCCL-VD panel of the same (speech-preserving) clip
    assert _prep(root, "--actor", "M033", "--emotion", "angry", "--clip", "1", panel="stccl_vd") == 0
    layout = MeadLayout(root)
    assert layout.actors() == ["M033"]
    assert layout.emotions("M033") == ["neutral", "angry"]
    assert layout.clips("M033", "neutral") == [1]
    assert layout.num_frames("M033", "neutral", 1) == N
    x = layout.load_frames("M033", "angry", 1, [0, N - 1])
    assert tuple(x.shape) == (2, 3, 224, 224) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    y, rate = read_wav(root / "M033" / "audio" / "neutral" / "001.wav")
    assert rate == 48000 and abs(len(y) / rate - N / 25) < 0.01
    log = json.loads((root / "M033" / "prep_log" / "neutral" / "001.json").read_text())
    assert log["num_frames"] == N and log["panel"] == 0 and log["no_face_frames"] == []

    # align: identical audio in both renditions -> exactly the diagonal
    out = tmp_path / "aligned_path.json"
    assert main(["align", "--root", str(root), "--out", str(out)]) == 0
    paths = load_alignment(out)
    idx_a, idx_b = paths["M033"]["angry"]["001_001"]
    assert list(idx_a) == list(range(N)) and list(idx_b) == list(range(N))
    assert json.loads(Path(str(out) + ".sources.json").read_text())["M033"]["angry"]["001_001"] == "audio"
    raw = json.loads(out.read_text())  # official format: {actor: {emotion: {"NNN_MMM": [[..], [..]]}}}
    assert set(raw) == {"M033"} and set(raw["M033"]) == {"angry"} and len(raw["M033"]["angry"]["001_001"]) == 2
    ds = PairedWindowDataset(root, out, T=5, split="all")
    assert len(ds) == N - 4
    item = ds[0]
    assert tuple(item["neutral"].shape) == (5, 3, 224, 224) and item["pair"] == "001_001"

    # without audio: pairs on mouth landmarks; a speech-preserving output stays near the diagonal
    out2 = tmp_path / "aligned_lm.json"
    assert main(["align", "--root", str(root), "--out", str(out2), "--features", "landmarks"]) == 0
    a, b = load_alignment(out2)["M033"]["angry"]["001_001"]
    assert a[0] == 0 and b[0] == 0 and a[-1] == N - 1 and b[-1] == N - 1
    assert np.abs(np.asarray(a) - np.asarray(b)).mean() <= 2.0

    # --pairs-from: keep only the pairs an official file lists (aligned_path36 has M033/angry/001_001)
    official = REAL.parent / "mead" / "aligned_path36.json"
    if official.is_file():
        out3 = tmp_path / "aligned_official_pairs.json"
        assert main(["align", "--root", str(root), "--out", str(out3), "--pairs-from", str(official)]) == 0
        assert list(load_alignment(out3)["M033"]["angry"]) == ["001_001"]


@pytest.fixture(scope="module")
def prepared_once(tmp_path_factory):
    root = tmp_path_factory.mktemp("once") / "prepared"
    assert _prep(root, "--actor", "M033", "--emotion", "neutral", "--clip", "1", "--no-audio") == 0
    return root


@pytest.mark.parametrize("kind", ["not_a_video", "truncated", "no_face"])
def test_bad_inputs_fail_clearly_and_keep_earlier_outputs(prepared_once, tmp_path, capsys, kind):
    import shutil

    from stccl.real.video import write_video

    root = tmp_path / "prepared"
    shutil.copytree(prepared_once, root)  # an earlier good clip
    before = _tree(root)
    if kind == "not_a_video":
        bad = tmp_path / "bad.mp4"
        bad.write_text("not a video")
    elif kind == "truncated":
        bad = tmp_path / "cut.mp4"
        data = CLIP.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad = tmp_path / "wall.mp4"
        write_video(bad, np.full((N, 64, 64, 3), 120, np.uint8), 25)
    capsys.readouterr()
    # overwrite the good clip with the bad one, and also try a new clip number
    for clip in ("1", "2"):
        code = _prep(root, "--actor", "M033", "--emotion", "neutral", "--clip", clip, "--overwrite", video=bad, panel=None)
        err = capsys.readouterr().err
        assert code == 2
        assert bad.name in err and "error" in err and len(err.strip().splitlines()) == 1
    assert _tree(root) == before  # nothing replaced, nothing half-written, no temp folder left


def test_existing_clip_needs_overwrite(prepared_once, capsys):
    root = prepared_once
    assert _prep(root, "--actor", "M033", "--emotion", "neutral", "--clip", "1", "--no-audio") == 2
    assert "--overwrite" in capsys.readouterr().err


def test_prep_mead_batch_skips_done_and_reports_failures(tmp_path, source_frames, capsys):
    from stccl.real.video import write_video

    raw = tmp_path / "raw"
    good = raw / "M001" / "video" / "front" / "neutral" / "level_1" / "001.mp4"
    write_video(good, source_frames[:6], 25)
    write_video(raw / "M001" / "video" / "front" / "angry" / "level_3" / "001.mp4", source_frames[2:8], 25)
    broken = raw / "M001" / "video" / "front" / "angry" / "level_3" / "002.mp4"
    broken.write_bytes(b"\x00" * 100)
    (raw / "M001" / "video" / "front" / "angry" / "level_1").mkdir(parents=True)  # other level: ignored
    out = tmp_path / "prepared"
    code = main(["prep-mead", "--raw", str(raw), "--out", str(out), "--size", "96"])
    err = capsys.readouterr().err
    assert code == 2 and "1 clip(s) failed" in err and "002.mp4" in err
    summary = json.loads((out / "prep_summary.json").read_text())
    assert (summary["prepared"], summary["skipped_done"], len(summary["failed"])) == (2, 0, 1)
    assert sorted(p.name for p in (out / "M001" / "align_img" / "angry").iterdir()) == ["001"]
    broken.unlink()
    assert main(["prep-mead", "--raw", str(raw), "--out", str(out), "--size", "96"]) == 0
    summary = json.loads((out / "prep_summary.json").read_text())
    assert (summary["prepared"], summary["skipped_done"]) == (0, 2)
