"""Offline face tools: dlib HOG detector, 5/68-point landmarks, 128-d identity embedding.

The model files ship inside the `face-recognition-models` package (SPEC
section 6); nothing is downloaded. Models are loaded once per process, on
first use, so importing this module stays cheap.

Also here: batched 2-D similarity fits (complex least squares, equal to
Umeyama's method without reflection) used both to align faces to a template
and to normalise landmarks before comparing mouths.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stccl.io import StcclError

# dlib 68-point indices used by the evaluation.
MOUTH = np.arange(48, 68)
# Stable points for normalisation: eye corners and the nose bridge/base, which
# do not move when the person speaks or changes expression much.
STABLE = np.array([27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45])
EYE_OUTER = (36, 45)
INNER_LIP_TOP = np.array([61, 62, 63])
INNER_LIP_BOTTOM = np.array([67, 66, 65])
MOUTH_CORNERS = (48, 54)

# 5-point template (dlib order: left-eye outer, left-eye inner, right-eye outer,
# right-eye inner, nose base; "left" = the person's left = image right), as a
# fraction of the crop size. Measured as the mean over the source and output
# panels of the shipped real clips (already MEAD/NED-aligned 256 crops), then
# made left-right symmetric, so prepared frames are framed like those panels.
TEMPLATE_5 = np.array([
    [0.6535, 0.465],
    [0.5655, 0.465],
    [0.3465, 0.465],
    [0.4345, 0.465],
    [0.5000, 0.620],
])


def _model_dir() -> Path:
    """Folder holding the dlib model files of `face-recognition-models`."""
    try:
        import face_recognition_models as frm

        return Path(frm.pose_predictor_model_location()).parent
    except ModuleNotFoundError as exc:
        # face_recognition_models imports pkg_resources, which setuptools>=81 no
        # longer ships; the model files are still inside the package folder.
        if exc.name != "pkg_resources":
            raise StcclError("package face-recognition-models is not installed; "
                             "run `pip install face-recognition-models`") from None
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise StcclError("package face-recognition-models is not installed; "
                         "run `pip install face-recognition-models`")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_paths() -> dict[str, Path]:
    root = _model_dir()
    paths = {
        "landmarks68": root / "shape_predictor_68_face_landmarks.dat",
        "landmarks5": root / "shape_predictor_5_face_landmarks.dat",
        "embedder": root / "dlib_face_recognition_resnet_model_v1.dat",
    }
    for name, p in paths.items():
        if not p.is_file():
            raise StcclError(f"dlib model file for {name} missing: {p}; "
                             "reinstall face-recognition-models")
    return paths


@dataclass(frozen=True)
class FaceModels:
    detector: object
    landmarks5: object
    landmarks68: object
    embedder: object


@functools.lru_cache(maxsize=1)
def face_models() -> FaceModels:
    """The dlib models, loaded once per process (about 1 s)."""
    import dlib

    paths = model_paths()
    return FaceModels(
        detector=dlib.get_frontal_face_detector(),
        landmarks5=dlib.shape_predictor(str(paths["landmarks5"])),
        landmarks68=dlib.shape_predictor(str(paths["landmarks68"])),
        embedder=dlib.face_recognition_model_v1(str(paths["embedder"])),
    )


def detect(rgb: np.ndarray):
    """Largest dlib face rectangle in an (H, W, 3) uint8 image, or None.

    Tries the detector at native resolution first (about 6 ms on a 256 crop)
    and upsampled once only if that finds nothing (small faces).
    """
    det = face_models().detector
    for upsample in (0, 1):
        rects = det(rgb, upsample)
        if len(rects):
            return max(rects, key=lambda r: r.width() * r.height())
    return None


def _shape_to_array(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def landmarks(rgb: np.ndarray, rect, points: int = 68) -> np.ndarray:
    """(points, 2) landmark coordinates (x, y) inside `rect`."""
    m = face_models()
    predictor = m.landmarks68 if points == 68 else m.landmarks5
    return _shape_to_array(predictor(rgb, rect))


def embed(rgb: np.ndarray, rect) -> np.ndarray:
    """128-d dlib identity embedding of the face in `rect` -> (128,)."""
    m = face_models()
    shape = m.landmarks68(rgb, rect)
    return np.asarray(m.embedder.compute_face_descriptor(rgb, shape), dtype=np.float64)


def analyse_frames(frames: np.ndarray, embed_mask: np.ndarray | None = None,
                   points: int = 68) -> dict[str, np.ndarray]:
    """Detect, landmark and (where `embed_mask`) embed every frame of (N, H, W, 3) uint8.

    Returns found (N,) bool, landmarks (N, points, 2) and embeddings (N, 128);
    rows without a face (or not embedded) are NaN.
    """
    n = len(frames)
    found = np.zeros(n, bool)
    lms = np.full((n, points, 2), np.nan)
    embs = np.full((n, 128), np.nan)
    mask = np.zeros(n, bool) if embed_mask is None else np.asarray(embed_mask, bool)
    for i, img in enumerate(frames):  # dlib works one image at a time
        img = np.ascontiguousarray(img)
        rect = detect(img)
        if rect is None:
            continue
        found[i] = True
        lms[i] = landmarks(img, rect, points)
        if mask[i]:
            embs[i] = embed(img, rect)
    return {"found": found, "landmarks": lms, "embeddings": embs}


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity maps src -> dst for a batch of point sets.

    src: (N, K, 2), dst: (K, 2) or (N, K, 2). Writing points as complex
    numbers z, the map is z -> a z + b with complex a (scale and rotation) and
    b (translation); returns a (N,) and b (N,) complex arrays.
    """
    zs = src[..., 0] + 1j * src[..., 1]  # (N, K)
    zd = dst[..., 0] + 1j * dst[..., 1]  # (K,) or (N, K)
    zd = np.broadcast_to(zd, zs.shape)
    ms, md = zs.mean(-1, keepdims=True), zd.mean(-1, keepdims=True)
    cs, cd = zs - ms, zd - md
    a = (cd * np.conj(cs)).sum(-1) / np.maximum((np.abs(cs) ** 2).sum(-1), 1e-12)
    b = md[..., 0] - a * ms[..., 0]
    return a, b


def apply_similarity(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply per-item maps from `fit_similarity` to (N, K, 2) points."""
    z = points[..., 0] + 1j * points[..., 1]
    out = a[:, None] * z + b[:, None]
    return np.stack([out.real, out.imag], -1)


def similarity_matrix(a: complex, b: complex) -> np.ndarray:
    """3x3 homogeneous matrix of z -> a z + b."""
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag], [0.0, 0.0, 1.0]])


def normalise_landmarks(lms: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map (N, 68, 2) landmarks onto `reference` (68, 2) using the stable points only.

    Head motion and scale are removed; what remains in the mouth points is
    articulation (and expression), in the reference's units.
    """
    a, b = fit_similarity(lms[:, STABLE], reference[STABLE])
    return apply_similarity(a, b, lms)


def canonical_reference(lms: np.ndarray) -> np.ndarray:
    """A (68, 2) reference shape in inter-ocular units, centred on the eyes.

    The mean of the stable-point-aligned valid frames of `lms` (N, 68, 2), so
    distances measured after `normalise_landmarks` are in inter-ocular distances.
    """
    valid = lms[np.isfinite(lms).all((1, 2))]
    if not len(valid):
        raise ValueError("no valid landmarks to build a reference from")
    first = valid[0]
    iod = np.linalg.norm(first[EYE_OUTER[1]] - first[EYE_OUTER[0]])
    centre = (first[EYE_OUTER[0]] + first[EYE_OUTER[1]]) / 2
    ref = (first - centre) / max(iod, 1e-6)
    return normalise_landmarks(valid, ref).mean(0)


def mouth_opening(lms: np.ndarray) -> np.ndarray:
    """Inner-lip vertical gap over mouth width, per frame: (N, 68, 2) -> (N,)."""
    gap = np.linalg.norm(lms[:, INNER_LIP_TOP] - lms[:, INNER_LIP_BOTTOM], axis=-1).mean(-1)
    width = np.linalg.norm(lms[:, MOUTH_CORNERS[1]] - lms[:, MOUTH_CORNERS[0]], axis=-1)
    return gap / np.maximum(width, 1e-6)
