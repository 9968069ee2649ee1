"""Synthetic paired talking faces in the MEAD layout, with exact ground truth.

`stccl synth --out DIR [--preset tiny|default] [--seed N]` renders every
synthetic actor saying every sentence in every emotion, as MEAD does, and
writes what a user of real MEAD would have plus what only a renderer knows:

    DIR/{actor}/align_img/{emotion}/{clip:03d}/{frame:06d}.jpg   frames (JPEG)
    DIR/aligned_path.json     official alignment format, DTW on rendered frames
    DIR/ground_truth.parquet  per-frame truth: sentence time, visemes, expression,
                              blink, head pose, landmarks
    DIR/meta.json             preset, seed, actors, test actors, identities, sentences
    DIR/summary.json          counts, seconds, DTW error against the true timing
    DIR/contact_sheet.png     identities x emotions

How a clip is made: a sentence is a phoneme sequence (the same for a clip
number across actors and emotions). A rendition gives each phoneme a duration:
its base duration, divided by the actor's speaking rate and the emotion's tempo
(sad slower, angry faster), times a per-phoneme random jitter. Frame f then has
a continuous sentence time s(f) = phoneme index + fraction, and the speech
mouth parameters are one function of s shared by every emotion
(`face_model.speech_trajectory`). So two renditions of a sentence are not
frame-aligned, but their true correspondence is known through s: that is what
the DTW paths are checked against. The emotion adds brows, eyes, cheeks, mouth
corners and its own change of mouth shape; blinks, head-pose jitter, sensor
noise and JPEG compression come on top.

`render_target(root, actor, clip, emotion, source_emotion, intensity)` draws
the ground truth for SPFEM evaluation: the actor saying the sentence with the
target emotion on the exact timing, head pose and blinks of the source clip,
without sensor noise and JPEG (a clean target; see its docstring).

At about 720 lines this stays one module: the presets, the per-rendition timing,
the batch over actors x sentences x emotions, the DTW alignment check and the
ground-truth target all share SynthConfig and the renderer's calling convention;
the drawing itself lives in `face_model`.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import multiprocessing as mp
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from stccl.data.align import dtw_path, path_frame_error
from stccl.io import StcclError, atomic_path, atomic_write_csv, atomic_write_json, read_json, to_json
from stccl.data import face_model as fm

EMOTIONS = ("neutral", "angry", "disgusted", "fear", "happy", "sad", "surprised")  # == stccl.data.EMOTIONS

# Stream tags for np.random.default_rng([seed, TAG, ...]): every random draw is
# keyed by what it is for, so a clip renders identically in any worker order.
_TAG_IDENTITY, _TAG_SENTENCE, _TAG_TIMING, _TAG_INTENSITY, _TAG_NOISE, _TAG_RATE = 1, 2, 3, 4, 5, 6
_TAG_SHARED_MOTION, _TAG_OWN_SPEECH = 7, 8


@dataclass(frozen=True)
class SynthConfig:
    """What to render. Presets: `PRESETS`; any field can be overridden."""

    preset: str = "tiny"
    size: int = 64                  # frame side in pixels
    n_identities: int = 8
    n_test: int = 2                 # the last n_test identities are the held-out test actors
    n_sentences: int = 3
    syllables: tuple[int, int] = (4, 6)   # syllables per sentence (inclusive range)
    emotions: tuple[str, ...] = EMOTIONS
    intensities: tuple[int, ...] = (1, 2, 3)  # levels drawn for each emotional clip
    fps: int = 25
    duration_jitter: float = 0.3    # log-normal sigma of per-phoneme duration
    pause_jitter: float = 0.4       # log-normal sigma of silences and pauses (rhythm differs most there)
    rate_range: tuple[float, float] = (0.9, 1.1)  # per-actor speaking rate
    pose_jitter: float = 1.0        # scale of head rotation/translation/scale jitter
    pose_speed: float = 1.0         # scale of its frequencies (real MEAD heads move slowly: see reports/calibration)
    blink_rate: float = 0.35        # blinks per second
    noise_std: float = 0.02         # Gaussian sensor noise (0..1 scale)
    jpeg_quality: int = 85
    workers: int = 2
    dtw_window: int | None = None   # Sakoe-Chiba band for the alignment (None = unconstrained)
    shared_motion: bool = False     # opt-in experiment: head pose and blinks follow the sentence timeline
                                    # (drawn per actor and sentence), so every emotion of a sentence moves
                                    # alike at aligned frames; default: drawn independently per clip
    emotion_timing: bool = True     # False: one phoneme timing per (actor, sentence) shared by every emotion
                                    # (no emotion tempo, no per-take jitter): renditions are frame-aligned
    emotion_on_mouth: bool = True   # False: emotions act on brows, lids, cheeks and nose only, never on the
                                    # mouth, jaw or head pitch, i.e. only where speech does not move the face
    zoom: float = fm.FRAME_ZOOM     # the frame shows [-1, 1] / zoom of the face (larger: tighter crop)
    centre_y: float = 0.0           # face coordinate of the frame centre (positive: lower on the face)
    alignment: str = "dtw"          # "dtw": DTW on rendered mouth features (as on real data);
                                    # "truth": the path from the known sentence times (exact timing)
    speech_open_gain: float = 1.0   # gain on the speech mouth opening (viseme "open"); the default preset
                                    # sets the three gains to match real MEAD speech (reports/calibration)
    speech_width_gain: float = 1.0  # gain on the speech mouth width and rounding (visemes "width", "round")
    speech_jaw_gain: float = 1.0    # gain on the speech jaw drop (viseme "jaw": chin, lower face outline)
    coherence: float = 1.0          # share of the speech motion's variance that every rendition of a sentence
                                    # has in common (1: all of it, the paper's premise; 0: none). The rest is
                                    # each take's own speech: another phoneme of the same kind in each slot,
                                    # on the same timeline (`mix_speech`)
    speech_cheeks: float = 0.0      # how far speech moves the cheeks and nasolabial folds with the jaw and
                                    # the mouth width (0: only lips, jaw and chin outline move)

    def validate(self) -> "SynthConfig":
        bad = [e for e in self.emotions if e not in EMOTIONS]
        if bad:
            raise StcclError(f"synth config: unknown emotion(s) {bad}; expected a subset of {list(EMOTIONS)}")
        if "neutral" not in self.emotions:
            raise StcclError("synth config: emotions must include 'neutral' (alignments pair neutral with each emotion)")
        if len(set(self.emotions)) < 2:
            raise StcclError("synth config: emotions must include at least one emotion besides 'neutral' "
                             "(the data set is neutral/emotional pairs)")
        if self.size < 32:
            raise StcclError(f"synth config: size {self.size} is too small; use at least 32 pixels")
        if not (0 <= self.n_test < self.n_identities):
            raise StcclError(f"synth config: n_test={self.n_test} must leave at least one of "
                             f"{self.n_identities} identities for training")
        if self.n_sentences < 1 or self.n_sentences > 999:
            raise StcclError(f"synth config: n_sentences must be 1..999, got {self.n_sentences}")
        if not self.intensities or any(i not in (1, 2, 3) for i in self.intensities):
            raise StcclError(f"synth config: intensities must be a non-empty subset of (1, 2, 3), got {self.intensities}")
        if self.syllables[0] < 1 or self.syllables[1] < self.syllables[0]:
            raise StcclError(f"synth config: syllables must be (min, max) with 1 <= min <= max, got {self.syllables}")
        if not (1 <= self.jpeg_quality <= 100):
            raise StcclError(f"synth config: jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if self.workers < 1:
            raise StcclError(f"synth config: workers must be >= 1, got {self.workers}")
        for name in ("speech_open_gain", "speech_width_gain", "speech_jaw_gain"):
            if getattr(self, name) < 0:
                raise StcclError(f"synth config: {name} must be >= 0, got {getattr(self, name)}")
        if not (0.0 <= self.coherence <= 1.0):
            raise StcclError(f"synth config: coherence must be in [0, 1], got {self.coherence}")
        if self.pose_speed <= 0:
            raise StcclError(f"synth config: pose_speed must be > 0, got {self.pose_speed}")
        if self.speech_cheeks < 0:
            raise StcclError(f"synth config: speech_cheeks must be >= 0, got {self.speech_cheeks}")
        if self.alignment not in ("dtw", "truth"):
            raise StcclError(f"synth config: alignment must be 'dtw' or 'truth', got {self.alignment!r}")
        return self


# MEAD-like (issue 13): the official crop (the landmark box, brows to chin, enlarged by 10 %) at 112 px,
# where the mouth spans 22-30 % of the width; speech moves lips, jaw, chin outline, cheeks and folds;
# emotion adds brows, lids, cheeks and mouth corners and rescales the speech opening; each take has
# its own timing (aligned by DTW), head motion and blinks; no sensor noise and JPEG 90, because the real
# source panels show none (static corner: 0.0001 mean abs frame difference at 64 px, vs 0.0008 here and
# 0.014 for the old default; reports/calibration/frame_noise.md, experiments/frame_noise.py).
# Speech motion calibrated on the renderer's own landmarks against real MEAD (`stccl calibrate`, truth
# columns): mouth width and rounding x0.6 (at 1 they moved 1.6-2x real), jaw x2 (at 1 the chin moved half
# as far as real), opening gain 1.5 (the larger jaw also opens the lower lip); speaking rate, head motion
# (slowed: pose_speed) and blinks at their real levels. Tuned on 4 identities x 3 sentences (seed 1,
# experiments/speech_gain_grid.py): truth/real mouth open 1.21, width 0.94, jaw drop 0.92 (mead-v1: 1.05,
# 1.56, 0.46); reports/calibration/README.md has the full table and what the rest rests on.
_DEFAULT = SynthConfig(preset="default", size=112, n_identities=15, n_test=3, n_sentences=6,
                       syllables=(5, 7), zoom=1.65, centre_y=0.28, speech_cheeks=1.0, speech_open_gain=1.5,
                       speech_width_gain=0.6, speech_jaw_gain=2.0, rate_range=(0.6, 0.7), pose_jitter=0.35,
                       pose_speed=0.3, blink_rate=0.3, noise_std=0.0, jpeg_quality=90)

PRESETS: dict[str, SynthConfig] = {
    "tiny": SynthConfig(preset="tiny", size=64, n_identities=8, n_test=2, n_sentences=3, syllables=(3, 5),
                        jpeg_quality=80),
    "default": _DEFAULT,
    # The default preset before issue 13 (loose framing, sensor noise, fast head motion), kept for comparison.
    "loose": SynthConfig(preset="loose", size=112, n_identities=15, n_test=3, n_sentences=6,
                         syllables=(5, 7), jpeg_quality=85),
    # Positive control: the paper's premise holds by construction. Neutral and emotional renditions of a
    # sentence share the exact timing and differ only where speech does not move the face (brows, lids,
    # cheeks, nose); no per-take nuisance (head motion, blinks, sensor noise, JPEG artefacts). The crop shows
    # the lower face, nose to chin, so the mouth spans ~45 % of the frame width: at an anchor whose receptive
    # field misses the mouth the mismatched pair looks exactly like the matched one, so the share of anchors
    # that see speech bounds the diagnostic's gap for any network (a brows-to-chin crop, zoom 1.8, capped the
    # untrained spatial VD gap at 0.07; README "What does not work yet").
    "control": SynthConfig(preset="control", size=64, n_identities=8, n_test=2, n_sentences=4, syllables=(4, 6),
                           pose_jitter=0.0, blink_rate=0.0, noise_std=0.0, jpeg_quality=95, zoom=2.8, centre_y=0.4,
                           emotion_timing=False, emotion_on_mouth=False, alignment="truth"),
    # The first MEAD-like default (2026-12-03 afternoon): speech gains from the dlib-landmark calibration only
    # (opening 1.8, width and jaw at 1), kept to compare with; the reproduction of that day was made on it.
    "mead-v1": dataclasses.replace(_DEFAULT, preset="mead-v1", speech_open_gain=1.8, speech_width_gain=1.0,
                                   speech_jaw_gain=1.0),
}

# Expression parameters that act where speech moves the face; `emotion_on_mouth: false` zeroes them.
MOUTH_EXPRESSION_PARAMS = ("corner", "mouth_width", "mouth_open", "upper_lip", "jaw", "head_pitch")


def make_config(preset: str = "tiny", **overrides: Any) -> SynthConfig:
    if preset not in PRESETS:
        raise StcclError(f"unknown synth preset {preset!r}; expected one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(SynthConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise StcclError(f"unknown synth config key(s) {unknown}; known: {sorted(fields)}")
    clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PRESETS[preset], **clean).validate()


def actor_names(cfg: SynthConfig) -> list[str]:
    return [f"S{i + 1:03d}" for i in range(cfg.n_identities)]


def test_actor_names(cfg: SynthConfig) -> list[str]:
    names = actor_names(cfg)
    return names[len(names) - cfg.n_test:] if cfg.n_test else []


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**63), *[int(k) for k in key]])


def identity(seed: int, actor_idx: int, name: str) -> fm.Identity:
    return fm.make_identity(name, _rng(seed, _TAG_IDENTITY, actor_idx))


def make_sentence(seed: int, clip: int, cfg: SynthConfig) -> list[str]:
    """Phoneme sequence of sentence `clip`: silence, CV(C) syllables with short pauses, silence."""
    rng = _rng(seed, _TAG_SENTENCE, clip)
    out = ["sil"]
    n = int(rng.integers(cfg.syllables[0], cfg.syllables[1] + 1))
    for i in range(n):
        if i and rng.random() < 0.2:
            out.append("sp")
        if rng.random() < 0.85:
            out.append(str(rng.choice(fm.CONSONANTS)))
        out.append(str(rng.choice(fm.VOWELS)))
        if rng.random() < 0.3:
            out.append(str(rng.choice(fm.CONSONANTS)))
    out.append("sil")
    return out


def clip_intensity(seed: int, cfg: SynthConfig, actor_idx: int, emotion: str, clip: int) -> int:
    """MEAD-like intensity level of one emotional clip (neutral: 0)."""
    if emotion == "neutral":
        return 0
    rng = _rng(seed, _TAG_INTENSITY, actor_idx, EMOTIONS.index(emotion), clip)
    return int(cfg.intensities[int(rng.integers(len(cfg.intensities)))])


# ---------------------------------------------------------------------------
# One clip
# ---------------------------------------------------------------------------

@dataclass
class ClipPlan:
    """Everything about one rendition except the pixels."""

    sentence_time: np.ndarray  # (N,) phoneme index + fraction
    phoneme_idx: np.ndarray    # (N,)
    speech: np.ndarray         # (N, 4)
    expr: np.ndarray           # (N, E)
    blink: np.ndarray          # (N,)
    pose: np.ndarray           # (N, 4)
    intensity: int


def timing(phonemes: list[str], tempo: float, jitter: float, pause_jitter: float,
           rng: np.random.Generator) -> np.ndarray:
    """Per-phoneme durations in frames (K,): base / tempo * log-normal jitter (larger for pauses)."""
    base = np.array([fm.PHONEMES[p][1] for p in phonemes], dtype=np.float64)
    sigma = np.where([fm.PHONEMES[p][0] == "sil" for p in phonemes], pause_jitter, jitter)
    return np.maximum(base / tempo * np.exp(rng.normal(0.0, 1.0, len(base)) * sigma), 0.6)


def sentence_time_of_frames(durations: np.ndarray) -> np.ndarray:
    """Sentence time (N,) of frames 0..N-1 given phoneme durations in frames (K,)."""
    bounds = np.concatenate([[0.0], np.cumsum(durations)])  # (K+1,)
    n = int(np.ceil(bounds[-1]))
    f = np.arange(n, dtype=np.float64)
    k = np.clip(np.searchsorted(bounds, f, side="right") - 1, 0, len(durations) - 1)
    return k + (f - bounds[k]) / durations[k]


def blinks(n: int, rate_per_frame: float, rng: np.random.Generator) -> np.ndarray:
    """Eye closure (N,) in [0, 1] from Poisson blink onsets, each a 5-frame closing-opening."""
    shape = np.array([0.45, 1.0, 0.8, 0.4, 0.1])
    out = np.zeros(n + len(shape))
    onsets = np.flatnonzero(rng.random(n) < rate_per_frame)
    for o in onsets:  # a handful per clip
        out[o:o + len(shape)] = np.maximum(out[o:o + len(shape)], shape)
    return out[:n]


def head_pose(n: int, scale: float, rng: np.random.Generator, t: np.ndarray | None = None,
              speed: float = 1.0) -> np.ndarray:
    """Smooth head jitter (N, 4): rotation (rad), tx, ty, log-scale; two sinusoids per axis.

    `t` (N,): the time of each frame in frames (default 0..N-1); `speed` scales the frequencies
    (0.01-0.06 cycles per frame at 1, i.e. 0.25-1.5 Hz at 25 fps)."""
    t = (np.arange(n, dtype=np.float64) if t is None else np.asarray(t, np.float64))[:, None, None]  # (N, 1, 1)
    amp = np.array([0.05, 0.025, 0.02, 0.025])[None, :, None] * scale  # (1, 4, 1)
    freq = rng.uniform(0.01, 0.06, (1, 4, 2)) * speed
    phase = rng.uniform(0, 2 * np.pi, (1, 4, 2))
    weight = rng.uniform(0.3, 1.0, (1, 4, 2))
    return (amp * weight * np.sin(2 * np.pi * freq * t + phase)).sum(-1) / 1.3  # (N, 4)


def shared_motion(s: np.ndarray, phonemes: list[str], cfg: SynthConfig, seed: int, actor_idx: int,
                  clip: int) -> tuple[np.ndarray, np.ndarray]:
    """Head pose (N, 4) and blinks (N,) as functions of the sentence time s (N,) (`shared_motion: true`).

    Drawn per (actor, sentence), not per emotion: renditions of a sentence move alike at frames with the
    same sentence time, as if the actor repeated the same head movement on every take. The timeline is
    s in units of the sentence's mean base phoneme duration, i.e. roughly frames of a neutral take.
    """
    rng = _rng(seed, _TAG_SHARED_MOTION, actor_idx, clip)
    unit = float(np.mean([fm.PHONEMES[p][1] for p in phonemes]))
    t = s * unit  # (N,) reference frames
    pose = head_pose(len(s), cfg.pose_jitter, rng, t, cfg.pose_speed)
    shape = np.array([0.45, 1.0, 0.8, 0.4, 0.1])
    n_ref = int(np.ceil(len(phonemes) * unit))
    onsets = np.flatnonzero(rng.random(n_ref) < cfg.blink_rate / cfg.fps).astype(np.float64)  # (K,)
    lag = t[:, None] - onsets[None, :]  # (N, K) reference frames since each onset
    closure = np.interp(lag, np.arange(len(shape), dtype=np.float64), shape, left=0.0, right=0.0)
    blink = closure.max(1) if onsets.size else np.zeros(len(s))
    return pose, blink


def clip_expression(cfg: SynthConfig, emotion: str, intensity: int) -> fm.Expression:
    """The expression of one clip: the emotion at its intensity, without mouth terms if so configured."""
    expr = fm.EXPRESSIONS[emotion].scaled(fm.INTENSITY_SCALE[intensity])
    if not cfg.emotion_on_mouth:
        expr = dataclasses.replace(expr, **{name: 0.0 for name in MOUTH_EXPRESSION_PARAMS})
    return expr


def own_phonemes(phonemes: list[str], rng: np.random.Generator) -> list[str]:
    """A take's own phoneme string on the sentence's slots: every spoken phoneme replaced by a random one
    (vowel or consonant), pauses kept where they are (same timeline, other content)."""
    spoken = fm.VOWELS + fm.CONSONANTS
    return [p if fm.PHONEMES[p][0] == "sil" else str(rng.choice(spoken)) for p in phonemes]


def mix_speech(shared: np.ndarray, own: np.ndarray, coherence: float) -> np.ndarray:
    """Speech parameters (N, 4) whose motion is `coherence` shared and 1 - coherence the take's own.

    Motion about each clip's mean is mixed with weights sqrt(c) and sqrt(1 - c), so two renditions that
    share `shared` have a correlation of c between their motions while the amplitude (variance) stays that
    of one trajectory: lowering c removes common speech without making the mouth move less.
    """
    c = float(coherence)
    if c >= 1.0:
        return shared
    ms, mo = shared.mean(0, keepdims=True), own.mean(0, keepdims=True)
    mixed = c * ms + (1 - c) * mo + np.sqrt(c) * (shared - ms) + np.sqrt(1 - c) * (own - mo)
    mixed[:, [0, 2]] = np.clip(mixed[:, [0, 2]], 0.0, None)  # opening and rounding are not negative
    return mixed


def plan_clip(cfg: SynthConfig, seed: int, actor_idx: int, emotion: str, clip: int,
              phonemes: list[str]) -> ClipPlan:
    intensity = clip_intensity(seed, cfg, actor_idx, emotion, clip)
    expr = clip_expression(cfg, emotion, intensity)
    rate = _rng(seed, _TAG_RATE, actor_idx).uniform(*cfg.rate_range)
    if cfg.emotion_timing:
        rng = _rng(seed, _TAG_TIMING, actor_idx, EMOTIONS.index(emotion), clip)
        durations = timing(phonemes, rate * expr.tempo, cfg.duration_jitter, cfg.pause_jitter, rng)
    else:  # one draw per (actor, sentence): every emotion speaks on the same frames
        durations = timing(phonemes, rate, cfg.duration_jitter, cfg.pause_jitter,
                           _rng(seed, _TAG_TIMING, actor_idx, 0, clip))
        rng = _rng(seed, _TAG_TIMING, actor_idx, EMOTIONS.index(emotion), clip)
    s = sentence_time_of_frames(durations)
    visemes = [fm.PHONEMES[p][0] for p in phonemes]
    speech = fm.speech_trajectory(visemes, s)  # (N, 4)
    if cfg.coherence < 1.0:
        mine = own_phonemes(phonemes, _rng(seed, _TAG_OWN_SPEECH, actor_idx, EMOTIONS.index(emotion), clip))
        speech = mix_speech(speech, fm.speech_trajectory([fm.PHONEMES[p][0] for p in mine], s), cfg.coherence)
    n = len(s)
    blink, pose = blinks(n, cfg.blink_rate / cfg.fps, rng), head_pose(n, cfg.pose_jitter, rng, speed=cfg.pose_speed)
    if cfg.shared_motion:
        pose, blink = shared_motion(s, phonemes, cfg, seed, actor_idx, clip)
    return ClipPlan(
        sentence_time=s,
        phoneme_idx=np.floor(s).astype(np.int64),
        speech=speech * np.array([cfg.speech_open_gain, cfg.speech_width_gain, cfg.speech_width_gain,
                                  cfg.speech_jaw_gain]),
        expr=np.repeat(expr.vector()[None], n, 0),
        blink=blink,
        pose=pose,
        intensity=intensity,
    )


def mouth_box(ident: fm.Identity, cfg: SynthConfig) -> tuple[int, int, int, int]:
    """Pixel box (y0, y1, x0, x1) around the mouth and chin at rest, for DTW features.

    A user of real data would crop the mouth with landmarks; here the
    identity's rest geometry plays that part (head jitter is not undone).
    """
    cy = ident.mouth_y + ident.face_y
    x0, x1 = -1.7 * ident.mouth_w, 1.7 * ident.mouth_w
    y0, y1 = cy - 0.12, cy + 0.16
    size = cfg.size
    to_px = lambda v, c=0.0: int(round(float(fm.to_pixels(v, size, cfg.zoom, c)) + 0.5))  # noqa: E731
    return (max(0, to_px(y0, cfg.centre_y)), min(size, to_px(y1, cfg.centre_y)),
            max(0, to_px(x0)), min(size, to_px(x1)))


def mouth_features(frames: np.ndarray, box: tuple[int, int, int, int], grid: tuple[int, int] = (8, 12)) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, gh*gw) grey mouth-region features, clip mean removed.

    Removing the clip's mean frame takes away what the emotion changes for
    the whole clip (wider mouth, lifted corners), so DTW follows the speech.
    """
    y0, y1, x0, x1 = box
    crop = frames[:, y0:y1, x0:x1].astype(np.float32).mean(-1)  # (N, h, w)
    gh, gw = grid
    h, w = crop.shape[1:]
    ys = np.linspace(0, h, gh + 1).astype(int)
    xs = np.linspace(0, w, gw + 1).astype(int)
    # Block means by cumulative sums: one pass, no loop over blocks.
    cs = np.pad(crop.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))  # (N, h+1, w+1)
    tot = cs[:, ys[1:]][:, :, xs[1:]] - cs[:, ys[:-1]][:, :, xs[1:]] - cs[:, ys[1:]][:, :, xs[:-1]] + cs[:, ys[:-1]][:, :, xs[:-1]]
    area = np.outer(np.diff(ys), np.diff(xs)).astype(np.float32)
    feat = (tot / np.maximum(area, 1)).reshape(len(frames), -1)  # (N, gh*gw)
    feat = feat - feat.mean(0, keepdims=True)
    # The frame-to-frame change marks where the mouth opens and closes, which
    # pins the path down better than the shape alone.
    return np.concatenate([feat, np.gradient(feat, axis=0) if len(feat) > 1 else np.zeros_like(feat)], 1)


def _render_clip(job: dict) -> dict:
    """Worker: plan, draw, add noise, JPEG-encode and write one clip; return its truth and features."""
    from PIL import Image

    cfg = SynthConfig(**job["cfg"])
    seed, a_idx, actor, emotion, clip = job["seed"], job["actor_idx"], job["actor"], job["emotion"], job["clip"]
    ident = identity(seed, a_idx, actor)
    plan = plan_clip(cfg, seed, a_idx, emotion, clip, job["phonemes"])
    img, lm = fm.draw_faces(ident, plan.speech, plan.expr, plan.blink, plan.pose, cfg.size,
                            zoom=cfg.zoom, centre_y=cfg.centre_y, speech_cheeks=cfg.speech_cheeks)  # (N, H, W, 3)
    rng = _rng(seed, _TAG_NOISE, a_idx, EMOTIONS.index(emotion), clip)
    # Sensor noise: every frame takes a random crop of one noise field drawn per clip, which looks
    # independent frame to frame and costs a fraction of drawing fresh noise for every pixel.
    margin = 16
    field = rng.standard_normal((cfg.size + margin, cfg.size + margin, 3), dtype=np.float32) * np.float32(cfg.noise_std)
    offsets = rng.integers(0, margin, (len(img), 2))
    for f, (oy, ox) in enumerate(offsets):  # a loop over frames, not pixels
        img[f] += field[oy:oy + cfg.size, ox:ox + cfg.size]
    frames = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out_dir = Path(job["staging"]) / actor / "align_img" / emotion / f"{clip:03d}"
    out_dir.mkdir(parents=True, exist_ok=True)
    decoded = np.empty_like(frames)
    for f in range(len(frames)):
        buf = io.BytesIO()
        Image.fromarray(frames[f]).save(buf, format="JPEG", quality=cfg.jpeg_quality)
        data = buf.getvalue()
        (out_dir / f"{f:06d}.jpg").write_bytes(data)
        with Image.open(io.BytesIO(data)) as im:  # features from what was saved, as a user would see it
            decoded[f] = np.asarray(im.convert("RGB"))
    return {
        "actor": actor, "emotion": emotion, "clip": clip, "intensity": plan.intensity,
        "plan": plan, "landmarks": lm.astype(np.float32),
        "features": mouth_features(decoded, mouth_box(ident, cfg)),
    }


# ---------------------------------------------------------------------------
# Ground truth table
# ---------------------------------------------------------------------------

def _truth_frame(res: dict, phonemes: list[str], split: str) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    plan: ClipPlan = res["plan"]
    n = len(plan.sentence_time)
    cols: dict[str, Any] = {
        "actor": [res["actor"]] * n, "split": [split] * n, "clip": np.full(n, res["clip"], np.int16),
        "emotion": [res["emotion"]] * n, "intensity": np.full(n, res["intensity"], np.int8),
        "frame": np.arange(n, dtype=np.int32), "n_frames": np.full(n, n, np.int32),
        "sentence_time": plan.sentence_time,
        "phoneme_idx": plan.phoneme_idx.astype(np.int16),
        "phoneme": [phonemes[k] for k in plan.phoneme_idx],
        "viseme": [fm.PHONEMES[phonemes[k]][0] for k in plan.phoneme_idx],
    }
    for i, name in enumerate(fm.SPEECH_PARAMS):
        cols[f"v_{name}"] = plan.speech[:, i].astype(np.float32)
    for i, name in enumerate(fm.EXPRESSION_PARAMS):
        cols[f"e_{name}"] = plan.expr[:, i].astype(np.float32)
    cols["blink"] = plan.blink.astype(np.float32)
    for i, name in enumerate(("rot", "tx", "ty", "log_scale")):
        cols[f"pose_{name}"] = plan.pose[:, i].astype(np.float32)
    for j, name in enumerate(fm.LANDMARKS):
        cols[f"lm_{name}_x"] = res["landmarks"][:, j, 0]
        cols[f"lm_{name}_y"] = res["landmarks"][:, j, 1]
    return pd.DataFrame(cols)


@functools.lru_cache(maxsize=4)
def _read_truth(path: str, mtime_ns: int) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    return pd.read_parquet(path)


def load_ground_truth(root: str | os.PathLike) -> "pd.DataFrame":  # noqa: F821
    """The per-frame ground truth of a synthetic data root (one row per frame)."""
    path = Path(root) / "ground_truth.parquet"
    if not path.is_file():
        raise StcclError(f"ground truth not found: {path}; it is written by `stccl synth --out {root}`")
    return _read_truth(str(path), path.stat().st_mtime_ns).copy()


# ---------------------------------------------------------------------------
# Alignment and its agreement with the truth
# ---------------------------------------------------------------------------

def true_frame_map(s_src: np.ndarray, s_dst: np.ndarray) -> np.ndarray:
    """For each source frame, the (fractional) destination frame showing the same sentence time."""
    return np.interp(s_src, s_dst, np.arange(len(s_dst), dtype=np.float64))


def _align_one(job: tuple) -> dict:
    """Worker: DTW path of one pair and its error against the true timing."""
    actor, emotion, clip, feat_n, feat_e, s_n, s_e, window, method = job
    truth = true_frame_map(s_n, s_e)
    if method == "truth":  # each neutral frame with the emotional frame nearest its sentence time
        idx_n, idx_e = list(range(len(s_n))), [int(j) for j in np.clip(np.round(truth), 0, len(s_e) - 1)]
    else:
        idx_n, idx_e = dtw_path(feat_n, feat_e, window=window)
    n_n, n_e = len(s_n), len(s_e)
    lin_e = np.round(np.arange(n_n) * (n_e - 1) / max(n_n - 1, 1)).astype(int)
    return {"actor": actor, "emotion": emotion, "clip": clip, "path": [idx_n, idx_e],
            "n_neutral": n_n, "n_emotion": n_e, "path_len": len(idx_n),
            "dtw_mae": path_frame_error(idx_n, idx_e, truth),
            # references: a uniform stretch of one clip onto the other, and no alignment at all
            "linear_mae": path_frame_error(list(range(n_n)), list(lin_e), truth),
            "identity_mae": path_frame_error(list(range(n_n)), list(np.minimum(np.arange(n_n), n_e - 1)), truth)}


def align_pairs(results: dict[tuple[str, str, int], dict], actors: list[str], emotions: Sequence[str],
                clips: Sequence[int], window: int | None, mapper=map, method: str = "dtw") -> tuple[dict, list[dict]]:
    """Paths neutral -> emotion (DTW on rendered-frame features, or from the true sentence times when
    `method` is "truth"); also their error against the truth.

    `mapper` is `map` or a pool's `imap` (the order of results is kept).
    """
    jobs = [(a, e, c, results[(a, "neutral", c)]["features"], results[(a, e, c)]["features"],
             results[(a, "neutral", c)]["plan"].sentence_time, results[(a, e, c)]["plan"].sentence_time, window,
             method)
            for a in actors for e in emotions if e != "neutral" for c in clips]
    alignment: dict[str, dict[str, dict[str, list[list[int]]]]] = {a: {} for a in actors}
    errors = []
    for res in mapper(_align_one, jobs):
        path = res.pop("path")
        alignment[res["actor"]].setdefault(res["emotion"], {})[f"{res['clip']:03d}_{res['clip']:03d}"] = path
        errors.append(res)
    return alignment, errors


# ---------------------------------------------------------------------------
# Contact sheet
# ---------------------------------------------------------------------------

def contact_sheet(root: Path, actors: list[str], emotions: Sequence[str], test_actors: list[str],
                  truth: "pd.DataFrame", clip: int = 1, cell: int = 112) -> "Image.Image":  # noqa: F821
    """Identities (rows) x emotions (columns), each the frame nearest the sentence's middle; * = test actor."""
    from PIL import Image, ImageDraw

    label_w, label_h = 48, 16
    sheet = Image.new("RGB", (label_w + cell * len(emotions), label_h + cell * len(actors)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    sub = truth[truth["clip"] == clip]
    mid = 0.5 * (sub["sentence_time"].max())
    for j, emotion in enumerate(emotions):
        draw.text((label_w + j * cell + 4, 2), emotion, fill=(0, 0, 0))
    for i, actor in enumerate(actors):
        draw.text((2, label_h + i * cell + cell // 2 - 6), actor + ("*" if actor in test_actors else ""),
                  fill=(0, 0, 0))
        for j, emotion in enumerate(emotions):
            rows = sub[(sub["actor"] == actor) & (sub["emotion"] == emotion)]
            # nearest to the middle of the sentence, skipping frames caught mid-blink
            dist = np.abs(rows["sentence_time"].to_numpy() - mid) + 100.0 * (rows["blink"].to_numpy() > 0.05)
            f = int(rows["frame"].to_numpy()[np.argmin(dist)])
            with Image.open(root / actor / "align_img" / emotion / f"{clip:03d}" / f"{f:06d}.jpg") as im:
                sheet.paste(im.convert("RGB").resize((cell, cell), Image.NEAREST),
                            (label_w + j * cell, label_h + i * cell))
    return sheet


# ---------------------------------------------------------------------------
# The whole data set
# ---------------------------------------------------------------------------

_OUTPUT_FILES = ("meta.json", "aligned_path.json", "ground_truth.parquet", "summary.json", "contact_sheet.png",
                 "dtw_errors.csv")


def _prepare_out(out: Path, force: bool) -> None:
    """Refuse a non-empty folder unless forced; when forced, remove only what a previous synth wrote."""
    if out.exists() and not out.is_dir():
        raise StcclError(f"--out {out} exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise StcclError(f"--out {out} is not empty; nothing was written. Choose an empty folder or pass --force "
                             f"to replace a previous `stccl synth` output there")
        meta_path = out / "meta.json"
        old_actors = []
        if meta_path.is_file():
            try:
                old_actors = list(read_json(meta_path, "meta file").get("actors", []))
            except (StcclError, AttributeError):
                old_actors = []
        for name in old_actors:
            if (out / name / "align_img").is_dir():
                shutil.rmtree(out / name)
        for name in _OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / ".staging", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _pool_context():
    # fork starts workers in milliseconds; the workers only use numpy and PIL.
    return mp.get_context("fork") if sys.platform.startswith("linux") else mp.get_context()


def synthesize(out: str | os.PathLike, cfg: SynthConfig, seed: int = 0, force: bool = False,
               progress: bool = True) -> dict:
    """Render the data set described by `cfg` into `out`; return the summary dict."""
    from tqdm import tqdm
    import pandas as pd

    t_start = time.perf_counter()
    cfg = cfg.validate()
    out = Path(out)
    _prepare_out(out, force)
    actors = actor_names(cfg)
    clash = [a for a in actors if (out / a).exists()]
    if clash:
        raise StcclError(f"--out {out} already holds {clash[:3]} not written by a previous synth; "
                         f"choose an empty folder")
    tests = test_actor_names(cfg)
    clips = list(range(1, cfg.n_sentences + 1))
    sentences = {c: make_sentence(seed, c, cfg) for c in clips}
    staging = out / ".staging"
    staging.mkdir()
    jobs = [{"cfg": dataclasses.asdict(cfg), "seed": seed, "actor_idx": a, "actor": actor, "emotion": e,
             "clip": c, "phonemes": sentences[c], "staging": str(staging)}
            for a, actor in enumerate(actors) for e in cfg.emotions for c in clips]

    results: dict[tuple[str, str, int], dict] = {}
    bar = tqdm(total=len(jobs), desc=f"synth {cfg.preset}", unit="clip", disable=not progress, file=sys.stderr)
    pool = _pool_context().Pool(cfg.workers) if cfg.workers > 1 else None
    try:
        for res in (pool.imap_unordered(_render_clip, jobs, chunksize=4) if pool else map(_render_clip, jobs)):
            results[(res["actor"], res["emotion"], res["clip"])] = res
            bar.update(1)
        bar.close()
        t_render = time.perf_counter() - t_start

        # Frames are complete: move them into place (a crash before here leaves only .staging).
        for actor in actors:
            os.replace(staging / actor, out / actor)
        staging.rmdir()

        t0 = time.perf_counter()
        mapper = functools.partial(pool.imap, chunksize=8) if pool else map
        alignment, errors = align_pairs(results, actors, cfg.emotions, clips, cfg.dtw_window, mapper=mapper,
                                        method=cfg.alignment)
        t_align = time.perf_counter() - t0
    finally:
        if pool is not None:
            pool.close()
            pool.join()

    truth = pd.concat([_truth_frame(results[(a, e, c)], sentences[c], "test" if a in tests else "train")
                       for a in actors for e in cfg.emotions for c in clips], ignore_index=True)
    with atomic_path(out / "ground_truth.parquet") as tmp:
        truth.to_parquet(tmp, index=False)
    atomic_write_json(out / "aligned_path.json", alignment)
    err = pd.DataFrame(errors)
    atomic_write_csv(out / "dtw_errors.csv", err)

    meta = {
        "kind": "stccl-synthetic", "preset": cfg.preset, "seed": seed, "size": cfg.size, "fps": cfg.fps,
        "actors": actors, "test_actors": tests, "emotions": list(cfg.emotions), "clips": clips,
        "config": dataclasses.asdict(cfg),
        "sentences": {f"{c:03d}": sentences[c] for c in clips},
        "intensities": {a: {e: {f"{c:03d}": results[(a, e, c)]["intensity"] for c in clips}
                            for e in cfg.emotions} for a in actors},
        "identities": {a: identity(seed, i, a).to_dict() for i, a in enumerate(actors)},
        "speech_params": list(fm.SPEECH_PARAMS), "expression_params": list(fm.EXPRESSION_PARAMS),
        "landmarks": list(fm.LANDMARKS),
        "layout": "{actor}/align_img/{emotion}/{clip:03d}/{frame:06d}.jpg",
        "alignment_features": "true sentence times (alignment: truth)" if cfg.alignment == "truth" else "grey mouth-region 8x12 block means of the saved JPEG frames, clip mean removed, plus their temporal gradient",
    }
    atomic_write_json(out / "meta.json", meta)

    sheet = contact_sheet(out, actors, cfg.emotions, tests, truth, cell=max(cfg.size, 96))
    with atomic_path(out / "contact_sheet.png") as tmp:
        sheet.save(tmp, format="PNG")

    per_emotion = err.groupby("emotion")[["dtw_mae", "linear_mae"]].mean().round(4).to_dict(orient="index")
    summary = {
        "out": str(out), "preset": cfg.preset, "seed": seed, "size": cfg.size,
        "actors": len(actors), "test_actors": tests, "emotions": len(cfg.emotions), "sentences": len(clips),
        "clips": len(jobs), "frames": int(len(truth)), "pairs": int(len(err)),
        "frames_per_clip": {"min": int(truth.groupby(["actor", "emotion", "clip"]).size().min()),
                            "max": int(truth.groupby(["actor", "emotion", "clip"]).size().max())},
        "intensity_levels": sorted(int(v) for v in truth.loc[truth["emotion"] != "neutral", "intensity"].unique()),
        "dtw_mean_abs_frame_error": round(float(err["dtw_mae"].mean()), 4),
        "dtw_max_pair_error": round(float(err["dtw_mae"].max()), 4),
        "linear_stretch_mean_abs_frame_error": round(float(err["linear_mae"].mean()), 4),
        "no_alignment_mean_abs_frame_error": round(float(err["identity_mae"].mean()), 4),
        "dtw_error_by_emotion": per_emotion,
        "seconds": {"render": round(t_render, 2), "align": round(t_align, 2),
                    "total": round(time.perf_counter() - t_start, 2)},
        "workers": cfg.workers,
        "files": {"alignment": str(out / "aligned_path.json"), "ground_truth": str(out / "ground_truth.parquet"),
                  "meta": str(out / "meta.json"), "contact_sheet": str(out / "contact_sheet.png"),
                  "dtw_errors": str(out / "dtw_errors.csv")},
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------
# Ground-truth targets for evaluation
# ---------------------------------------------------------------------------

def _read_meta(root: Path) -> dict:
    meta = read_json(root / "meta.json", "synthetic-data meta file")
    if not isinstance(meta, dict) or meta.get("kind") != "stccl-synthetic":
        raise StcclError(f"{root / 'meta.json'}: not a `stccl synth` meta file; render_target needs synthetic data")
    return meta


def config_of(meta: dict) -> SynthConfig:
    """The SynthConfig a data set was rendered with, from its meta.json (fields added later take their defaults)."""
    return SynthConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["config"].items()})


def render_target(root: str | os.PathLike, actor: str, clip: int, emotion: str, source_emotion: str = "neutral",
                  intensity: int | None = None) -> np.ndarray:
    """Ground truth (N, H, W, 3) uint8: `actor` saying sentence `clip` with `emotion`, on the source's timing.

    N and the per-frame sentence time, speech mouth parameters, head pose and
    blinks are those of the source clip (actor, source_emotion, clip), so frame
    i of the target corresponds to frame i of the source; the expression (and
    its change of mouth shape) is the target emotion's at `intensity` (default:
    the level that (actor, emotion, clip) has in the data set; 0 for neutral).
    The target is clean: no sensor noise and no JPEG, so it is the same for
    every call (the data-set frames carry noise drawn per clip).
    """
    root = Path(root)
    meta = _read_meta(root)
    if actor not in meta["actors"]:
        raise StcclError(f"{root / 'meta.json'}: unknown actor {actor!r}; actors are {meta['actors']}")
    for name, e in (("emotion", emotion), ("source_emotion", source_emotion)):
        if e not in EMOTIONS:
            raise StcclError(f"render_target: unknown {name} {e!r}; expected one of {list(EMOTIONS)}")
    if intensity is None:
        intensity = 0 if emotion == "neutral" else int(
            meta["intensities"].get(actor, {}).get(emotion, {}).get(f"{int(clip):03d}", 3))
    if intensity not in fm.INTENSITY_SCALE:
        raise StcclError(f"render_target: intensity must be 0..3, got {intensity!r}")
    cfg = config_of(meta)
    truth = load_ground_truth(root)
    rows = truth[(truth["actor"] == actor) & (truth["emotion"] == source_emotion) & (truth["clip"] == int(clip))]
    if rows.empty:
        raise StcclError(f"{root / 'ground_truth.parquet'}: no frames for actor {actor}, emotion {source_emotion}, "
                         f"clip {int(clip):03d}")
    rows = rows.sort_values("frame")
    ident = identity(int(meta["seed"]), meta["actors"].index(actor), actor)
    speech = rows[[f"v_{n}" for n in fm.SPEECH_PARAMS]].to_numpy(np.float64)  # (N, 4)
    expr = np.repeat(clip_expression(cfg, emotion, intensity).vector()[None], len(rows), 0)
    pose = rows[["pose_rot", "pose_tx", "pose_ty", "pose_log_scale"]].to_numpy(np.float64)  # (N, 4)
    img, _ = fm.draw_faces(ident, speech, expr, rows["blink"].to_numpy(np.float64), pose, cfg.size,
                           zoom=cfg.zoom, centre_y=cfg.centre_y, speech_cheeks=cfg.speech_cheeks)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _cmd_synth(args) -> int:
    cfg = make_config(args.preset, size=args.size, workers=args.workers, n_identities=args.identities,
                      n_sentences=args.sentences,
                      n_test=(min(PRESETS[args.preset].n_test, args.identities - 1) if args.identities else None))
    if args.dry_run:
        print(to_json({"out": args.out, "seed": args.seed, "config": dataclasses.asdict(cfg),
                       "clips": cfg.n_identities * len(cfg.emotions) * cfg.n_sentences}))
        return 0
    summary = synthesize(args.out, cfg, seed=args.seed, force=args.force, progress=not args.no_progress)
    print(to_json(summary))
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("synth", help="render a synthetic paired talking-face data set in the MEAD layout",
                       description="Render synthetic actors x sentences x 7 emotions in the MEAD layout, with an "
                                   "alignment file (DTW on rendered frames), per-frame ground truth (Parquet), "
                                   "meta.json, summary.json and a contact sheet.")
    p.add_argument("--out", required=True, help="output folder (must be empty unless --force)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="size of the data set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (preset: tiny 64, default 112)")
    p.add_argument("--workers", type=int, default=None, help="render processes (default 2)")
    p.add_argument("--identities", type=int, default=None, help="number of actors (override the preset)")
    p.add_argument("--sentences", type=int, default=None, help="number of sentences (override the preset)")
    p.add_argument("--force", action="store_true", help="replace a previous synth output in --out")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=_cmd_synth)
