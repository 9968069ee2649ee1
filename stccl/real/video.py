"""Video I/O with PyAV: frames, frame rate and audio in, the same out.

Every decoding failure (missing file, not a video, truncated mp4) becomes a
StcclError that names the file, so a batch job over thousands of MEAD clips
says which one is broken instead of dying inside FFmpeg. A truncated file is
an error, not a warning: frames silently missing from the end of a clip would
shift every DTW pair that uses it.

The shipped real clips are side-by-side videos (five 256x256 panels with 10 px
gaps); `split_panel` cuts one panel out of a (N, H, W, 3) frame stack.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from stccl.io import StcclError, atomic_path


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    num_frames: int  # declared by the container (0 when it does not say)
    width: int
    height: int
    has_audio: bool
    audio_rate: int | None


def _open(path: str | Path):
    """Open a media file for reading, or raise StcclError naming it."""
    import av

    path = Path(path)
    if not path.is_file():
        raise StcclError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise StcclError(f"{path}: not a readable video ({exc.__class__.__name__}: {exc}); "
                         "check that the file is a complete mp4/avi/mov") from None
    if not container.streams.video:
        container.close()
        raise StcclError(f"{path}: contains no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, size, declared frame count and audio presence of a video."""
    with _open(path) as container:
        v = container.streams.video[0]
        a = container.streams.audio[0] if container.streams.audio else None
        fps = float(v.average_rate or v.guessed_rate or 25)
        return VideoInfo(str(path), fps, int(v.frames or 0), int(v.codec_context.width),
                         int(v.codec_context.height), a is not None, int(a.rate) if a is not None else None)


def read_frames(path: str | Path, indices: np.ndarray | list[int] | None = None,
                max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video into (N, H, W, 3) uint8 RGB frames and its frame rate.

    `indices` keeps only those frame numbers (decoding still walks the whole
    stream, which is cheap next to the face models); `max_frames` stops early.
    A stream that ends before the frame count its header declares, or that
    fails mid-way, is reported as truncated.
    """
    import av

    keep = None if indices is None else set(int(i) for i in indices)
    frames: list[np.ndarray] = []
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        declared = int(stream.frames or 0)
        n = 0
        try:
            for frame in container.decode(stream):
                if keep is None or n in keep:
                    frames.append(frame.to_ndarray(format="rgb24"))
                n += 1
                if max_frames is not None and n >= max_frames:
                    break
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise StcclError(f"{path}: truncated or corrupt video: decoding failed after {n} frames "
                             f"({exc.__class__.__name__}: {exc}); re-export or re-download it") from None
    stopped_early = max_frames is not None and n >= max_frames
    # A few containers round the declared count; more than one missing frame is a cut file.
    if not stopped_early and declared and n < declared - 1:
        raise StcclError(f"{path}: truncated video: header declares {declared} frames but only {n} "
                         "could be decoded; re-export or re-download it")
    if n == 0:
        raise StcclError(f"{path}: video has no decodable frames")
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8), fps
    return np.stack(frames), fps  # (N, H, W, 3)


def read_audio(path: str | Path) -> tuple[np.ndarray, int] | None:
    """Mono float32 samples in [-1, 1] and their rate, or None when the video has no audio."""
    import av

    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = int(stream.rate)
        # Resample to packed mono float so every codec/layout gives the same array.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise StcclError(f"{path}: truncated or corrupt audio stream ({exc}); "
                             "re-export or re-download it") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return samples.astype(np.float32), rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM mono WAV, written atomically."""
    pcm = (np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(int(rate))
            wav.writeframes(pcm.tobytes())
    return Path(path)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples of a WAV written by `write_wav` (or any 16-bit PCM WAV)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise StcclError(f"{path}: not a readable WAV file ({exc})") from None
    if width != 2:
        raise StcclError(f"{path}: expected 16-bit PCM WAV, got {8 * width}-bit")
    samples = np.frombuffer(data, "<i2").astype(np.float32) / 32767.0
    return samples.reshape(-1, channels).mean(1), rate


def write_video(path: str | Path, frames: np.ndarray, fps: float,
                audio: np.ndarray | None = None, audio_rate: int | None = None,
                faststart: bool = False) -> Path:
    """Encode (N, H, W, 3) uint8 frames as H.264 mp4 (+ AAC mono audio), atomically.

    `faststart` puts the index at the front of the file (streamable mp4); the
    tests use it to make a truncated file that still opens.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    n, h, w, _ = frames.shape
    options = {"movflags": "faststart"} if faststart else {}
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4", options=options) as container:
            vs = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            vs.width, vs.height = w + w % 2, h + h % 2  # yuv420p needs even sizes
            vs.pix_fmt = "yuv420p"
            vs.options = {"crf": "18", "preset": "veryfast"}
            as_ = None
            if audio is not None:
                as_ = container.add_stream("aac", rate=int(audio_rate))
                as_.layout = "mono"
            for img in frames:
                if (vs.width, vs.height) != (w, h):
                    img = np.pad(img, ((0, vs.height - h), (0, vs.width - w), (0, 0)), mode="edge")
                container.mux(vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")))
            container.mux(vs.encode(None))
            if as_ is not None:
                samples = np.asarray(audio, np.float32).reshape(1, -1)
                aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="flt", layout="mono")
                aframe.sample_rate = int(audio_rate)
                container.mux(as_.encode(aframe))
                container.mux(as_.encode(None))
    return Path(path)


def panel_box(index: int, panel_size: int, panel_gap: int) -> tuple[int, int]:
    """(x0, x1) column range of panel `index` in a side-by-side frame."""
    x0 = index * (panel_size + panel_gap)
    return x0, x0 + panel_size


def split_panel(frames: np.ndarray, index: int, panel_size: int = 256, panel_gap: int = 10,
                source: str | Path = "video") -> np.ndarray:
    """Cut panel `index` out of side-by-side frames: (N, H, W, 3) -> (N, H, panel_size, 3)."""
    x0, x1 = panel_box(index, panel_size, panel_gap)
    width = frames.shape[2]
    if index < 0 or x1 > width:
        raise StcclError(f"{source}: panel {index} (columns {x0}..{x1}) does not fit in frames "
                         f"{width} px wide; check panel_size/panel_gap or the panel number")
    return np.ascontiguousarray(frames[:, :, x0:x1])
