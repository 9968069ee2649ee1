"""Calibrate the synthetic renderer against real speech: `stccl calibrate`.

The same dlib 68-point landmarks (stccl.real.dlib_faces) are measured on the
source panels of the shipped real MEAD clips and on synthetic clips, and each
clip is reduced to a handful of statistics of speech, head motion and blinks.
The table puts the real median beside each synthetic preset's median.

Landmarks, per frame (dlib 68-point indices, 0-based; x right, y down):

- inter-ocular distance (IOD) = |p45 - p36| (outer eye corners); the unit of
  every length below, so the statistics do not depend on the crop size;
- the face frame: u = unit vector p36 -> p45 (along the eye line), v = u
  turned 90 degrees towards the chin; eye centre e = (p36 + p45) / 2.

Per-frame signals:

- mouth_open = |p62 - p66| / IOD (inner lips, middle);
- mouth_width = |p54 - p48| / IOD (outer mouth corners);
- jaw_drop = (p8 - e) . v / IOD (chin below the eye line);
- cheek = mean over the lower-cheek contour points 3, 4, 12, 13 of
  (p - e) . v / IOD (how far down the cheek outline sits; it follows the jaw);
- nasolabial = mean of |p31 - p48| and |p35 - p54| / IOD (nose wing to mouth
  corner, the span of the nasolabial fold);
- head_x, head_y = e . (1, 0) and e . (0, 1) over the clip's median IOD
  (head translation in the image);
- head_roll = atan2(u_y, u_x) in degrees (eye-line angle);
- head_yaw = (p30 - e) . u / IOD (nose tip left/right of the eye centre: a
  proxy that moves with yaw; 0 for a frontal face);
- head_pitch = (p30 - e) . v / IOD (nose tip below the eye line: a proxy that
  shrinks when the head tips back or forward);
- head_scale = log(IOD / median IOD) (distance to the camera);
- eye aspect ratio EAR = mean over both eyes of (|p37 - p41| + |p38 - p40|) /
  (2 |p36 - p39|) (right eye of the image; the same with 42..47).

Per clip, for each signal x (frames where the face was found; NaN elsewhere):

- amplitude (`_amp`) = p95(x) - p5(x), a robust range over the clip;
- velocity (`_vel`) = mean over consecutive found frames of |x[t+1] - x[t]|,
  times the clip's frame rate (units per second): how fast it moves on
  average (see `velocity` for why not the median).

Blinks: `blink_rate` = blink onsets per second, an onset being a fall of EAR
below 0.7 x the clip's median EAR after it was above 0.85 x that median
(hysteresis, so landmark jitter around one threshold is not counted twice).
Per clip this is a small integer over a few seconds, so the table's blink
row pools the clips (all onsets / all seconds) instead of taking a median.

The velocities include dlib's frame-to-frame landmark jitter on both sides;
they are compared, not interpreted as true motion speeds. To tell the
renderer's motion from the detector's jitter, each synthetic root also gets a
`truth` column: the same statistics of the same clips, read from the
renderer's own landmark positions (`truth_signals`).

Face boxes: the real panels go through dlib's HOG detector (as in
`stccl eval-clips`). The HOG detector finds no face on the cartoon synthetic
frames (checked at native size and upsampled to 256), so there the box is
placed from the renderer's own eye and mouth points with the box geometry
measured on the real detections (`BOX_FROM_EYES_MOUTH`); the 68 landmarks
themselves are dlib's in both cases. Synthetic frames are upsampled
(bicubic) to the real panels' 256 px before the landmark predictor.

At about 460 lines this stays one module: the statistics, the real and synthetic landmark readers and the
table are one measurement, and both sides must go through exactly the same statistics code.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from stccl.io import StcclError, atomic_path, atomic_write_csv, atomic_write_json, atomic_write_text
from stccl.real import dlib_faces

# Signals measured per frame; each gives <name>_amp and <name>_vel per clip.
SIGNALS = ("mouth_open", "mouth_width", "jaw_drop", "cheek", "nasolabial", "head_x", "head_y",
           "head_roll", "head_yaw", "head_pitch", "head_scale")
SIGNAL_UNITS = {"head_roll": "deg", "head_scale": "log IOD"}
STATISTICS = tuple(f"{s}_{k}" for s in SIGNALS for k in ("amp", "vel")) + ("blink_rate",)
TOLERANCE = 0.25  # "within" = synthetic median within +-25 % of the real median

CHEEK_POINTS = np.array([3, 4, 12, 13])
EAR_LOW, EAR_HIGH = 0.70, 0.85  # blink onset below LOW x median EAR, re-armed above HIGH x median

# dlib box from eye centre e and mouth centre m (d = |m - e|): centre = e + (0.05 d, 0.47 d),
# side = 2.08 d. Medians over 40 HOG detections on the real source panels (4 clips, every 8th
# of the first 80 frames); used for synthetic frames, on which HOG finds no face.
BOX_FROM_EYES_MOUTH = (0.05, 0.47, 2.08)


# ---------------------------------------------------------------------------
# Per-frame signals and per-clip statistics (pure numpy: the tested part)
# ---------------------------------------------------------------------------

class _FaceFrame:
    """The eye-line frame of one clip's faces, shared by the dlib and the renderer readers.

    left, right: (N, 2) eye points (image left and right); iod: (N,) the inter-ocular distance in the
    statistics' unit (dlib's outer-corner distance). e = eye midpoint, u = unit eye line, v = u turned
    towards the chin (y is down), safe = iod with NaN where it is ~0, scale = the clip's median IOD.
    """

    def __init__(self, left: np.ndarray, right: np.ndarray, iod: np.ndarray):
        eye_vec = right - left  # (N, 2)
        length = np.linalg.norm(eye_vec, axis=-1)
        self.safe = np.where(iod > 1e-9, iod, np.nan)
        self.u = eye_vec / np.where(length > 1e-9, length, np.nan)[:, None]
        self.v = np.stack([-self.u[:, 1], self.u[:, 0]], -1)
        self.e = (left + right) / 2
        self.scale = np.nanmedian(self.safe) if np.isfinite(self.safe).any() else np.nan

    def along(self, q: np.ndarray) -> np.ndarray:
        return ((q - self.e) * self.u).sum(-1) / self.safe

    def down(self, q: np.ndarray) -> np.ndarray:
        return ((q - self.e) * self.v).sum(-1) / self.safe

    def head_signals(self, nose_tip: np.ndarray) -> dict[str, np.ndarray]:
        """head_x, head_y, head_roll, head_yaw, head_pitch, head_scale (module docstring)."""
        return {
            "head_x": self.e[:, 0] / self.scale,
            "head_y": self.e[:, 1] / self.scale,
            "head_roll": np.degrees(np.arctan2(self.u[:, 1], self.u[:, 0])),
            "head_yaw": self.along(nose_tip),
            "head_pitch": self.down(nose_tip),
            "head_scale": np.log(self.safe / self.scale),
        }


def frame_signals(lms: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame signals of (N, 68, 2) landmarks -> {name: (N,)}, NaN where a row is NaN.

    See the module docstring for each definition; also returns "iod" and "ear".
    """
    lms = np.asarray(lms, np.float64)
    p = lambda i: lms[:, i]  # noqa: E731  (N, 2)
    iod = np.linalg.norm(p(45) - p(36), axis=-1)  # (N,)
    f = _FaceFrame(p(36), p(45), iod)
    dist = lambda a, b: np.linalg.norm(p(a) - p(b), axis=-1)  # noqa: E731
    ear = ((dist(37, 41) + dist(38, 40)) / (2 * dist(36, 39)) +
           (dist(43, 47) + dist(44, 46)) / (2 * dist(42, 45))) / 2
    return {
        "mouth_open": dist(62, 66) / f.safe,
        "mouth_width": dist(54, 48) / f.safe,
        "jaw_drop": f.down(p(8)),
        "cheek": np.mean([f.down(p(i)) for i in CHEEK_POINTS], 0),
        "nasolabial": (dist(31, 48) + dist(35, 54)) / 2 / f.safe,
        **f.head_signals(p(30)),
        "iod": iod,
        "ear": ear,
    }


def amplitude(x: np.ndarray) -> float:
    """Robust range p95 - p5 of the finite values of x (N,); NaN with fewer than 2."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan")
    lo, hi = np.percentile(x, [5, 95])
    return float(hi - lo)


def velocity(x: np.ndarray, fps: float) -> float:
    """Mean |x[t+1] - x[t]| over consecutive frames that are both finite, times fps (per second).

    Not the median: dlib returns whole-pixel landmarks, so a slow signal
    (head drift) changes on few frames and its median step is 0 however fast
    it drifts; the mean counts those steps. A landmark glitch counts too, on
    real and synthetic clips alike.
    """
    x = np.asarray(x, np.float64)
    d = np.abs(np.diff(x))
    d = d[np.isfinite(d)]
    return float(d.mean() * fps) if len(d) else float("nan")


def blink_onsets(ear: np.ndarray, low: float = EAR_LOW, high: float = EAR_HIGH) -> np.ndarray:
    """Frame indices where EAR (N,) falls below low x median after being above high x median.

    NaN frames (no face) neither start nor end a blink.
    """
    ear = np.asarray(ear, np.float64)
    ok = np.isfinite(ear)
    if not ok.any():
        return np.zeros(0, np.int64)
    med = float(np.median(ear[ok]))
    onsets, armed = [], True
    for t in np.flatnonzero(ok):  # a state machine over frames; clips are a few hundred frames
        if armed and ear[t] < low * med:
            onsets.append(t)
            armed = False
        elif not armed and ear[t] > high * med:
            armed = True
    return np.asarray(onsets, np.int64)


def clip_statistics(lms: np.ndarray, fps: float) -> dict[str, float]:
    """Every statistic of STATISTICS for one clip's (N, 68, 2) landmarks at `fps`, plus bookkeeping.

    Also returns frames, frames_found, seconds (N / fps), blinks (the onset count)
    and mouth_open_mean (for reading the table, not calibrated).
    """
    lms = np.asarray(lms, np.float64)
    return signal_statistics(frame_signals(lms), fps, frames_found=int(np.isfinite(lms).all((1, 2)).sum()))


def signal_statistics(sig: dict[str, np.ndarray], fps: float, frames_found: int | None = None) -> dict[str, float]:
    """The statistics of per-frame signals {name: (N,)} (as from `frame_signals` or `truth_signals`).

    A signal that is all NaN (not measurable by that reader) gives NaN statistics.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = len(sig["ear"])
    out: dict[str, float] = {}
    for name in SIGNALS:
        out[f"{name}_amp"] = amplitude(sig[name])
        out[f"{name}_vel"] = velocity(sig[name], fps)
    seconds = n / fps
    n_blinks = len(blink_onsets(sig["ear"]))
    out["blink_rate"] = n_blinks / seconds if seconds > 0 else float("nan")
    out.update(blinks=n_blinks, seconds=seconds, frames=n,
               frames_found=n if frames_found is None else frames_found,
               mouth_open_mean=float(np.nanmean(sig["mouth_open"])) if np.isfinite(sig["mouth_open"]).any()
               else float("nan"))
    return out


def truth_signals(pts: dict[str, np.ndarray], iod_scale: float) -> dict[str, np.ndarray]:
    """The signals of `frame_signals`, from the renderer's own landmark positions instead of dlib's.

    pts: {name: (N, 2)} ground-truth points of one clip in one pixel frame (names as in the synthetic
    ground truth: eye_l, eye_r (eye centres, image left and right), lip_in_top, lip_in_bottom, mouth_l,
    mouth_r, chin, nose_tip) and "blink" (N,) (lid closure in [0, 1]). The renderer has eye centres,
    not dlib's outer eye corners, so IOD = iod_scale x |eye_r - eye_l|, with iod_scale the clip's median
    dlib IOD over its median eye-centre distance (both in the same pixels), so the units match the dlib
    readers. The renderer has no lower-cheek outline or nose wings: cheek and nasolabial are NaN.
    The EAR stand-in is 1 - closure (open 1, shut 0), read by the same blink detector.
    """
    iod = np.linalg.norm(pts["eye_r"] - pts["eye_l"], axis=-1) * iod_scale
    f = _FaceFrame(pts["eye_l"], pts["eye_r"], iod)
    nan = np.full(len(iod), np.nan)
    return {
        "mouth_open": np.linalg.norm(pts["lip_in_top"] - pts["lip_in_bottom"], axis=-1) / f.safe,
        "mouth_width": np.linalg.norm(pts["mouth_r"] - pts["mouth_l"], axis=-1) / f.safe,
        "jaw_drop": f.down(pts["chin"]),
        "cheek": nan,
        "nasolabial": nan.copy(),
        **f.head_signals(pts["nose_tip"]),
        "iod": iod,
        "ear": 1.0 - np.asarray(pts["blink"], np.float64),
    }


def summarise(per_clip: "pandas.DataFrame") -> dict[str, float]:  # noqa: F821
    """Median over clips of each statistic; blink_rate pooled (all onsets / all seconds)."""
    med = {s: float(per_clip[s].median()) for s in STATISTICS}
    secs = float(per_clip["seconds"].sum())
    med["blink_rate"] = float(per_clip["blinks"].sum()) / secs if secs > 0 else float("nan")
    return med


def compare(real: dict[str, float], synth: dict[str, float], tolerance: float = TOLERANCE) -> dict[str, dict]:
    """{statistic: {"ratio": synth / real, "within": |ratio - 1| <= tolerance}}."""
    out = {}
    for s in STATISTICS:
        r, x = real[s], synth[s]
        ratio = x / r if np.isfinite(r) and abs(r) > 1e-12 and np.isfinite(x) else float("nan")
        out[s] = {"ratio": ratio, "within": bool(np.isfinite(ratio) and abs(ratio - 1) <= tolerance)}
    return out


# ---------------------------------------------------------------------------
# Landmarks of real and synthetic clips
# ---------------------------------------------------------------------------

def box_from_eyes_mouth(eye: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """dlib-like square boxes (N, 4) = left, top, right, bottom from eye and mouth centres (N, 2).

    The box side uses the clip's median eye-mouth distance, so a mouth that
    opens does not rescale the box; the offset turns with the eye-mouth axis.
    """
    dx, dy, side = BOX_FROM_EYES_MOUTH
    axis = mouth - eye  # (N, 2)
    d = np.median(np.linalg.norm(axis, axis=-1))
    down = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-9)  # (N, 2)
    right = np.stack([down[:, 1], -down[:, 0]], -1)
    centre = eye + d * (dx * right + dy * down)
    h = side * d / 2
    return np.concatenate([centre - h, centre + h], -1)


def landmarks_in_boxes(frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """dlib 68 landmarks (N, 68, 2) of frames (N, H, W, 3) uint8 inside given boxes (N, 4)."""
    import dlib

    out = np.full((len(frames), 68, 2), np.nan)
    for i, (img, b) in enumerate(zip(frames, boxes)):  # dlib works one image at a time
        rect = dlib.rectangle(*[int(round(float(v))) for v in b])
        out[i] = dlib_faces.landmarks(np.ascontiguousarray(img), rect)
    return out


def real_clip_landmarks(video: Path, row, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """HOG-detected dlib landmarks (N, 68, 2) of the source panel of one shipped clip, and its fps.

    With `max_frames`, only the first `max_frames` frames (consecutive, so
    velocities stay frame-to-frame).
    """
    from stccl.real.published_clips import SOURCE, row_panels
    from stccl.real.video import read_frames, split_panel

    frames, fps = read_frames(video, max_frames=max_frames)
    panel = split_panel(frames, row_panels(row)[SOURCE], int(row["panel_size"]), int(row["panel_gap"]),
                        source=video)
    return dlib_faces.analyse_frames(panel)["landmarks"], fps


TRUTH_POINTS = ("eye_l", "eye_r", "lip_in_top", "lip_in_bottom", "mouth_l", "mouth_r", "chin", "nose_tip")


def synth_clip_landmarks(root: Path, truth: "pandas.DataFrame", actor: str, emotion: str, clip: int,  # noqa: F821
                         size: int = 256, max_frames: int | None = None,
                         with_truth: bool = False) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """dlib landmarks (N, 68, 2) of one synthetic clip's JPEG frames, upsampled to `size` px.

    Boxes come from the renderer's eye centres and mouth corners (ground truth), because HOG finds
    no cartoon face; see the module docstring. With `with_truth`, also the renderer's own points
    {name: (N, 2)} in the same `size`-px frame (TRUTH_POINTS) and "blink" (N,), for `truth_signals`.
    """
    from PIL import Image

    rows = truth[(truth["actor"] == actor) & (truth["emotion"] == emotion) & (truth["clip"] == clip)]
    rows = rows.sort_values("frame").head(max_frames) if max_frames else rows.sort_values("frame")
    folder = root / actor / "align_img" / emotion / f"{clip:03d}"
    frames = []
    for f in rows["frame"]:
        path = folder / f"{int(f):06d}.jpg"
        if not path.is_file():
            raise StcclError(f"{path}: frame listed in {root / 'ground_truth.parquet'} is missing; "
                             f"re-run `stccl synth --out {root} --force`")
        with Image.open(path) as im:
            native = im.width
            frames.append(np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC)))
    k = size / native
    px = lambda name: np.stack([rows[f"lm_{name}_x"], rows[f"lm_{name}_y"]], -1).astype(np.float64)  # noqa: E731
    to_big = lambda q: (q + 0.5) * k - 0.5  # noqa: E731  pixel centres scale about the corner
    eye = to_big((px("eye_l") + px("eye_r")) / 2)
    mouth = to_big((px("mouth_l") + px("mouth_r")) / 2)
    lms = landmarks_in_boxes(np.stack(frames), box_from_eyes_mouth(eye, mouth))
    return (lms, truth_points(rows, size / native)) if with_truth else lms


def truth_points(rows: "pandas.DataFrame", k: float = 1.0) -> dict[str, np.ndarray]:  # noqa: F821
    """The renderer's TRUTH_POINTS {name: (N, 2)} and "blink" (N,) of one clip's ground-truth rows (in
    frame order), scaled by k about the pixel corner (k = 256 / size: the calibration's 256-px frame)."""
    pts = {name: (np.stack([rows[f"lm_{name}_x"], rows[f"lm_{name}_y"]], -1).astype(np.float64) + 0.5) * k - 0.5
           for name in TRUTH_POINTS}
    pts["blink"] = rows["blink"].to_numpy(np.float64)
    return pts


def truth_clip_signals(root: Path, iod_scale: float, emotion: str = "neutral", max_clips: int | None = None,
                       size: int = 256) -> tuple[list[dict[str, np.ndarray]], float]:
    """`truth_signals` of every clip of one emotion in a synthetic root (actor, clip order; at most `max_clips`),
    read from its ground truth at `size` px (the calibration's frame), and the root's fps. No frames are decoded."""
    from stccl.data.synth import _read_meta, load_ground_truth

    meta = _read_meta(Path(root))
    truth = load_ground_truth(root)
    clips = list(truth[truth["emotion"] == emotion].groupby(["actor", "clip"]))[:max_clips]
    k = size / int(meta["size"])
    return [truth_signals(truth_points(g.sort_values("frame"), k), iod_scale) for _, g in clips], float(meta["fps"])


# ---------------------------------------------------------------------------
# Batch, table, figure
# ---------------------------------------------------------------------------

def measure_real(clips_dir: Path, max_frames: int | None = None) -> "pandas.DataFrame":  # noqa: F821
    import pandas as pd
    from tqdm import tqdm

    from stccl.real.published_clips import read_manifest

    df = read_manifest(clips_dir / "manifest.csv")
    rows = []
    for _, row in tqdm(list(df.iterrows()), desc="calibrate real", unit="clip"):
        video = clips_dir / row["clip"]
        if not video.is_file():
            raise StcclError(f"{clips_dir / 'manifest.csv'}: clip {row['clip']} listed but {video} does not exist")
        lms, fps = real_clip_landmarks(video, row, max_frames)
        rows.append({"source": "real", "clip": row["clip"], "fps": fps, **clip_statistics(lms, fps)})
    return pd.DataFrame(rows)


def source_label(meta: dict) -> str:
    """The table's source name of a synthetic root (its dlib rows; the renderer's rows add " truth")."""
    return f"synth {meta['preset']} ({meta['size']} px)"


def measure_synth(root: Path, emotions: tuple[str, ...] = ("neutral",), max_clips: int | None = None,
                  max_frames: int | None = None, truth_rows: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """dlib statistics of a synthetic root's clips; with `truth_rows`, also the renderer's own (source "... truth").

    The two readers see the same clips, so a statistic that is within on the truth rows and out on the
    dlib rows is the landmark detector's doing, not the renderer's motion.
    """
    import pandas as pd
    from tqdm import tqdm

    from stccl.data.synth import _read_meta, load_ground_truth

    meta = _read_meta(root)
    truth = load_ground_truth(root)
    fps = float(meta["fps"])
    keys = (truth[truth["emotion"].isin(emotions)][["actor", "emotion", "clip"]].drop_duplicates()
            .sort_values(["actor", "emotion", "clip"]).itertuples(index=False))
    keys = list(keys)[:max_clips] if max_clips else list(keys)
    if not keys:
        raise StcclError(f"{root}: no synthetic clips with emotion(s) {list(emotions)}")
    label = source_label(meta)
    rows = []
    for actor, emotion, clip in tqdm(keys, desc=f"calibrate {meta['preset']}", unit="clip"):
        name = f"{actor}/{emotion}/{int(clip):03d}"
        lms, pts = synth_clip_landmarks(root, truth, actor, emotion, int(clip), max_frames=max_frames,
                                        with_truth=True)
        rows.append({"source": label, "clip": name, "fps": fps, **clip_statistics(lms, fps)})
        if truth_rows:
            dlib_iod = np.linalg.norm(lms[:, 45] - lms[:, 36], axis=-1)
            centres = np.linalg.norm(pts["eye_r"] - pts["eye_l"], axis=-1)
            iod_scale = float(np.nanmedian(dlib_iod) / np.median(centres))
            rows.append({"source": f"{label} truth", "clip": name, "fps": fps, "iod_scale": iod_scale,
                         **signal_statistics(truth_signals(pts, iod_scale), fps)})
    return pd.DataFrame(rows)


def comparison_table(per_clip: "pandas.DataFrame") -> "pandas.DataFrame":  # noqa: F821
    """One row per statistic: real median, then per synthetic source its median, ratio and within."""
    import pandas as pd

    real = summarise(per_clip[per_clip["source"] == "real"])
    rows = {s: {"statistic": s, "unit": _unit(s), "real_median": real[s]} for s in STATISTICS}
    for src in [s for s in per_clip["source"].unique() if s != "real"]:
        med = summarise(per_clip[per_clip["source"] == src])
        cmp = compare(real, med)
        for s in STATISTICS:
            rows[s][f"{src} median"] = med[s]
            rows[s][f"{src} ratio"] = cmp[s]["ratio"]
            rows[s][f"{src} within"] = ("n/a" if not np.isfinite(cmp[s]["ratio"]) else
                                        "yes" if cmp[s]["within"] else "no")
    return pd.DataFrame(list(rows.values()))


def _unit(stat: str) -> str:
    if stat == "blink_rate":
        return "1/s"
    name, kind = stat.rsplit("_", 1)
    base = SIGNAL_UNITS.get(name, "IOD")
    return base if kind == "amp" else f"{base}/s"


def markdown(table: "pandas.DataFrame") -> str:  # noqa: F821
    sources = [c[: -len(" median")] for c in table.columns if c.endswith(" median") and c != "real_median"]
    head = ["statistic", "unit", "real median"] + [f"{s}: median / ratio / ±25 %?" for s in sources]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [r["statistic"], r["unit"], f"{r['real_median']:.4g}"]
        cells += [f"{r[f'{s} median']:.4g} / {r[f'{s} ratio']:.2f} / {r[f'{s} within']}" for s in sources]
        lines.append("| " + " | ".join(cells) + " |")
    counts = [f"{s}: {int((table[f'{s} within'] == 'yes').sum())}/{int((table[f'{s} within'] != 'n/a').sum())}"
              for s in sources]
    return "\n".join(lines) + "\n\nWithin ±25 % of the real median: " + "; ".join(counts) + "\n"


def figure(per_clip: "pandas.DataFrame", path: Path) -> None:  # noqa: F821
    """One panel per statistic: per-clip values of each source, the real median and its ±25 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = ["real"] + [s for s in per_clip["source"].unique() if s != "real"]
    ncol = 5
    nrow = int(np.ceil(len(STATISTICS) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow))
    rng = np.random.default_rng(0)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    real_med = summarise(per_clip[per_clip["source"] == "real"])
    for ax, stat in zip(axes.flat, STATISTICS):
        ref = real_med[stat]
        ax.axhspan(ref * (1 - TOLERANCE), ref * (1 + TOLERANCE), color="0.88", zorder=0)
        ax.axhline(ref, color="k", lw=1, zorder=1)
        for j, src in enumerate(sources):
            sub = per_clip[per_clip["source"] == src]
            vals = sub[stat].to_numpy(float)
            ax.scatter(j + rng.uniform(-0.15, 0.15, len(vals)), vals, s=10, alpha=0.6, color=colours[j % 10])
            med = summarise(sub)[stat]
            ax.plot([j - 0.3, j + 0.3], [med, med], color=colours[j % 10], lw=2.5)
        ax.set_xticks(range(len(sources)))
        ax.set_xticklabels([s.replace("synth ", "").replace(" (", "\n(") for s in sources], fontsize=7)
        ax.set_title(f"{stat} ({_unit(stat)})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(STATISTICS):]:
        ax.axis("off")
    fig.suptitle("dlib-landmark statistics per clip (dots), medians (bars); black line and grey band: "
                 "real median ±25 % (blink rate: pooled over clips)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # room for the title above the top row
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def calibrate(real: str | Path, synth: list[str | Path], out: str | Path = "reports/calibration",
              max_frames: int | None = None, max_clips: int | None = None,
              emotions: tuple[str, ...] = ("neutral",), truth_rows: bool = True) -> dict:
    """Measure the real source panels and every synthetic root; write calibration.csv/.md/.png and per_clip.csv.

    With `truth_rows`, each synthetic root gets a second column measured on the renderer's own landmarks.
    """
    import pandas as pd

    t0 = time.perf_counter()
    real, out = Path(real), Path(out)
    if not (real / "manifest.csv").is_file():
        raise StcclError(f"{real / 'manifest.csv'} not found; --real must be the folder of the shipped clips")
    for root in synth:
        if not (Path(root) / "meta.json").is_file():
            raise StcclError(f"{Path(root) / 'meta.json'} not found; render it with `stccl synth --out {root}`")
    parts = [measure_real(real, max_frames)]
    parts += [measure_synth(Path(r), tuple(emotions), max_clips, max_frames, truth_rows) for r in synth]
    per_clip = pd.concat(parts, ignore_index=True)
    table = comparison_table(per_clip)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / "per_clip.csv", per_clip, float_format="%.5f")
    atomic_write_csv(out / "calibration.csv", table, float_format="%.5f")
    counts = per_clip.groupby("source", sort=False).agg(clips=("clip", "size"), frames=("frames", "sum"),
                                                         found=("frames_found", "sum"))
    header = (f"Real: source panels of {real / 'manifest.csv'}"
              + (f", first {max_frames} frames per clip" if max_frames else ", every frame") +
              f"; synthetic: {', '.join(str(r) for r in synth)}, emotion(s) {', '.join(emotions)}"
              + (f", at most {max_clips} clips per root" if max_clips else "") + ".\n\nClips (frames, frames "
              "with landmarks): " + "; ".join(f"{s}: {int(r.clips)} ({int(r.frames)}, {int(r.found)})"
                                             for s, r in counts.iterrows()) +
              ".\nMedian over clips of each per-clip statistic (blink_rate: pooled, all blinks / all seconds); "
              "ratio = synthetic / real; `yes` = within ±25 %. Definitions: stccl/real/calibration.py."
              + (" `truth` columns: the same clips and statistics, read from the renderer's own landmark positions "
                 "instead of dlib's (no detector jitter; no cheek outline or nose wings: n/a)." if truth_rows else "")
              + "\n\n")
    atomic_write_text(out / "calibration.md", header + markdown(table))
    figure(per_clip, out / "calibration.png")
    seconds = time.perf_counter() - t0
    atomic_write_json(out / "run.json", {"real": str(real), "synth": [str(r) for r in synth], "max_frames": max_frames,
                                         "max_clips": max_clips, "emotions": list(emotions),
                                         "truth_rows": truth_rows,
                                         "seconds": round(seconds, 1)})
    return {"table": table, "per_clip": per_clip, "seconds": seconds, "out": str(out)}


def _cmd_calibrate(args) -> int:
    res = calibrate(args.real, args.synth, args.out, max_frames=args.max_frames, max_clips=args.max_clips,
                    emotions=tuple(args.emotions), truth_rows=args.truth)
    print(markdown(res["table"]), end="")
    print(f"wrote {res['out']}/calibration.csv, calibration.md, calibration.png, per_clip.csv, run.json "
          f"in {res['seconds']:.1f} s")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("calibrate", help="compare landmark statistics of real source clips and synthetic clips")
    p.add_argument("--real", required=True, help="folder of the shipped side-by-side clips (with manifest.csv)")
    p.add_argument("--synth", nargs="+", default=[], help="one or more `stccl synth` output folders")
    p.add_argument("--out", default="reports/calibration", help="output folder")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames of every clip")
    p.add_argument("--max-clips", type=int, default=None, help="at most N clips per synthetic root")
    p.add_argument("--emotions", nargs="+", default=["neutral"],
                   help="synthetic emotions to measure (default neutral, like the real source panels)")
    p.add_argument("--no-truth", dest="truth", action="store_false",
                   help="skip the columns measured on the renderer's own landmarks (default: one per synthetic root)")
    p.set_defaults(func=_cmd_calibrate)
