"""A parametric 2-D cartoon face, drawn with vectorised numpy.

The synthetic renderer (`stccl.synth`) needs faces whose identity, speech and
emotion are separate, known parameters, so that the ground truth of "identity
P says sentence S with emotion e" can be drawn exactly. This module holds the
three parameter sets and the drawing:

- `Identity`: face shape, skin tone, eye spacing and colour, nose, hair,
  background texture, lighting (fixed per actor);
- speech (viseme) parameters per frame: mouth opening, width, rounding, jaw
  drop; they come from phonemes (`VISEMES`) and depend only on sentence time;
- `EXPRESSIONS`: per emotion, brows, eye aperture, cheeks, mouth corners and
  the emotion's change of mouth shape.

Every shape is a soft mask computed from an approximate signed distance on a
pixel grid (linear ramp one pixel wide = antialiasing). A whole clip is drawn
at once: arrays are (N, H, W) over frames, never a Python loop over pixels.
Coordinates are image-normalised: x, y in [-1, 1], y pointing down.

At about 500 lines this stays one module: identities, speech and expression
parameters and the renderer that draws them are one parametric face; splitting
the parameters from the drawing would put each shape's definition in two places.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------
# Speech: phonemes -> visemes (targets for open, width, round, jaw)
# ---------------------------------------------------------------------------

SPEECH_PARAMS = ("open", "width", "round", "jaw")

# viseme: (open, width, round, jaw, dominance). Dominance follows the
# Cohen-Massaro coarticulation idea: a bilabial closure wins over its
# neighbours, a schwa-like vowel gives way.
VISEMES: dict[str, tuple[float, float, float, float, float]] = {
    "sil": (0.00, 0.00, 0.00, 0.00, 1.0),
    "PBM": (0.00, 0.00, 0.10, 0.10, 4.0),
    "FV": (0.08, 0.10, 0.00, 0.12, 2.0),
    "TH": (0.22, 0.10, 0.00, 0.20, 1.0),
    "TDN": (0.25, 0.15, 0.00, 0.22, 0.8),
    "KG": (0.35, 0.05, 0.00, 0.32, 0.7),
    "SZ": (0.12, 0.40, 0.00, 0.08, 1.2),
    "SHCH": (0.22, -0.15, 0.70, 0.15, 1.5),
    "RW": (0.15, -0.40, 0.95, 0.12, 1.5),
    "L": (0.35, 0.10, 0.00, 0.30, 0.8),
    "AA": (1.00, 0.15, 0.00, 0.95, 1.0),
    "AE": (0.70, 0.45, 0.00, 0.55, 1.0),
    "IY": (0.30, 0.75, 0.00, 0.18, 1.0),
    "UW": (0.38, -0.50, 1.00, 0.30, 1.2),
    "OW": (0.65, -0.25, 0.75, 0.60, 1.0),
    "ER": (0.40, 0.00, 0.35, 0.35, 0.8),
}

# phoneme -> viseme; base duration in frames at 25 fps for a neutral speaker.
PHONEMES: dict[str, tuple[str, float]] = {
    "sil": ("sil", 4.0), "sp": ("sil", 2.0),
    "p": ("PBM", 2.2), "b": ("PBM", 2.2), "m": ("PBM", 2.6),
    "f": ("FV", 2.4), "v": ("FV", 2.2), "th": ("TH", 2.2),
    "t": ("TDN", 1.8), "d": ("TDN", 1.8), "n": ("TDN", 2.2),
    "k": ("KG", 2.0), "g": ("KG", 2.0),
    "s": ("SZ", 2.6), "z": ("SZ", 2.2), "sh": ("SHCH", 2.6), "ch": ("SHCH", 2.4),
    "r": ("RW", 2.2), "w": ("RW", 2.2), "l": ("L", 2.0),
    "aa": ("AA", 3.6), "ae": ("AE", 3.4), "eh": ("AE", 3.0), "iy": ("IY", 3.2),
    "ih": ("IY", 2.6), "uw": ("UW", 3.4), "ow": ("OW", 3.6), "ao": ("OW", 3.6), "er": ("ER", 3.2),
}
CONSONANTS = tuple(p for p, (v, _) in PHONEMES.items() if v not in ("sil", "AA", "AE", "IY", "UW", "OW", "ER"))
VOWELS = ("aa", "ae", "eh", "iy", "ih", "uw", "ow", "ao", "er")

COARTICULATION_WIDTH = 0.45  # in phonemes: how far a viseme's influence reaches


def speech_trajectory(visemes: list[str], sentence_time: np.ndarray) -> np.ndarray:
    """Speech mouth parameters (N, 4) = (open, width, round, jaw) at sentence times (N,).

    Sentence time k + f means fraction f through phoneme k. Each phoneme's
    viseme target sits at k + 0.5 and is blended with dominance-weighted
    Gaussians (coarticulation). This is the same function of sentence time for
    every emotion: emotions change only the timing and add their own offsets.
    """
    table = np.array([VISEMES[v] for v in visemes], dtype=np.float64)  # (K, 5)
    targets, dominance = table[:, :4], table[:, 4]
    centres = np.arange(len(visemes)) + 0.5  # (K,)
    d = (np.asarray(sentence_time, dtype=np.float64)[:, None] - centres[None, :]) / COARTICULATION_WIDTH  # (N, K)
    w = dominance[None, :] * np.exp(-0.5 * d * d)  # (N, K)
    return (w @ targets) / np.maximum(w.sum(1, keepdims=True), 1e-12)  # (N, 4)


# ---------------------------------------------------------------------------
# Emotion: expression parameters
# ---------------------------------------------------------------------------

EXPRESSION_PARAMS = ("brow_raise", "brow_tilt", "eye_open", "cheek", "corner", "mouth_width",
                     "mouth_open", "upper_lip", "jaw", "nose", "head_pitch")


@dataclass(frozen=True)
class Expression:
    """Full-intensity expression of one emotion; `scaled(k)` gives intensity k in [0, 1]."""

    brow_raise: float = 0.0   # + raises both brows
    brow_tilt: float = 0.0    # + inner ends up (sad, fear), - inner ends down (angry)
    eye_open: float = 0.0     # relative change of eye aperture
    cheek: float = 0.0        # cheek raise / blush
    corner: float = 0.0       # mouth corners: + up (smile), - down
    mouth_width: float = 0.0  # added to the speech width
    mouth_open: float = 0.0   # relative gain on the speech opening (+ opens more, - presses)
    upper_lip: float = 0.0    # upper-lip raise (disgust) showing the teeth
    jaw: float = 0.0          # static jaw drop
    nose: float = 0.0         # nose wrinkle (nostrils up and wider)
    head_pitch: float = 0.0   # + head down (sad), - head up
    tempo: float = 1.0        # speaking-rate factor (>1 faster)

    def scaled(self, k: float) -> "Expression":
        fields = {f.name: getattr(self, f.name) * k for f in dataclasses.fields(self) if f.name != "tempo"}
        return Expression(tempo=1.0 + (self.tempo - 1.0) * k, **fields)

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, n) for n in EXPRESSION_PARAMS], dtype=np.float64)


EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(),
    "angry": Expression(brow_raise=-0.6, brow_tilt=-1.0, eye_open=0.10, cheek=0.0, corner=-0.35,
                        mouth_width=-0.15, mouth_open=-0.25, upper_lip=0.25, nose=0.3, tempo=1.18),
    "disgusted": Expression(brow_raise=-0.35, brow_tilt=-0.45, eye_open=-0.40, cheek=0.35, corner=-0.55,
                            mouth_width=-0.05, mouth_open=-0.10, upper_lip=1.0, nose=1.0, tempo=0.92),
    "fear": Expression(brow_raise=0.75, brow_tilt=0.9, eye_open=0.55, corner=-0.25, mouth_width=0.35,
                       mouth_open=0.15, jaw=0.10, head_pitch=-0.3, tempo=1.12),
    "happy": Expression(brow_raise=0.15, eye_open=-0.30, cheek=1.0, corner=1.0, mouth_width=0.40,
                        mouth_open=0.10, upper_lip=0.2, tempo=1.06),
    "sad": Expression(brow_raise=0.05, brow_tilt=1.0, eye_open=-0.35, cheek=-0.3, corner=-1.0,
                      mouth_width=-0.20, mouth_open=-0.20, head_pitch=0.8, tempo=0.78),
    "surprised": Expression(brow_raise=1.0, brow_tilt=0.25, eye_open=0.75, mouth_width=-0.15,
                            mouth_open=0.55, jaw=0.30, head_pitch=-0.4, tempo=0.95),
}

INTENSITY_SCALE = {0: 0.0, 1: 0.55, 2: 0.8, 3: 1.0}  # MEAD levels 1..3; neutral is 0


# ---------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------

SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.91, 0.72, 0.58], [0.80, 0.60, 0.45], [0.66, 0.47, 0.33],
                       [0.52, 0.36, 0.25], [0.38, 0.26, 0.18], [0.98, 0.86, 0.76], [0.85, 0.68, 0.50]])
HAIR_COLOURS = np.array([[0.10, 0.07, 0.05], [0.30, 0.18, 0.08], [0.55, 0.35, 0.15], [0.85, 0.70, 0.40],
                         [0.60, 0.20, 0.08], [0.55, 0.55, 0.55], [0.92, 0.92, 0.90], [0.05, 0.05, 0.08]])
EYE_COLOURS = np.array([[0.25, 0.15, 0.08], [0.15, 0.35, 0.60], [0.20, 0.45, 0.25], [0.40, 0.30, 0.15],
                        [0.35, 0.40, 0.45]])
HAIR_STYLES = ("short", "long", "bald", "fringe", "bun")


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic actor (all lengths image-normalised)."""

    name: str
    face_w: float
    face_h: float
    chin: float             # extra length of the lower face (pointed chin)
    face_y: float
    skin: tuple[float, float, float]
    lip: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: str
    hair_volume: float
    eye_colour: tuple[float, float, float]
    eye_gap: float          # half distance between the eye centres
    eye_y: float
    eye_w: float
    eye_h: float
    brow_y: float           # brow height above the eye centre
    brow_w: float
    brow_thick: float
    nose_len: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_thick: float
    bg_a: tuple[float, float, float]
    bg_b: tuple[float, float, float]
    bg_freq: tuple[float, float]
    bg_angle: float
    light_dir: tuple[float, float]
    light_gain: float
    brightness: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_identity(name: str, rng: np.random.Generator) -> Identity:
    """Draw a distinct-looking identity from `rng` (deterministic for a seeded generator)."""
    u = rng.uniform
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * u(0.95, 1.05, 3)
    skin = np.clip(skin, 0, 1)
    lip = np.clip(skin * np.array([0.85, 0.55, 0.55]) + np.array([0.12, 0.0, 0.02]), 0, 1)
    hue = u(0, 1, 2)
    bg_a = np.clip(0.35 + 0.55 * np.array([np.sin(6.28 * hue[0]), np.sin(6.28 * hue[0] + 2.1),
                                          np.sin(6.28 * hue[0] + 4.2)]) ** 2, 0, 1)
    bg_b = np.clip(bg_a * u(0.45, 0.8) + u(0, 0.25, 3), 0, 1)
    ang = u(0, 2 * np.pi)
    return Identity(
        name=name,
        face_w=float(u(0.46, 0.62)), face_h=float(u(0.62, 0.76)), chin=float(u(0.0, 0.10)),
        face_y=float(u(0.02, 0.10)),
        skin=tuple(float(v) for v in skin), lip=tuple(float(v) for v in lip),
        hair=tuple(float(v) for v in HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]),
        hair_style=str(HAIR_STYLES[rng.integers(len(HAIR_STYLES))]), hair_volume=float(u(0.0, 1.0)),
        eye_colour=tuple(float(v) for v in EYE_COLOURS[rng.integers(len(EYE_COLOURS))]),
        eye_gap=float(u(0.17, 0.27)), eye_y=float(u(-0.22, -0.12)), eye_w=float(u(0.075, 0.105)),
        eye_h=float(u(0.040, 0.058)), brow_y=float(u(0.085, 0.125)), brow_w=float(u(0.09, 0.13)),
        brow_thick=float(u(0.016, 0.03)), nose_len=float(u(0.14, 0.24)), nose_w=float(u(0.045, 0.08)),
        mouth_y=float(u(0.30, 0.38)), mouth_w=float(u(0.13, 0.19)), lip_thick=float(u(0.022, 0.036)),
        bg_a=tuple(float(v) for v in bg_a), bg_b=tuple(float(v) for v in bg_b),
        bg_freq=(float(u(1.5, 6.0)), float(u(1.0, 4.0))), bg_angle=float(u(0, np.pi)),
        light_dir=(float(np.cos(ang)), float(np.sin(ang))), light_gain=float(u(0.05, 0.22)),
        brightness=float(u(0.9, 1.08)),
    )


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

# Landmarks recorded in the ground truth (pixel coordinates after head pose).
LANDMARKS = ("eye_l", "eye_r", "brow_l_in", "brow_l_out", "brow_r_in", "brow_r_out", "nose_tip",
             "mouth_l", "mouth_r", "lip_top", "lip_bottom", "lip_in_top", "lip_in_bottom", "chin",
             "face_l", "face_r")


# The face is drawn in coordinates where it spans about [-0.6, 0.6] x [-0.8, 0.9];
# the frame shows [-1, 1] / FRAME_ZOOM of them, a tight crop like MEAD's aligned faces.
FRAME_ZOOM = 1.3
CORNER_LIFT = 0.065  # how far a full smile (corner = 1) lifts the mouth corners


def to_pixels(v: np.ndarray | float, size: int, zoom: float = FRAME_ZOOM, centre: float = 0.0) -> np.ndarray | float:
    """Face coordinate (no head pose) -> pixel coordinate in a frame of `size` showing [-1, 1] / zoom
    of the face around `centre` (the frame centre's face coordinate on this axis)."""
    return ((np.asarray(v) - centre) * zoom + 1) / 2 * size - 0.5


def _ramp(d: np.ndarray, px: float) -> np.ndarray:
    """Coverage of a pixel at signed distance d (negative inside): a one-pixel linear ramp."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def _ellipse_sd(x, y, cx, cy, a, b, angle=0.0):
    """Approximate signed distance to an ellipse (first-order: f / |grad f|)."""
    dx, dy = x - cx, y - cy
    if not (np.isscalar(angle) and angle == 0.0):
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    qx, qy = dx / a, dy / b
    f = qx * qx + qy * qy - 1.0
    g = 2.0 * np.sqrt((qx / a) ** 2 + (qy / b) ** 2) + 1e-6
    return f / g


def _paint(img: np.ndarray, alpha: np.ndarray, colour) -> None:
    """Alpha-composite `colour` over img (N, 3, H, W) with alpha (N, H, W), in place.

    Channels-first so that every operation runs over contiguous rows (a
    trailing axis of 3 makes numpy's inner loops very slow).
    """
    col = np.asarray(colour, dtype=np.float32).reshape(1, 3, 1, 1)
    img += alpha[:, None] * (col - img)


def background(ident: Identity, size: int) -> np.ndarray:
    """Static textured background (3, H, W): two oriented waves blending two colours."""
    g = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(g, g, indexing="ij")
    c, s = np.cos(ident.bg_angle), np.sin(ident.bg_angle)
    u, v = c * x + s * y, -s * x + c * y
    t = 0.5 + 0.25 * np.sin(np.pi * ident.bg_freq[0] * u) + 0.25 * np.sin(np.pi * ident.bg_freq[1] * v + 1.3)
    t = np.clip(t, 0, 1)[None]
    a = np.asarray(ident.bg_a, np.float32).reshape(3, 1, 1)
    b = np.asarray(ident.bg_b, np.float32).reshape(3, 1, 1)
    return (a * t + b * (1 - t)).astype(np.float32)


class _Canvas:
    """Frames (N, 3, H, W) plus the face coordinates of every pixel under each frame's head pose.

    `region(x0, x1, y0, y1)` returns views restricted to the pixels that a
    face-coordinate box can reach in any frame, so a small shape (an eye, a
    nostril) costs only its own pixels.
    """

    def __init__(self, img, x, y, pxf, rot, tx, ty, lsc, size, zoom, centre_y):
        self.img, self.x, self.y, self.pxf, self.size = img, x, y, pxf, size
        self.zoom, self.centre_y = zoom, centre_y
        self.c, self.s = np.cos(rot).reshape(-1, 1), np.sin(rot).reshape(-1, 1)
        self.tx, self.ty, self.scl = tx.reshape(-1, 1), ty.reshape(-1, 1), np.exp(lsc).reshape(-1, 1)

    def region(self, x0, x1, y0, y1):
        x0, x1 = float(np.min(x0)), float(np.max(x1))
        y0, y1 = float(np.min(y0)), float(np.max(y1))
        fx = np.array([[x0, x1, x0, x1]], np.float32)
        fy = np.array([[y0, y0, y1, y1]], np.float32)
        ix = to_pixels((self.c * fx - self.s * fy) * self.scl + self.tx, self.size, self.zoom)  # (N, 4)
        iy = to_pixels((self.s * fx + self.c * fy) * self.scl + self.ty, self.size, self.zoom, self.centre_y)
        c0, c1 = max(0, int(np.floor(ix.min())) - 2), min(self.size, int(np.ceil(ix.max())) + 3)
        r0, r1 = max(0, int(np.floor(iy.min())) - 2), min(self.size, int(np.ceil(iy.max())) + 3)
        if r0 >= r1 or c0 >= c1:
            r0, r1, c0, c1 = 0, 1, 0, 1  # off-frame: a 1-pixel region whose alpha is zero
        sl = (slice(None), slice(r0, r1), slice(c0, c1))
        return self.x[sl], self.y[sl], self.img[:, :, r0:r1, c0:c1]


def draw_faces(ident: Identity, speech: np.ndarray, expr: np.ndarray, blink: np.ndarray, pose: np.ndarray,
               size: int, bg: np.ndarray | None = None, zoom: float = FRAME_ZOOM,
               centre_y: float = 0.0, speech_cheeks: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Draw N frames of one identity.

    speech: (N, 4) open, width, round, jaw; expr: (N, len(EXPRESSION_PARAMS));
    blink: (N,) in [0, 1] (1 = closed); pose: (N, 4) rot (rad), tx, ty, log-scale.
    zoom, centre_y: the frame shows [-1, 1] / zoom of the face around (0, centre_y) (see to_pixels).
    speech_cheeks: gain of the speech motion of the cheeks and nasolabial folds (they drop and stretch
    with the jaw and move out with the mouth width); 0 keeps them still while the face speaks.
    Returns images (N, H, W, 3) float32 in [0, 1] and landmarks (N, L, 2) in pixels.
    """
    N = len(speech)
    px = 2.0 / size / zoom
    ex = {n: expr[:, i].astype(np.float32).reshape(N, 1, 1) for i, n in enumerate(EXPRESSION_PARAMS)}
    sp = {n: speech[:, i].astype(np.float32).reshape(N, 1, 1) for i, n in enumerate(SPEECH_PARAMS)}
    rot, tx, ty, lsc = (pose[:, i].astype(np.float32).reshape(N, 1, 1) for i in range(4))
    ty = ty + 0.03 * ex["head_pitch"]  # a lowered head sits lower in the frame

    # Face coordinates of every pixel: undo the per-frame head pose.
    g = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1) / zoom
    Y, X = np.meshgrid(g + np.float32(centre_y), g, indexing="ij")  # (H, W)
    sc = np.exp(-lsc)
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = X[None] - tx, Y[None] - ty  # (N, H, W)
    x = (c * dx + s * dy) * sc
    y = (-s * dx + c * dy) * sc
    pxf = px * sc  # pixel size in face coordinates (N, 1, 1)

    if bg is None:
        bg = background(ident, size)
    img = np.broadcast_to(bg, (N, 3, size, size)).copy()  # (N, 3, H, W)
    cv = _Canvas(img, x, y, pxf, rot, tx, ty, lsc, size, zoom, centre_y)

    skin = np.asarray(ident.skin, np.float32)
    hair = np.asarray(ident.hair, np.float32)
    fy, fw, fh = ident.face_y, ident.face_w, ident.face_h
    jaw = np.clip(sp["jaw"] * (1 + 0.6 * ex["mouth_open"]) + ex["jaw"], 0, 1.5)  # (N, 1, 1)

    def ellipse(cx, cy, a, b, colour, angle=0.0, soft=1.0, opacity=1.0):
        """Paint one (possibly rotated) ellipse; cx, cy, a, b may be per-frame (N, 1, 1)."""
        r = np.max(np.maximum(a, b))
        xs, ys, iv = cv.region(np.min(cx) - r, np.max(cx) + r, np.min(cy) - r, np.max(cy) + r)
        _paint(iv, _ramp(_ellipse_sd(xs, ys, cx, cy, a, b, angle), soft * pxf) * opacity, colour)

    # Hair behind the head.
    vol = ident.hair_volume
    if ident.hair_style == "long":
        d = _ellipse_sd(x, y, 0, fy + 0.15, fw + 0.12 + 0.08 * vol, fh + 0.28)
        _paint(img, _ramp(d, pxf) * (y > fy - fh - 0.2), hair)
    elif ident.hair_style == "bun":
        ellipse(0, fy - fh - 0.05, 0.16 + 0.05 * vol, 0.13, hair)
    # Neck and shoulders.
    xs, ys, iv = cv.region(-fw, fw, fy + 0.3, 2.0)
    _paint(iv, _ramp(np.maximum(np.abs(xs) - 0.55 * fw, fy + 0.4 - ys), pxf), skin * 0.82)
    ellipse(0, 1.25, 0.95, 0.42, hair * 0.3 + np.asarray(ident.bg_b, np.float32) * 0.5)
    # Ears.
    for side in (-1, 1):
        ellipse(side * (fw + 0.01), fy - 0.05, 0.07, 0.12, skin * 0.9)
    # Face: the lower half stretches with the jaw and the chin.
    xs, ys, iv = cv.region(-fw - 0.02, fw + 0.02, fy - fh - 0.02, fy + fh + ident.chin + 0.15)
    b = np.where(ys > fy, fh + ident.chin + 0.07 * jaw, fh)
    a = np.where(ys > fy, fw * (1 - 0.8 * ident.chin * np.clip((ys - fy) / fh, 0, 1)), fw)
    _paint(iv, _ramp(_ellipse_sd(xs, ys, 0, fy, a, b), pxf), skin)
    # Hair on top of the head (in front of the forehead edge).
    if ident.hair_style in ("short", "fringe", "long", "bun"):
        top = fy - fh * (0.74 - 0.1 * vol)
        ha, hb = fw + 0.03 + 0.05 * vol, fh + 0.04 + 0.06 * vol
        xs, ys, iv = cv.region(-ha, ha, fy - 0.06 - hb, top + 0.02)
        d = np.maximum(_ellipse_sd(xs, ys, 0, fy - 0.06, ha, hb), ys - top)
        _paint(iv, _ramp(d, pxf), hair)
        if ident.hair_style == "fringe":  # over the forehead, clipped to the face outline
            xs, ys, iv = cv.region(-fw, fw, top - 0.2, top + 0.2)
            d = np.maximum(_ellipse_sd(xs, ys, -0.1 * fw, top, 0.75 * fw, 0.12 + 0.04 * vol, angle=0.15),
                           _ellipse_sd(xs, ys, 0, fy, fw, fh))
            _paint(iv, _ramp(d, pxf), hair)
    else:  # bald: a thin crescent of hair at the crown
        xs, ys, iv = cv.region(-fw - 0.05, fw + 0.05, fy - fh - 0.1, fy - 0.3 * fh)
        d = np.maximum(_ellipse_sd(xs, ys, 0, fy - 0.02, fw + 0.02, fh + 0.03),
                       -_ellipse_sd(xs, ys, 0, fy + 0.06 + 0.06 * vol, fw - 0.01, fh + 0.01))
        _paint(iv, _ramp(d, pxf) * (ys < fy - 0.3 * fh), hair)

    # Cheeks: blush that rises with the cheek raise (and, with speech_cheeks, drops and stretches with the jaw).
    k_sp = np.float32(speech_cheeks)
    cheek_a = np.clip(0.10 + 0.35 * ex["cheek"], 0, 0.6)
    blush = np.clip(skin * np.array([1.02, 0.78, 0.78], np.float32), 0, 1)
    for side in (-1, 1):
        ellipse(side * (ident.eye_gap + 0.03 + 0.02 * k_sp * sp["width"]),
                fy + 0.12 - 0.05 * ex["cheek"] + 0.05 * k_sp * jaw, 0.11, 0.075 * (1 + 0.4 * k_sp * jaw), blush,
                soft=3.0, opacity=cheek_a)

    # Speech cheeks: a soft shadow under each cheekbone that drops and lengthens as the jaw opens.
    if speech_cheeks > 0:
        for side in (-1, 1):
            ellipse(side * (ident.eye_gap + 0.04 + 0.02 * sp["width"]), ident.mouth_y + fy - 0.06 + 0.06 * jaw,
                    0.08, 0.05 * (1 + 0.8 * jaw), skin * 0.72, soft=4.0, opacity=0.6 * k_sp)

    # Eyes: aperture from identity, emotion and blink.
    ey = ident.eye_y + fy
    ap = ident.eye_h * np.clip(1 + ex["eye_open"], 0.25, 2.2) * (1 - 0.92 * blink.astype(np.float32).reshape(N, 1, 1))
    ap = np.maximum(ap, 0.006)
    iris = np.asarray(ident.eye_colour, np.float32)
    ri = 0.55 * ident.eye_h + 0.012
    for side in (-1, 1):
        cx = side * ident.eye_gap
        xs, ys, iv = cv.region(cx - ident.eye_w - 0.03, cx + ident.eye_w + 0.03, ey - 0.16, ey + 0.16)
        _paint(iv, _ramp(_ellipse_sd(xs, ys, cx, ey, ident.eye_w + 0.012, ap + 0.012), pxf), skin * 0.55)
        white = _ramp(_ellipse_sd(xs, ys, cx, ey, ident.eye_w, ap), pxf)
        _paint(iv, white, (0.96, 0.96, 0.94))
        _paint(iv, white * _ramp(_ellipse_sd(xs, ys, cx, ey, ri, ri), pxf), iris)
        _paint(iv, white * _ramp(_ellipse_sd(xs, ys, cx, ey, 0.45 * ri, 0.45 * ri), pxf), (0.02, 0.02, 0.02))
    # Brows: height and tilt from the emotion (inner end = towards the nose).
    brow_cy = ey - ident.eye_h - ident.brow_y - 0.07 * ex["brow_raise"] + 0.012 * ex["brow_tilt"]
    for side in (-1, 1):
        angle = side * 0.35 * ex["brow_tilt"]  # image y is down: + tilt lifts the inner end
        ellipse(side * (ident.eye_gap + 0.01), brow_cy, ident.brow_w, ident.brow_thick, hair * 0.55 + 0.04,
                angle=angle)

    # Nose: ridge shading, tip, nostrils (flare and lift with disgust).
    ny = ey + ident.nose_len
    ellipse(0.015, ny - 0.5 * ident.nose_len, 0.02, 0.5 * ident.nose_len, skin * 0.75, soft=2.0, opacity=0.35)
    ellipse(0, ny, ident.nose_w * 0.75, 0.035, skin * 0.85, opacity=0.6)
    nw = ident.nose_w * (1 + 0.25 * ex["nose"])
    for side in (-1, 1):
        ellipse(side * 0.55 * nw, ny + 0.02 - 0.015 * ex["nose"], 0.022, 0.012, skin * 0.35, opacity=0.8)
    # Nasolabial folds deepen with cheek raise (happy) and nose wrinkle (disgust).
    fold_a = np.clip(0.15 + 0.4 * ex["cheek"] + 0.3 * ex["nose"], 0, 0.7)
    for side in (-1, 1):
        fx = side * (np.max(nw) + 0.02)
        xs, ys, iv = cv.region(fx - 0.1, fx + 0.1, ny - 0.01, ny + 0.23)
        d = np.abs(_ellipse_sd(xs, ys, side * (nw + 0.02 + 0.02 * k_sp * sp["width"]), ny + 0.1 + 0.03 * k_sp * jaw,
                               0.08, 0.11 * (1 + 0.3 * k_sp * jaw))) - 0.006
        _paint(iv, _ramp(d, pxf) * fold_a * (np.abs(xs) < np.abs(nw + 0.02)) * (ys > ny), skin * 0.7)

    # Mouth: speech sets opening, width, rounding and jaw; the emotion changes them.
    op = np.clip(sp["open"] * (1 + ex["mouth_open"]), 0, 1.6)
    rnd = np.clip(sp["round"], 0, 1)
    hw = ident.mouth_w * (1 + 0.28 * (sp["width"] + ex["mouth_width"]) - 0.33 * rnd)  # half-width
    hw = np.maximum(hw, 0.05)
    my = ident.mouth_y + fy + 0.015 * jaw
    open_u = 0.004 + 0.035 * op + 0.030 * ex["upper_lip"]
    open_l = 0.004 + 0.050 * op + 0.06 * jaw
    tl = ident.lip_thick * (1 + 0.5 * rnd)
    xr = float(np.max(hw)) * 1.15
    xs, ys, iv = cv.region(-xr, xr, ident.mouth_y + fy - 0.2, ident.mouth_y + fy + 0.35)
    xn = xs / hw  # (N, h, w)
    prof = np.clip(1 - xn * xn, 0, 1) ** (1.0 - 0.5 * rnd)  # round lips -> elliptic, spread lips -> lens
    yc = my - CORNER_LIFT * ex["corner"] * xn * xn  # + corner lifts the ends (y is down)
    up_in = yc - open_u * prof
    lo_in = yc + open_l * prof
    lip_prof = np.clip(1 - (xs / (hw * 1.08)) ** 2, 0, 1) ** 0.5
    up_out = up_in - tl * (0.55 + 0.45 * lip_prof) * lip_prof
    lo_out = lo_in + 1.25 * tl * lip_prof
    lips = _ramp(np.maximum(np.maximum(up_out - ys, ys - lo_out), np.abs(xs) - hw * 1.06), pxf)
    _paint(iv, lips, ident.lip)
    hole = _ramp(np.maximum(np.maximum(up_in - ys, ys - lo_in), np.abs(xs) - hw), pxf)
    _paint(iv, hole, (0.18, 0.04, 0.05))
    teeth = hole * _ramp(np.maximum(ys - (up_in + 0.022), np.abs(xs) - 0.7 * hw), pxf)
    _paint(iv, teeth, (0.93, 0.92, 0.86))

    # Lighting: a directional gradient and an overall brightness per identity.
    lx, ly = ident.light_dir
    shade = ident.brightness * (1 + ident.light_gain * (lx * X + ly * Y))  # (H, W)
    img *= shade[None, None].astype(np.float32)
    np.clip(img, 0, 1, out=img)
    img = np.ascontiguousarray(img.transpose(0, 2, 3, 1))  # (N, H, W, 3)

    # Landmarks in face coordinates -> pixels (same formulas as the drawing above).
    def col(v):
        return np.broadcast_to(np.asarray(v, np.float32).reshape(-1), (N,)).astype(np.float32)

    t = 0.35 * ex["brow_tilt"].reshape(N)
    bcy, bw, bcx = brow_cy.reshape(N), ident.brow_w, ident.eye_gap + 0.01
    hw1, my1, tl1 = hw.reshape(N), my.reshape(N), tl.reshape(N)
    corner_y = my1 - CORNER_LIFT * ex["corner"].reshape(N)
    pts = [
        (col(-ident.eye_gap), col(ey)), (col(ident.eye_gap), col(ey)),
        (-bcx + bw * np.cos(t), bcy - bw * np.sin(t)), (-bcx - bw * np.cos(t), bcy + bw * np.sin(t)),
        (bcx - bw * np.cos(t), bcy - bw * np.sin(t)), (bcx + bw * np.cos(t), bcy + bw * np.sin(t)),
        (col(0.0), col(ny)),
        (-hw1, corner_y), (hw1, corner_y),
        (col(0.0), my1 - open_u.reshape(N) - tl1), (col(0.0), my1 + open_l.reshape(N) + 1.25 * tl1),
        (col(0.0), my1 - open_u.reshape(N)), (col(0.0), my1 + open_l.reshape(N)),
        (col(0.0), fy + fh + ident.chin + 0.07 * jaw.reshape(N)),
        (col(-fw), col(fy)), (col(fw), col(fy)),
    ]
    fx = np.stack([col(p[0]) for p in pts], 1)  # (N, L)
    fyy = np.stack([col(p[1]) for p in pts], 1)  # (N, L)
    r, t_x, t_y, scl = (v.reshape(N, 1) for v in (rot, tx, ty, np.exp(lsc)))
    ix = (np.cos(r) * fx - np.sin(r) * fyy) * scl + t_x
    iy = (np.sin(r) * fx + np.cos(r) * fyy) * scl + t_y
    lm = np.stack([to_pixels(ix, size, zoom), to_pixels(iy, size, zoom, centre_y)], -1)  # (N, L, 2) pixels
    return img, lm
