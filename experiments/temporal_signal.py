"""How much temporal signal do aligned neutral/emotional renditions share, at pixel level?

    python experiments/temporal_signal.py DATA_ROOT            # a synthetic root (needs ground_truth.parquet)
    python experiments/temporal_signal.py --factors            # render tiny sets without each nuisance

For 60 random neutral/emotional pairs, the mean cosine between consecutive-frame differences of the
two renditions at aligned path steps, over the whole frame and over a lower-central box around the
mouth (rows 62-90 %, columns 30-70 %), once along the DTW path of aligned_path.json and once along
the true timing (from the ground-truth sentence time). `--factors` renders the tiny preset with the
head-pose jitter, sensor noise + JPEG, blinks or all three removed, and with shared_motion, and
prints the same numbers for each (README, "What does not work yet").
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from stccl.data.synth import load_ground_truth, make_config, synthesize, true_frame_map


def true_paths(root: Path, dtw: dict) -> dict:
    """The official-format alignment given by the true timing: neutral frame i -> nearest emotional frame."""
    gt = load_ground_truth(root)
    s = {k: g.sort_values("frame")["sentence_time"].to_numpy() for k, g in gt.groupby(["actor", "emotion", "clip"])}
    out: dict = {}
    for actor, emotions in dtw.items():
        for emotion, pairs in emotions.items():
            for key in pairs:
                clip = int(key.split("_")[0])
                m = true_frame_map(s[(actor, "neutral", clip)], s[(actor, emotion, clip)])
                idx = np.clip(np.round(m), 0, len(s[(actor, emotion, clip)]) - 1).astype(int)
                out.setdefault(actor, {}).setdefault(emotion, {})[key] = [list(range(len(m))), idx.tolist()]
    return out


def _frames(root: Path, actor: str, emotion: str, clip: int) -> np.ndarray:
    d = root / actor / "align_img" / emotion / f"{clip:03d}"
    return np.stack([np.asarray(Image.open(p).convert("L"), np.float32) / 255 for p in sorted(d.glob("*.jpg"))])


def _mean_cos(u: np.ndarray, v: np.ndarray) -> float:
    # u, v: (steps, pixels) frame differences of the two renditions
    nu, nv = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    ok = (nu > 1e-6) & (nv > 1e-6)
    return float(((u[ok] * v[ok]).sum(1) / nu[ok] / nv[ok]).mean())


def temporal_signal(root: Path, pairs: int = 60, seed: int = 0) -> dict:
    dtw = json.loads((root / "aligned_path.json").read_text())
    paths = {"dtw": dtw, "true": true_paths(root, dtw)}
    keys = [(a, e, k) for a in dtw for e in dtw[a] for k in dtw[a][e]]
    rng = np.random.default_rng(seed)
    acc: dict = {}
    for i in rng.choice(len(keys), min(pairs, len(keys)), replace=False):
        actor, emotion, key = keys[i]
        clip = int(key.split("_")[0])
        fn, fe = _frames(root, actor, "neutral", clip), _frames(root, actor, emotion, clip)
        H, W = fn.shape[1:]
        box = (slice(int(0.62 * H), int(0.9 * H)), slice(int(0.3 * W), int(0.7 * W)))
        for name, p in paths.items():
            i_n, i_e = map(np.asarray, p[actor][emotion][key])
            dn, de = np.diff(fn[i_n], axis=0), np.diff(fe[i_e], axis=0)  # (steps - 1, H, W)
            acc.setdefault(f"{name}_frame", []).append(_mean_cos(dn.reshape(len(dn), -1), de.reshape(len(de), -1)))
            acc.setdefault(f"{name}_mouth", []).append(
                _mean_cos(dn[:, box[0], box[1]].reshape(len(dn), -1), de[:, box[0], box[1]].reshape(len(de), -1)))
    return {k: round(float(np.mean(v)), 3) for k, v in acc.items()}


FACTORS = {
    "as_rendered": {},
    "no_pose_jitter": {"pose_jitter": 0.0},
    "no_noise_jpeg": {"noise_std": 0.0, "jpeg_quality": 100},
    "no_blinks": {"blink_rate": 0.0},
    "none_of_the_three": {"pose_jitter": 0.0, "noise_std": 0.0, "jpeg_quality": 100, "blink_rate": 0.0},
    "shared_motion": {"shared_motion": True},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", help="a synthetic data root")
    ap.add_argument("--factors", action="store_true", help="render tiny sets without each nuisance and compare")
    args = ap.parse_args()
    if args.root:
        print(json.dumps({"root": args.root, **temporal_signal(Path(args.root))}))
    if args.factors:
        with tempfile.TemporaryDirectory() as tmp:
            for name, overrides in FACTORS.items():
                out = Path(tmp) / name
                synthesize(out, make_config("tiny", **overrides), seed=0, force=True, progress=False)
                print(json.dumps({"factor": name, **temporal_signal(out)}), flush=True)
    if not (args.root or args.factors):
        ap.error("give a DATA_ROOT, --factors, or both")


if __name__ == "__main__":
    main()
