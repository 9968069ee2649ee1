"""Raw talking-face video -> aligned MEAD-layout frames and audio.

Commands:
  stccl prep-video  one video (or one panel of a side-by-side video) -> one clip
  stccl prep-mead   a MEAD-style raw tree {actor}/video/front/{emotion}/level_{k}/{clip}.mp4
(`stccl align`, the DTW pairs of a prepared root, is in `stccl.real.pairing`.)

What a prepared root holds, per clip (MEAD layout plus two side folders that
the data loader ignores):
  {root}/{actor}/align_img/{emotion}/{clip:03d}/{frame:06d}.jpg   aligned face crops
  {root}/{actor}/audio/{emotion}/{clip:03d}.wav                   the clip's audio (mono 16-bit), if any
  {root}/{actor}/prep_log/{emotion}/{clip:03d}.json               per-clip log; written last, so it
                                                                  marks the clip as complete
Audio lives beside the frames so that `stccl align` can pair renditions on
speech (MFCCs) rather than on lips; without audio it falls back to mouth
landmarks of the aligned frames.

A clip is built in a hidden temporary folder next to its final place and
renamed into place only when every frame is written, so a failure (bad
video, no face) never leaves a half-written clip or touches earlier ones.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from stccl.io import StcclError, atomic_write_json, to_json
from stccl.real import dlib_faces
from stccl.real import video as vio
from stccl.real.dlib_faces import TEMPLATE_5

# Same tuple as stccl.data.EMOTIONS (kept here so prep does not import torch).
EMOTIONS = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
CLIP_DIR = re.compile(r"^\d{3}$")
_RAW_CLIP = re.compile(r"^(\d+)\.mp4$")


# ----------------------------------------------------------------------------- alignment of one clip

def interpolate_gaps(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames without a face (edges hold the nearest value).

    values: (N, C) with rows of missing frames ignored.
    """
    t = np.arange(len(values))
    out = values.copy()
    for c in range(values.shape[1]):  # few columns; np.interp is vectorised over frames
        out[:, c] = np.interp(t, t[found], values[found, c])
    return out


def _gaps(found: np.ndarray) -> list[tuple[int, int]]:
    """[(first, last)] frame ranges where `found` is False."""
    missing = np.flatnonzero(~found)
    if not len(missing):
        return []
    breaks = np.flatnonzero(np.diff(missing) > 1)
    starts = np.r_[missing[0], missing[breaks + 1]]
    ends = np.r_[missing[breaks], missing[-1]]
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def smooth_params(params: np.ndarray, window: int) -> np.ndarray:
    """Savitzky-Golay smoothing of (N, C) per-frame crop parameters over time.

    Removes detector jitter (a shaking crop looks like head motion to the
    metric network) while following real head motion better than a moving
    average of the same length.
    """
    from scipy.signal import savgol_filter

    n = len(params)
    w = min(int(window), n if n % 2 else n - 1)
    if w < 3:
        return params
    return savgol_filter(params, w, polyorder=min(2, w - 1), axis=0, mode="interp")


def align_clip(frames: np.ndarray, size: int = 224, smooth: int = 9, max_gap: int = 12,
               source: str | Path = "video") -> tuple[np.ndarray, dict]:
    """5-point similarity alignment of a face video.

    frames: (N, H, W, 3) uint8 -> (N, size, size, 3) uint8 aligned crops, and
    a log {num_frames, no_face_frames, gaps}. The per-frame similarity
    (image -> template * size) is interpolated over no-face gaps of at most
    `max_gap` frames, smoothed over time, then applied with skimage's warp.
    """
    from skimage.transform import SimilarityTransform, warp

    n = len(frames)
    pts = np.full((n, 5, 2), np.nan)
    found = np.zeros(n, bool)
    for i, img in enumerate(frames):  # dlib: one image at a time
        img = np.ascontiguousarray(img)
        rect = dlib_faces.detect(img)
        if rect is not None:
            pts[i] = dlib_faces.landmarks(img, rect, points=5)
            found[i] = True
    if not found.any():
        raise StcclError(f"{source}: no face found in any of its {n} frames; "
                         "check that it is a frontal talking-face video (or the right --panel)")
    gaps = _gaps(found)
    long_gaps = [g for g in gaps if g[1] - g[0] + 1 > max_gap]
    if long_gaps:
        shown = ", ".join(f"{a}-{b}" for a, b in long_gaps[:5])
        raise StcclError(f"{source}: no face for more than {max_gap} consecutive frames (frames {shown}); "
                         "raise --max-gap to interpolate over them, or trim the video")
    a, b = dlib_faces.fit_similarity(pts[found], template_px(size))
    params = np.full((n, 4), np.nan)
    params[found] = np.stack([a.real, a.imag, b.real, b.imag], -1)
    params = smooth_params(interpolate_gaps(params, found), smooth)  # (N, 4)
    out = np.empty((n, size, size, 3), np.uint8)
    for i, img in enumerate(frames):
        m = dlib_faces.similarity_matrix(complex(params[i, 0], params[i, 1]), complex(params[i, 2], params[i, 3]))
        warped = warp(img, SimilarityTransform(matrix=m).inverse, output_shape=(size, size),
                      order=1, mode="edge", preserve_range=True)
        out[i] = np.clip(np.rint(warped), 0, 255).astype(np.uint8)
    log = {"num_frames": n, "no_face_frames": np.flatnonzero(~found).tolist(),
           "gaps": [list(g) for g in gaps], "interpolated_frames": int((~found).sum())}
    return out, log


def template_px(size: int) -> np.ndarray:
    """The 5-point template in pixels of a `size` crop: (5, 2)."""
    return TEMPLATE_5 * size


# ----------------------------------------------------------------------------- writing a clip

def clip_paths(root: str | Path, actor: str, emotion: str, clip: int) -> dict[str, Path]:
    root = Path(root)
    return {
        "frames": root / actor / "align_img" / emotion / f"{int(clip):03d}",
        "audio": root / actor / "audio" / emotion / f"{int(clip):03d}.wav",
        "log": root / actor / "prep_log" / emotion / f"{int(clip):03d}.json",
    }


def _write_jpegs(frames: np.ndarray, folder: Path, quality: int = 95) -> None:
    from PIL import Image

    for i, img in enumerate(frames):
        Image.fromarray(img).save(folder / f"{i:06d}.jpg", quality=quality)


def _install_dir(tmp: Path, final: Path) -> None:
    """Rename a finished temp folder into place, replacing an older version last."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def resolve_panel(video: Path, panel: str | None, manifest: str | Path | None,
                  panel_size: int | None, panel_gap: int | None) -> tuple[int | None, int, int]:
    """(panel index or None, panel size, gap) from the options and, if any, the manifest.

    `panel` may be a number or a role name ("source", "baseline", ...) looked
    up in the manifest row of this video (manifest.csv beside the video by
    default); the manifest also supplies panel_size/panel_gap.
    """
    if panel is None:
        return None, panel_size or 256, panel_gap if panel_gap is not None else 10
    man_path = Path(manifest) if manifest else video.parent / "manifest.csv"
    row = None
    if man_path.is_file():
        import pandas as pd

        df = pd.read_csv(man_path)
        if "clip" in df.columns:
            hit = df[df["clip"] == video.name]
            row = hit.iloc[0] if len(hit) else None
    elif manifest:
        raise StcclError(f"manifest not found: {man_path}")
    size = panel_size or (int(row["panel_size"]) if row is not None and "panel_size" in row else 256)
    gap = panel_gap if panel_gap is not None else (
        int(row["panel_gap"]) if row is not None and "panel_gap" in row else 10)
    if str(panel).isdigit():
        return int(panel), size, gap
    if row is None:
        raise StcclError(f"--panel {panel!r} is a role name but {video.name} has no row in {man_path}; "
                         "pass a panel number instead")
    roles = {str(row[c]): int(c.split("_")[1]) for c in row.index if re.fullmatch(r"panel_\d+", str(c))}
    if panel not in roles:
        raise StcclError(f"{man_path}: no panel called {panel!r} for {video.name} (have {sorted(roles)})")
    return roles[panel], size, gap


def prep_video(video: str | Path, out_root: str | Path, actor: str, emotion: str, clip: int,
               size: int = 224, panel: int | None = None, panel_size: int = 256, panel_gap: int = 10,
               smooth: int = 9, max_gap: int = 12, max_frames: int | None = None,
               audio: bool = True, overwrite: bool = False) -> dict:
    """Prepare one clip into the MEAD layout under `out_root`; returns its log."""
    t0 = time.perf_counter()
    video = Path(video)
    if emotion not in EMOTIONS:
        raise StcclError(f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", actor):
        raise StcclError(f"actor {actor!r}: use letters, digits, '_' or '-' (e.g. M003)")
    if not 0 <= int(clip) <= 999:
        raise StcclError(f"clip {clip}: must be 0..999 (written as 3 digits)")
    paths = clip_paths(out_root, actor, emotion, clip)
    if paths["frames"].exists() and not overwrite:
        raise StcclError(f"{paths['frames']} already exists; pass --overwrite to replace it")
    frames, fps = vio.read_frames(video, max_frames=max_frames)
    source = f"{video}" + (f" (panel {panel})" if panel is not None else "")
    if panel is not None:
        frames = vio.split_panel(frames, panel, panel_size, panel_gap, source=video)
    aligned, log = align_clip(frames, size=size, smooth=smooth, max_gap=max_gap, source=source)
    sound = vio.read_audio(video) if audio else None

    paths["frames"].parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{int(clip):03d}.tmp-", dir=paths["frames"].parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the installed clip should be readable like any folder
        _write_jpegs(aligned, tmp)
        _install_dir(tmp, paths["frames"])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    audio_path = None
    if sound is not None:
        samples, rate = sound
        if max_frames is not None:  # keep audio the same length as the frames kept
            samples = samples[: int(round(len(aligned) / fps * rate))]
        vio.write_wav(paths["audio"], samples, rate)
        audio_path = str(paths["audio"])
    elif paths["audio"].exists():
        paths["audio"].unlink()  # a stale wav from an older version of this clip
    log.update({"video": str(video), "panel": panel, "fps": fps, "size": size, "actor": actor,
                "emotion": emotion, "clip": int(clip), "smooth": smooth, "max_gap": max_gap,
                "audio": audio_path, "seconds": round(time.perf_counter() - t0, 3)})
    atomic_write_json(paths["log"], log)
    return log


# ----------------------------------------------------------------------------- batch over a raw MEAD tree

def find_raw_clips(raw_root: str | Path, level: int = 3, actors: list[str] | None = None,
                   emotions: list[str] | None = None) -> list[dict]:
    """Raw MEAD videos {actor}/video/front/{emotion}/level_{k}/{clip}.mp4.

    MEAD records neutral at level 1 only, the other emotions at levels 1-3:
    neutral clips come from level_1, emotional ones from level_{level}.
    """
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise StcclError(f"raw MEAD folder not found: {raw_root}")
    out = []
    for actor_dir in sorted(p for p in raw_root.iterdir() if (p / "video" / "front").is_dir()):
        if actors and actor_dir.name not in actors:
            continue
        for emotion in EMOTIONS:
            if emotions and emotion not in emotions:
                continue
            lvl = 1 if emotion == "neutral" else level
            folder = actor_dir / "video" / "front" / emotion / f"level_{lvl}"
            if not folder.is_dir():
                continue
            for f in sorted(folder.iterdir()):
                m = _RAW_CLIP.match(f.name)
                if m:
                    out.append({"video": f, "actor": actor_dir.name, "emotion": emotion, "clip": int(m.group(1))})
    if not out:
        raise StcclError(f"{raw_root}: no videos found at {{actor}}/video/front/{{emotion}}/level_{{k}}/NNN.mp4")
    return out


def prep_mead(raw_root: str | Path, out_root: str | Path, size: int = 224, level: int = 3,
              actors: list[str] | None = None, emotions: list[str] | None = None,
              smooth: int = 9, max_gap: int = 12, audio: bool = True) -> dict:
    """Prepare every raw clip not yet done (its prep_log exists); one failure does not stop the batch."""
    from tqdm import tqdm

    todo = find_raw_clips(raw_root, level, actors, emotions)
    done, skipped, failed = 0, 0, []
    for item in tqdm(todo, desc="prep-mead", unit="clip"):
        paths = clip_paths(out_root, item["actor"], item["emotion"], item["clip"])
        if paths["log"].is_file() and paths["frames"].is_dir():
            skipped += 1
            continue
        try:
            prep_video(item["video"], out_root, item["actor"], item["emotion"], item["clip"], size=size,
                       smooth=smooth, max_gap=max_gap, audio=audio, overwrite=True)
            done += 1
        except StcclError as exc:
            failed.append({"video": str(item["video"]), "error": str(exc)})
    summary = {"raw_root": str(raw_root), "level": level, "found": len(todo), "prepared": done,
               "skipped_done": skipped, "failed": failed}
    atomic_write_json(Path(out_root) / "prep_summary.json", summary)
    return summary


# ----------------------------------------------------------------------------- CLI

def _cmd_prep_video(args) -> int:
    video = Path(args.video)
    panel, psize, pgap = resolve_panel(video, args.panel, args.manifest, args.panel_size, args.panel_gap)
    log = prep_video(video, args.out, args.actor, args.emotion, args.clip, size=args.size, panel=panel,
                     panel_size=psize, panel_gap=pgap, smooth=args.smooth, max_gap=args.max_gap,
                     max_frames=args.max_frames, audio=not args.no_audio, overwrite=args.overwrite)
    short = {k: log[k] for k in ("video", "panel", "num_frames", "interpolated_frames", "audio", "seconds")}
    print(to_json(short))
    return 0


def _cmd_prep_mead(args) -> int:
    summary = prep_mead(args.raw, args.out, size=args.size, level=args.level, actors=args.actors,
                        emotions=args.emotions, smooth=args.smooth, max_gap=args.max_gap, audio=not args.no_audio)
    print(to_json({k: v for k, v in summary.items() if k != "failed"} | {"failed": len(summary["failed"])}))
    if summary["failed"]:
        first = summary["failed"][0]["error"]
        raise StcclError(f"{len(summary['failed'])} clip(s) failed (listed in "
                         f"{Path(args.out) / 'prep_summary.json'}); first: {first}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=int, default=224, help="side of the aligned crop in pixels (224 for the metric network)")
    p.add_argument("--smooth", type=int, default=9, help="Savitzky-Golay window (frames) for the crop parameters")
    p.add_argument("--max-gap", type=int, default=12, help="longest run of no-face frames to interpolate over")
    p.add_argument("--no-audio", action="store_true", help="do not keep the audio track as a wav")


def add_cli(sub) -> None:
    p = sub.add_parser("prep-video", help="align the face of one video into the MEAD layout")
    p.add_argument("--video", required=True)
    p.add_argument("--out", required=True, help="prepared root ({root}/{actor}/align_img/...)")
    p.add_argument("--actor", required=True)
    p.add_argument("--emotion", required=True, choices=EMOTIONS)
    p.add_argument("--clip", required=True, type=int)
    p.add_argument("--panel", default=None,
                   help="side-by-side video: panel number, or a role name from the manifest (e.g. source)")
    p.add_argument("--manifest", default=None, help="manifest.csv for --panel (default: beside the video)")
    p.add_argument("--panel-size", type=int, default=None)
    p.add_argument("--panel-gap", type=int, default=None)
    p.add_argument("--max-frames", type=int, default=None, help="use only the first N frames")
    p.add_argument("--overwrite", action="store_true", help="replace an existing clip")
    _common(p)
    p.set_defaults(func=_cmd_prep_video)

    p = sub.add_parser("prep-mead", help="prepare a raw MEAD tree {actor}/video/front/{emotion}/level_{k}/*.mp4")
    p.add_argument("--raw", required=True, help="raw MEAD root")
    p.add_argument("--out", required=True, help="prepared root")
    p.add_argument("--level", type=int, default=3, help="intensity level of the emotional clips (neutral: level_1)")
    p.add_argument("--actors", nargs="*", default=None)
    p.add_argument("--emotions", nargs="*", default=None, choices=EMOTIONS)
    _common(p)
    p.set_defaults(func=_cmd_prep_mead)
