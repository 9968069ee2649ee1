"""MEAD-layout loaders: alignment files, frame folders and paired windows.

The reference STCCL code reads face crops laid out as

    {root}/{actor}/align_img/{emotion}/{clip:03d}/{frame:06d}.jpg

plus an alignment file {actor: {emotion: {"NNN_MMM": [[neutral idx], [emo idx]]}}}
whose two index lists are a DTW path between neutral clip NNN and emotional
clip MMM of the same sentence. A training sample is a window of T consecutive
path steps taken from both renditions. This module reads that layout unchanged
(real MEAD and the synthetic data of `stccl synth` alike), validates the
alignment file with errors that name the file and the key, and splits by
identity (a named list of held-out actors).

CLI: `stccl pairs --root DIR --align FILE [--test-actors A,B] [--check-frames]`
prints one JSON line summarising actors, emotions, pairs and windows per split.

At about 530 lines this stays one module: the layout, the alignment file's
validation, the identity split and the three datasets built on them are one
contract (the reference code's layout) and are changed together.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from stccl.io import StcclError, read_json, to_json

EMOTIONS = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")
SPLITS = ("train", "test", "all")
MEAD_TEST_ACTORS = ("W021",)  # the reference code's held-out actor
DEFAULT_T = 5

_PAIR_RE = re.compile(r"^(\d{3})_(\d{3})$")
_CLIP_RE = re.compile(r"^\d{3}$")
_FRAME_RE = re.compile(r"^(\d{6})\.jpg$")


# ---------------------------------------------------------------------------
# Alignment file
# ---------------------------------------------------------------------------

def check_emotion(name: str, where: str = "emotion") -> str:
    """Return `name` if it is one of EMOTIONS, else a StcclError naming `where`."""
    if name not in EMOTIONS:
        raise StcclError(f"{where}: unknown emotion {name!r}; expected one of {list(EMOTIONS)}")
    return name


def parse_pair(key: str, where: str = "pair") -> tuple[int, int]:
    """'001_003' -> (1, 3): the neutral clip and the emotional clip."""
    m = _PAIR_RE.match(key) if isinstance(key, str) else None
    if not m:
        raise StcclError(f"{where}: pair key {key!r} is not of the form 'NNN_MMM' (neutral clip _ emotional clip)")
    return int(m.group(1)), int(m.group(2))


def _check_index_list(lst: Any, where: str) -> None:
    if not isinstance(lst, list) or not lst:
        raise StcclError(f"{where}: expected a non-empty list of frame indices")
    ok_type = all(isinstance(v, int) and not isinstance(v, bool) for v in lst)
    if not ok_type:
        bad = next(v for v in lst if not (isinstance(v, int) and not isinstance(v, bool)))
        raise StcclError(f"{where}: frame indices must be integers, found {bad!r}")
    arr = np.asarray(lst, dtype=np.int64)
    if arr.min() < 0:
        raise StcclError(f"{where}: negative frame index {int(arr.min())}")
    if np.any(np.diff(arr) < 0):
        i = int(np.argmax(np.diff(arr) < 0))
        raise StcclError(f"{where}: frame indices must be non-decreasing (a DTW path); "
                         f"step {i} -> {i + 1} goes {arr[i]} -> {arr[i + 1]}")


def validate_alignment(obj: Any, name: str = "alignment") -> dict[str, dict[str, dict[str, tuple[list[int], list[int]]]]]:
    """Check the official alignment format; return {actor: {emotion: {pair: (idx_n, idx_e)}}}.

    Every error names `name` and the key path, e.g.
    "aligned_path.json: M003/happy/001_001: index lists differ in length (120 vs 118)".
    """
    if not isinstance(obj, dict) or not obj:
        raise StcclError(f"{name}: expected a non-empty mapping {{actor: {{emotion: {{'NNN_MMM': [[...], [...]]}}}}}} "
                         f"(the official MEAD alignment format), got {type(obj).__name__}")
    out: dict[str, dict[str, dict[str, tuple[list[int], list[int]]]]] = {}
    for actor, emos in obj.items():
        if not isinstance(emos, dict) or not emos:
            raise StcclError(f"{name}: {actor}: expected a non-empty mapping of emotions, got {type(emos).__name__}")
        out[actor] = {}
        for emo, pairs in emos.items():
            check_emotion(emo, f"{name}: {actor}/{emo}")
            if not isinstance(pairs, dict) or not pairs:
                raise StcclError(f"{name}: {actor}/{emo}: expected a non-empty mapping of 'NNN_MMM' pairs, "
                                 f"got {type(pairs).__name__}")
            out[actor][emo] = {}
            for key, path in pairs.items():
                where = f"{name}: {actor}/{emo}/{key}"
                parse_pair(key, where)
                if not isinstance(path, list) or len(path) != 2:
                    raise StcclError(f"{where}: expected [[neutral indices], [emotion indices]] (two lists)")
                _check_index_list(path[0], f"{where} (neutral list)")
                _check_index_list(path[1], f"{where} (emotion list)")
                if len(path[0]) != len(path[1]):
                    raise StcclError(f"{where}: index lists differ in length ({len(path[0])} vs {len(path[1])})")
                out[actor][emo][key] = (list(path[0]), list(path[1]))
    return out


def load_alignment(path: str | os.PathLike) -> dict[str, dict[str, dict[str, tuple[list[int], list[int]]]]]:
    """Read and validate an alignment file in the official format (SPEC section 2)."""
    path = Path(path)
    return validate_alignment(read_json(path, "alignment file"), name=str(path))


# ---------------------------------------------------------------------------
# Actors and splits
# ---------------------------------------------------------------------------

def parse_actor_list(value: str | Sequence[str] | None) -> list[str] | None:
    """'A,B' or ['A', 'B'] -> ['A', 'B']; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in (s.strip() for s in value.split(",")) if v]
    return list(value)


def resolve_test_actors(root: str | os.PathLike | None, test_actors: str | Sequence[str] | None = None) -> list[str]:
    """Held-out actors: the given list, else meta.json's test_actors (synthetic data), else ['W021'] (MEAD)."""
    given = parse_actor_list(test_actors)
    if given is not None:
        return given
    if root is not None:
        meta_path = Path(root) / "meta.json"
        if meta_path.is_file():
            meta = read_json(meta_path, "synthetic-data meta file")
            if not isinstance(meta, dict) or not isinstance(meta.get("test_actors"), list):
                raise StcclError(f"{meta_path}: key 'test_actors' missing or not a list; "
                                 f"re-run `stccl synth` or pass --test-actors")
            return [str(a) for a in meta["test_actors"]]
    return list(MEAD_TEST_ACTORS)


def split_actors(actors: Iterable[str], test_actors: Sequence[str], split: str, where: str = "data") -> list[str]:
    """The actors of `split` ('train' | 'test' | 'all'); an empty split is an error."""
    if split not in SPLITS:
        raise StcclError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    actors = sorted(actors)
    test = set(test_actors)
    if split == "train":
        chosen = [a for a in actors if a not in test]
    elif split == "test":
        chosen = [a for a in actors if a in test]
    else:
        chosen = actors
    if not chosen:
        raise StcclError(f"{where}: split {split!r} is empty (test actors {sorted(test)}, "
                         f"{len(actors)} actors available: {actors[:8]}{'...' if len(actors) > 8 else ''}); "
                         f"pass --test-actors naming actors that exist, leaving at least one for training")
    return chosen


def window_count(path_len: int, T: int) -> int:
    """Windows of T consecutive path steps in a path of `path_len` steps."""
    return max(0, int(path_len) - int(T) + 1)


# ---------------------------------------------------------------------------
# Frame folders
# ---------------------------------------------------------------------------

def _read_frame(path: str) -> np.ndarray:
    """Decoded RGB frame (H, W, 3) uint8, cached by (path, modification time)."""
    try:
        mtime = os.stat(path).st_mtime_ns  # a re-rendered frame is decoded again, never served stale
    except FileNotFoundError:
        raise StcclError(f"frame not found: {path}; the clip folder is incomplete (re-extract or re-render it)") from None
    return _read_jpeg(path, mtime)


@functools.lru_cache(maxsize=1024)
def _read_jpeg(path: str, mtime_ns: int) -> np.ndarray:
    """Decoded RGB frame (H, W, 3) uint8; cached because windows overlap by T-1 frames."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise StcclError(f"frame not found: {path}") from None
    except OSError as exc:
        raise StcclError(f"{path}: cannot decode image ({exc}); re-extract the frame") from None
    arr.setflags(write=False)
    return arr


def to_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def frames_to_tensor(frames: np.ndarray, size: int | Sequence[int] | None = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, h, w) float in [0, 1], resized with antialiasing if asked."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)
    hw = to_size(size)
    if hw is not None and tuple(x.shape[-2:]) != hw:
        x = torch.nn.functional.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp_(0.0, 1.0)
    return x


class MeadLayout:
    """Read access to `{root}/{actor}/align_img/{emotion}/{clip:03d}/{frame:06d}.jpg`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise StcclError(f"data root not found: {self.root}; pass the folder that holds "
                             f"{{actor}}/align_img/{{emotion}}/{{clip}}/ (e.g. made by `stccl synth --out DIR`)")
        self._frame_counts: dict[Path, int] = {}

    def actors(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "align_img").is_dir())

    def emotion_dir(self, actor: str, emotion: str) -> Path:
        check_emotion(emotion, f"{self.root}/{actor}")
        return self.root / actor / "align_img" / emotion

    def emotions(self, actor: str) -> list[str]:
        base = self.root / actor / "align_img"
        if not base.is_dir():
            raise StcclError(f"actor folder not found: {base}")
        return [e for e in EMOTIONS if (base / e).is_dir()]

    def clips(self, actor: str, emotion: str) -> list[int]:
        d = self.emotion_dir(actor, emotion)
        if not d.is_dir():
            raise StcclError(f"emotion folder not found: {d}")
        return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and _CLIP_RE.match(p.name))

    def clip_dir(self, actor: str, emotion: str, clip: int) -> Path:
        return self.emotion_dir(actor, emotion) / f"{int(clip):03d}"

    def num_frames(self, actor: str, emotion: str, clip: int) -> int:
        """Frames 000000.jpg .. are counted once per clip folder; a missing folder is an error."""
        d = self.clip_dir(actor, emotion, clip)
        n = self._frame_counts.get(d)
        if n is None:
            if not d.is_dir():
                raise StcclError(f"frame folder not found: {d}; the alignment file names a clip that is not on disk "
                                 f"(check --root, or extract the frames of this clip)")
            present = sorted(int(name[:6]) for name in os.listdir(d) if _FRAME_RE.match(name))
            n = len(present)
            if n == 0:
                raise StcclError(f"frame folder has no NNNNNN.jpg frames: {d}")
            if present[-1] != n - 1:  # a gap: frame i would silently be another frame
                gap = next(i for i, f in enumerate(present) if f != i)
                raise StcclError(f"frame {d / f'{gap:06d}.jpg'} is missing ({n} frames numbered up to "
                                 f"{present[-1]:06d}); re-extract the frames of this clip")
            self._frame_counts[d] = n
        return n

    def frame_path(self, actor: str, emotion: str, clip: int, frame: int) -> Path:
        return self.clip_dir(actor, emotion, clip) / f"{int(frame):06d}.jpg"

    def check_indices(self, actor: str, emotion: str, clip: int, indices: Sequence[int] | np.ndarray) -> None:
        """Every index must name an existing frame of the clip; the error names the folder."""
        n = self.num_frames(actor, emotion, clip)
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.max() >= n or idx.min() < 0):
            bad = int(idx.max()) if idx.max() >= n else int(idx.min())
            raise StcclError(f"frame index {bad} is past the end of {self.clip_dir(actor, emotion, clip)} "
                             f"({n} frames, indices 0..{n - 1}); the alignment file does not match these frames")

    def load_frames_uint8(self, actor: str, emotion: str, clip: int, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 frames of one clip."""
        self.check_indices(actor, emotion, clip, indices)
        d = self.clip_dir(actor, emotion, clip)
        return np.stack([_read_frame(str(d / f"{int(i):06d}.jpg")) for i in indices])

    def load_frames(self, actor: str, emotion: str, clip: int, indices: Sequence[int] | np.ndarray,
                    size: int | Sequence[int] | None = None) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1]; `size` resizes (antialiased bilinear)."""
        return frames_to_tensor(self.load_frames_uint8(actor, emotion, clip, indices), size)


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------

def _check_T(T: int) -> int:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise StcclError(f"window length T must be a positive integer, got {T!r}")
    return T


class PairedWindowDataset(Dataset):
    """(neutral window, emotional window) of T consecutive DTW-path steps, split by identity.

    Every pair NNN_MMM of every actor in the split contributes its windows
    start = 0 .. L - T of its path of L steps; `step` is the window's centre
    step start + T // 2. Frames are checked against the alignment on
    construction (check_frames=True) so a mismatch fails before training.
    """

    def __init__(self, root: str | os.PathLike, align_path: str | os.PathLike, T: int = DEFAULT_T,
                 split: str = "train", test_actors: str | Sequence[str] | None = None,
                 size: int | Sequence[int] | None = None, check_frames: bool = True,
                 with_mismatched: bool = False):
        self.T = _check_T(T)
        self.with_mismatched = with_mismatched  # items also carry "mismatched" (see mismatched_neutral)
        self.size = to_size(size)
        self.layout = MeadLayout(root)
        self.align_path = Path(align_path)
        alignment = load_alignment(self.align_path)
        self.test_actors = resolve_test_actors(root, test_actors)
        self.actors = split_actors(alignment, self.test_actors, split, where=str(self.align_path))
        self.split = split
        # One record per pair; windows are indexed by (pair id, start) arrays.
        self.pairs: list[dict[str, Any]] = []
        for actor in self.actors:
            for emotion, pairs in alignment[actor].items():
                for key, (idx_n, idx_e) in sorted(pairs.items()):
                    n_clip, e_clip = parse_pair(key)
                    self.pairs.append({"actor": actor, "emotion": emotion, "pair": key,
                                       "neutral_clip": n_clip, "emotion_clip": e_clip,
                                       "idx_n": np.asarray(idx_n, dtype=np.int64),
                                       "idx_e": np.asarray(idx_e, dtype=np.int64)})
        if check_frames:
            for p in self.pairs:
                self.layout.check_indices(p["actor"], "neutral", p["neutral_clip"], p["idx_n"])
                self.layout.check_indices(p["actor"], p["emotion"], p["emotion_clip"], p["idx_e"])
        counts = np.array([window_count(len(p["idx_n"]), self.T) for p in self.pairs], dtype=np.int64)
        self._pair_of = np.repeat(np.arange(len(self.pairs)), counts)  # (num_windows,)
        offsets = np.cumsum(counts) - counts
        self._start_of = np.arange(counts.sum()) - np.repeat(offsets, counts)  # (num_windows,)
        if len(self._pair_of) == 0:
            raise StcclError(f"{self.align_path}: split {split!r} has no window of T={self.T} path steps "
                             f"(all paths are shorter); lower T")

    def __len__(self) -> int:
        return int(len(self._pair_of))

    def window(self, i: int) -> tuple[dict[str, Any], int]:
        """(pair record, start step) of window i."""
        return self.pairs[int(self._pair_of[i])], int(self._start_of[i])

    def repeats_index(self, i: int) -> bool:
        """Whether window i's path repeats a frame on either side (a zero temporal disparity there)."""
        p, s = self.window(i)
        return bool(np.any(np.diff(p["idx_n"][s:s + self.T]) == 0) or np.any(np.diff(p["idx_e"][s:s + self.T]) == 0))

    def mismatched_neutral(self, i: int, rng: np.random.Generator,
                           min_gap: int = 25) -> tuple[torch.Tensor, np.ndarray, str] | None:
        """A neutral window of the same actor that does not say what window i says, for the diagnostic's control.

        Preferred: a pair of the same actor and emotion with another neutral clip (another sentence), at the
        same start step (clipped to its path). Where the actor has one sentence: a window of the same neutral
        path whose start is at least `min_gap` steps away (25 = 1 s at MEAD's frame rate). Returns
        (frames (T, 3, H, W), its neutral frame indices (T,), "sentence" or "far window"), or None when
        neither exists.
        """
        p, s = self.window(i)
        others = [q for q in self.pairs if q["actor"] == p["actor"] and q["emotion"] == p["emotion"]
                  and q["neutral_clip"] != p["neutral_clip"] and window_count(len(q["idx_n"]), self.T) > 0]
        if others:
            q = others[int(rng.integers(len(others)))]
            start, kind = min(s, window_count(len(q["idx_n"]), self.T) - 1), "sentence"
        else:
            q = p
            far = [t for t in range(window_count(len(p["idx_n"]), self.T)) if abs(t - s) >= min_gap]
            if not far:
                return None
            start, kind = far[int(rng.integers(len(far)))], "far window"
        idx = q["idx_n"][start:start + self.T]
        return self.layout.load_frames(q["actor"], "neutral", q["neutral_clip"], idx, self.size), idx, kind

    def __getitem__(self, i: int) -> dict[str, Any]:
        p, s = self.window(i)
        idx_n = p["idx_n"][s:s + self.T]
        idx_e = p["idx_e"][s:s + self.T]
        return {
            "neutral": self.layout.load_frames(p["actor"], "neutral", p["neutral_clip"], idx_n, self.size),  # (T, 3, H, W)
            "emotional": self.layout.load_frames(p["actor"], p["emotion"], p["emotion_clip"], idx_e, self.size),  # (T, 3, H, W)
            "actor": p["actor"],
            "emotion": p["emotion"],
            "pair": p["pair"],
            "step": s + self.T // 2,
            **({"mismatched": self._mismatched_item(i)} if self.with_mismatched else {}),
        }

    def _mismatched_item(self, i: int) -> torch.Tensor:
        # the partner is a function of the window index, so runs and resumed runs see the same batches
        found = self.mismatched_neutral(i, np.random.default_rng(i))
        if found is None:
            p, _ = self.window(i)
            raise StcclError(f"{self.align_path}: actor {p['actor']} has one sentence and a path too short "
                             f"for a window 1 s away; mismatched negatives need another sentence")
        return found[0]


class ClipWindowDataset(Dataset):
    """Windows of T consecutive frames of single clips (any emotion), split by identity.

    For SPFEM training and evaluation, which need clips with their emotion label
    rather than aligned pairs. Windows start every `stride` frames.
    """

    def __init__(self, root: str | os.PathLike, T: int = DEFAULT_T, split: str = "train",
                 test_actors: str | Sequence[str] | None = None, size: int | Sequence[int] | None = None,
                 emotions: Sequence[str] | None = None, stride: int = 1):
        self.T = _check_T(T)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise StcclError(f"stride must be a positive integer, got {stride!r}")
        self.size = to_size(size)
        self.layout = MeadLayout(root)
        self.emotions = [check_emotion(e, "emotions") for e in (emotions or EMOTIONS)]
        self.test_actors = resolve_test_actors(root, test_actors)
        all_actors = self.layout.actors()
        if not all_actors:
            raise StcclError(f"{self.layout.root}: no {{actor}}/align_img folders found")
        self.actors = split_actors(all_actors, self.test_actors, split, where=str(self.layout.root))
        self.split = split
        self.clips: list[tuple[str, str, int, int]] = []  # (actor, emotion, clip, num_frames)
        for actor in self.actors:
            have = set(self.layout.emotions(actor))
            for emotion in self.emotions:
                if emotion not in have:
                    continue
                for clip in self.layout.clips(actor, emotion):
                    self.clips.append((actor, emotion, clip, self.layout.num_frames(actor, emotion, clip)))
        counts = np.array([len(range(0, max(0, n - self.T + 1), stride)) for *_, n in self.clips], dtype=np.int64)
        self._clip_of = np.repeat(np.arange(len(self.clips)), counts)  # (num_windows,)
        offsets = np.cumsum(counts) - counts
        self._start_of = (np.arange(counts.sum()) - np.repeat(offsets, counts)) * stride  # (num_windows,)
        if len(self._clip_of) == 0:
            raise StcclError(f"{self.layout.root}: split {split!r} with emotions {self.emotions} has no clip of at "
                             f"least T={self.T} frames")

    def __len__(self) -> int:
        return int(len(self._clip_of))

    def __getitem__(self, i: int) -> dict[str, Any]:
        actor, emotion, clip, _ = self.clips[int(self._clip_of[i])]
        start = int(self._start_of[i])
        return {
            "frames": self.layout.load_frames(actor, emotion, clip, np.arange(start, start + self.T), self.size),  # (T, 3, H, W)
            "actor": actor,
            "emotion": emotion,
            "emotion_idx": EMOTIONS.index(emotion),
            "clip": clip,
            "start": start,
        }


# ---------------------------------------------------------------------------
# Summary and CLI
# ---------------------------------------------------------------------------

def summarise_pairs(align_path: str | os.PathLike, root: str | os.PathLike | None = None,
                    test_actors: str | Sequence[str] | None = None, T: int = DEFAULT_T,
                    check_frames: bool = False) -> dict[str, Any]:
    """Counts of actors, pairs and windows per split, from the alignment file alone.

    Frames are only opened with check_frames=True (then every pair's indices
    are checked against its clip folders).
    """
    T = _check_T(T)
    alignment = load_alignment(align_path)
    tests = resolve_test_actors(root, test_actors)
    missing = [a for a in tests if a not in alignment]
    if missing:
        raise StcclError(f"{align_path}: test actor(s) {missing} not in the alignment file "
                         f"(actors: {sorted(alignment)[:8]}...); fix --test-actors")
    layout = MeadLayout(root) if check_frames else None
    emotions = sorted({e for emos in alignment.values() for e in emos}, key=EMOTIONS.index)
    splits = {}
    for split in ("train", "test"):
        actors = split_actors(alignment, tests, split, where=str(align_path))
        n_pairs = n_windows = 0
        for actor in actors:
            for emotion, pairs in alignment[actor].items():
                for key, (idx_n, idx_e) in pairs.items():
                    n_pairs += 1
                    n_windows += window_count(len(idx_n), T)
                    if layout is not None:
                        n_clip, e_clip = parse_pair(key)
                        layout.check_indices(actor, "neutral", n_clip, idx_n)
                        layout.check_indices(actor, emotion, e_clip, idx_e)
        splits[split] = {"actors": len(actors), "pairs": n_pairs, "windows": n_windows}
    return {
        "root": None if root is None else str(root),
        "align": str(align_path),
        "actors": len(alignment),
        "emotions": emotions,
        "pairs": sum(len(p) for emos in alignment.values() for p in emos.values()),
        "T": T,
        "splits": splits,
        "test_actors": tests,
        "frames_checked": bool(check_frames),
    }


def _cmd_pairs(args) -> int:
    root = args.root
    align = args.align
    if align is None:
        if root is None:
            raise StcclError("give --align FILE (or --root DIR holding aligned_path.json)")
        align = str(Path(root) / "aligned_path.json")
    if args.check_frames and root is None:
        raise StcclError("--check-frames needs --root DIR (the folder with the frames)")
    summary = summarise_pairs(align, root=root, test_actors=args.test_actors, T=args.T,
                              check_frames=args.check_frames)
    print(to_json(summary))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("pairs", help="summarise an alignment file: actors, emotions, pairs, windows per split",
                       description="Read a MEAD-layout alignment file (official format) and print one JSON line "
                                   "with actors, emotions, pairs and windows per identity split.")
    p.add_argument("--root", default=None, help="data root ({actor}/align_img/...); its meta.json gives test actors")
    p.add_argument("--align", default=None, help="alignment file (default: ROOT/aligned_path.json)")
    p.add_argument("--test-actors", default=None, help="comma-separated held-out actors "
                                                       "(default: meta.json's, else W021)")
    p.add_argument("--T", type=int, default=DEFAULT_T, help="window length in path steps (default 5)")
    p.add_argument("--check-frames", action="store_true", help="also check every index against the frame folders")
    p.set_defaults(func=_cmd_pairs)
