"""PyAV video I/O: round trip with audio, panel splitting, clear errors on broken files."""

from pathlib import Path

import numpy as np
import pytest

from stccl.io import StcclError
from stccl.real.video import probe, read_audio, read_frames, read_wav, split_panel, write_video, write_wav

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_clips"
CLIP = REAL / "neutral_034_1.mp4"
needs_real = pytest.mark.skipif(not CLIP.is_file(), reason=f"real clips not found at {REAL}")


def _moving_square(n=12, h=64, w=96):
    frames = np.full((n, h, w, 3), 40, np.uint8)
    for i in range(n):
        frames[i, 10:30, 5 + 5 * i: 25 + 5 * i] = (220, 60, 30)
    return frames


def test_write_read_roundtrip_keeps_frames_fps_and_audio(tmp_path):
    frames = _moving_square()
    rate = 16000
    t = np.arange(int(rate * len(frames) / 25)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = write_video(tmp_path / "a.mp4", frames, 25, audio=tone, audio_rate=rate)
    info = probe(path)
    assert (info.fps, info.num_frames, info.width, info.height) == (25.0, 12, 96, 64)
    assert info.has_audio and info.audio_rate == rate
    back, fps = read_frames(path)
    assert back.shape == frames.shape and fps == 25.0
    assert np.abs(back.astype(int) - frames).mean() < 4  # lossy H.264, but the same picture
    # the square moved: frame order survived
    assert np.argmax(back[-1, 20, :, 0]) > np.argmax(back[0, 20, :, 0])
    samples, r = read_audio(path)
    assert r == rate and abs(len(samples) - len(tone)) < 0.1 * rate  # AAC adds priming samples
    spec = np.abs(np.fft.rfft(samples[: len(tone)]))
    assert abs(np.argmax(spec) * rate / len(tone) - 440) < 5

    some, _ = read_frames(path, indices=[0, 5, 11])
    assert some.shape[0] == 3 and np.abs(some[1].astype(int) - back[5]).max() == 0
    first, _ = read_frames(path, max_frames=4)
    assert first.shape[0] == 4
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_wav_roundtrip(tmp_path):
    x = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    write_wav(tmp_path / "x.wav", x, 8000)
    y, r = read_wav(tmp_path / "x.wav")
    assert r == 8000 and np.abs(y - x).max() < 1e-3


@needs_real
def test_real_clip_panels():
    frames, fps = read_frames(CLIP, max_frames=3)
    assert frames.shape == (3, 256, 1320, 3) and fps == 25.0
    panels = [split_panel(frames, k) for k in range(5)]
    assert all(p.shape == (3, 256, 256, 3) for p in panels)
    assert np.array_equal(panels[4], frames[:, :, 1064:1320])
    gap = frames[:, :, 256:266].astype(float)
    assert gap.mean() > 200  # the white separator is not part of any panel
    with pytest.raises(StcclError, match="panel 5"):
        split_panel(frames, 5)
    assert read_audio(CLIP)[1] == 48000


def test_not_a_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    with pytest.raises(StcclError, match="notes.mp4: not a readable video"):
        read_frames(bad)
    with pytest.raises(StcclError, match="video not found: .*missing.mp4"):
        probe(tmp_path / "missing.mp4")


@needs_real
def test_truncated_real_mp4_is_a_clear_error(tmp_path):
    data = CLIP.read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])  # index (moov) at the end: FFmpeg cannot open it
    with pytest.raises(StcclError, match="half.mp4"):
        read_frames(cut)


def test_truncated_streamable_mp4_is_reported_as_truncated(tmp_path):
    # With the index at the front the file still opens; the missing frames must not pass silently.
    path = write_video(tmp_path / "fs.mp4", _moving_square(n=30), 25, faststart=True)
    data = path.read_bytes()
    cut = tmp_path / "fs_cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(StcclError, match="fs_cut.mp4: truncated"):
        read_frames(cut)
