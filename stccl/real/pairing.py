"""DTW pairs of a prepared root: `stccl align` writes the official aligned_path.json format.

    stccl align --root PREPARED --out PREPARED/aligned_path.json [--pairs-from aligned_path36.json]

Renditions are paired on speech (MFCCs of the clip's wav, one vector per frame) when both clips kept
their audio, else on normalised mouth landmarks of the aligned frames (`landmark_mouth_features`, not
to be confused with the synthetic renderer's `stccl.data.synth.mouth_features`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from stccl.data.align import dtw_path
from stccl.io import StcclError, atomic_write_json, read_json, to_json
from stccl.real import dlib_faces
from stccl.real.prep import CLIP_DIR, EMOTIONS, clip_paths, interpolate_gaps
from stccl.real.video import read_wav


def _clips(root: Path, actor: str, emotion: str) -> list[int]:
    d = root / actor / "align_img" / emotion
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and CLIP_DIR.match(p.name))


def _num_frames(folder: Path) -> int:
    return sum(1 for name in os.listdir(folder) if name.endswith(".jpg"))


def audio_features(wav: Path, num_frames: int, n_mfcc: int = 13) -> np.ndarray:
    """MFCCs with exactly one vector per video frame: (num_frames, n_mfcc)."""
    import librosa

    y, sr = read_wav(wav)
    if len(y) < num_frames:
        raise StcclError(f"{wav}: audio too short ({len(y)} samples) for {num_frames} frames")
    hop = max(1, int(round(len(y) / num_frames)))  # one hop per video frame, whatever the fps
    n_fft = 2 ** int(math.ceil(math.log2(2 * hop)))
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, hop_length=hop, n_fft=n_fft)  # (n_mfcc, F)
    feats = mfcc.T[:num_frames]
    if len(feats) < num_frames:
        feats = np.concatenate([feats, np.repeat(feats[-1:], num_frames - len(feats), 0)])
    return feats


def landmark_mouth_features(folder: Path, num_frames: int) -> np.ndarray:
    """Normalised mouth landmarks of aligned frames: (num_frames, 40); gaps interpolated."""
    from PIL import Image

    frames = np.stack([np.asarray(Image.open(folder / f"{i:06d}.jpg").convert("RGB")) for i in range(num_frames)])
    res = dlib_faces.analyse_frames(frames)
    if not res["found"].any():
        raise StcclError(f"{folder}: no face found in the aligned frames; cannot pair on mouth landmarks")
    ref = dlib_faces.canonical_reference(res["landmarks"])
    lms = dlib_faces.normalise_landmarks(np.nan_to_num(res["landmarks"]), ref)[:, dlib_faces.MOUTH]  # (N, 20, 2)
    feats = lms.reshape(num_frames, -1)
    return interpolate_gaps(feats, res["found"])


def align_root(root: str | Path, out: str | Path, pairs_from: str | Path | None = None,
               features: str = "auto", window: int | None = None) -> dict:
    """DTW path for every (actor, emotion, neutral clip, emotional clip) pair under `root`.

    Pairs: with `pairs_from` (e.g. the official aligned_path36.json) its
    "NNN_MMM" keys for each actor/emotion that exist under `root`; otherwise
    the same clip number in neutral and the emotion (MEAD's shared sentences).
    Writes the official format to `out` and, beside it, `<out>.sources.json`
    saying which features paired each clip.
    """
    from tqdm import tqdm

    root = Path(root)
    if not root.is_dir():
        raise StcclError(f"prepared root not found: {root}")
    if features not in ("auto", "audio", "landmarks"):
        raise StcclError(f"--features {features!r}: use auto, audio or landmarks")
    template = read_json(pairs_from, "pairs file") if pairs_from else None
    actors = sorted(p.name for p in root.iterdir() if (p / "align_img" / "neutral").is_dir())
    if not actors:
        raise StcclError(f"{root}: no actor with an align_img/neutral folder; run stccl prep-video/prep-mead first")
    jobs = []
    for actor in actors:
        neutral = set(_clips(root, actor, "neutral"))
        for emotion in EMOTIONS[1:]:
            emo = set(_clips(root, actor, emotion))
            if template is not None:
                keys = template.get(actor, {}).get(emotion, {})
                pairs = [tuple(int(x) for x in k.split("_")) for k in keys]
            else:
                pairs = [(c, c) for c in sorted(neutral & emo)]
            jobs += [(actor, emotion, n, m) for n, m in pairs if n in neutral and m in emo]
    if not jobs:
        raise StcclError(f"{root}: no neutral/emotional clip pairs found"
                         + (f" among the pairs listed in {pairs_from}" if pairs_from else
                            " (pairs need the same clip number in neutral and the emotion; or pass --pairs-from)"))

    cache: dict[tuple, tuple[np.ndarray, str]] = {}

    def feats(actor: str, emotion: str, clip: int, want: str) -> np.ndarray:
        key = (actor, emotion, clip, want)
        if key not in cache:
            p = clip_paths(root, actor, emotion, clip)
            n = _num_frames(p["frames"])
            cache[key] = audio_features(p["audio"], n) if want == "audio" else landmark_mouth_features(p["frames"], n)
        return cache[key]

    result: dict = {}
    sources: dict = {}
    for actor, emotion, n, m in tqdm(jobs, desc="align", unit="pair"):
        pn, pm = clip_paths(root, actor, emotion="neutral", clip=n), clip_paths(root, actor, emotion, m)
        has_audio = pn["audio"].is_file() and pm["audio"].is_file()
        if features == "audio" and not has_audio:
            raise StcclError(f"--features audio but {pn['audio'] if not pn['audio'].is_file() else pm['audio']} "
                             "is missing; prepare with audio or use --features auto")
        want = "audio" if (features == "audio" or (features == "auto" and has_audio)) else "landmarks"
        idx_a, idx_b = dtw_path(feats(actor, "neutral", n, want), feats(actor, emotion, m, want), window=window)
        key = f"{n:03d}_{m:03d}"
        result.setdefault(actor, {}).setdefault(emotion, {})[key] = [idx_a, idx_b]
        sources.setdefault(actor, {}).setdefault(emotion, {})[key] = want
    atomic_write_json(out, result)
    atomic_write_json(Path(str(out) + ".sources.json"), sources)
    counts = {"pairs": len(jobs), "actors": len(result),
              "audio": sum(v == "audio" for a in sources.values() for e in a.values() for v in e.values())}
    counts["landmarks"] = counts["pairs"] - counts["audio"]
    return counts


# ----------------------------------------------------------------------------- CLI

def _cmd_align(args) -> int:
    counts = align_root(args.root, args.out, pairs_from=args.pairs_from, features=args.features, window=args.window)
    print(to_json(counts | {"out": str(args.out)}))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("align", help="DTW pairs neutral <-> emotional clips (official aligned_path.json format)")
    p.add_argument("--root", required=True, help="prepared root")
    p.add_argument("--out", required=True, help="output alignment file, e.g. aligned_path.json")
    p.add_argument("--pairs-from", default=None,
                   help="alignment file whose NNN_MMM pairs to reproduce (e.g. ../shared/data/mead/aligned_path36.json)")
    p.add_argument("--features", default="auto", choices=("auto", "audio", "landmarks"),
                   help="auto: MFCCs when both clips have audio, else mouth landmarks")
    p.add_argument("--window", type=int, default=None, help="Sakoe-Chiba band in frames (default: none)")
    p.set_defaults(func=_cmd_align)

