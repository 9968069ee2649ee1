"""Speech speeds with landmark jitter filtered out, real MEAD vs the renderer (issue 13, calibration).

`stccl calibrate` compares velocities that include dlib's frame-to-frame jitter on the real side. This
check smooths each per-frame signal with a 3-frame running median before taking the mean absolute step,
on the real source panels (dlib landmarks) and on the default preset's renderer landmarks (truth), and
prints the ratio of the medians over clips. A speed that is short of real only because the real one holds
jitter comes closer to 1 here.

    python experiments/smoothed_speed.py --synth data/synth_default --max-clips 9
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import median_filter

from stccl.data.synth import _read_meta
from stccl.real import calibration as cal
from stccl.real.published_clips import read_manifest

SIGNALS = ("mouth_open", "mouth_width", "jaw_drop")


def speeds(sig: dict[str, np.ndarray], fps: float) -> dict[str, float]:
    out = {}
    for name in SIGNALS:
        x = sig[name]
        out[f"{name}_vel"] = cal.velocity(x, fps)
        out[f"{name}_vel_smoothed"] = cal.velocity(median_filter(x, size=3, mode="nearest"), fps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--real", default="../shared/data/real_clips")
    ap.add_argument("--synth", default="data/synth_default")
    ap.add_argument("--max-clips", type=int, default=9)
    ap.add_argument("--table", default="reports/calibration/per_clip.csv", help="for the IOD scale of the truth rows")
    args = ap.parse_args()
    real_dir, root = Path(args.real), Path(args.synth)
    rows = []
    manifest = read_manifest(real_dir / "manifest.csv")
    for _, row in manifest.iterrows():
        lms, fps = cal.real_clip_landmarks(real_dir / row["clip"], row)
        rows.append({"source": "real", **speeds(cal.frame_signals(lms), fps)})
    per_clip = pd.read_csv(args.table)
    meta = _read_meta(root)
    iod_scale = float(per_clip[per_clip["source"] == f"{cal.source_label(meta)} truth"]["iod_scale"].median())
    signals, fps = cal.truth_clip_signals(root, iod_scale, max_clips=args.max_clips)
    rows += [{"source": "truth", **speeds(sig, fps)} for sig in signals]
    df = pd.DataFrame(rows)
    med = df.groupby("source").median()
    for col in med.columns:
        r, t = med.loc["real", col], med.loc["truth", col]
        print(f"{col:28s} real {r:.3f}  {meta['preset']} truth {t:.3f}  ratio {t / r:.2f}")


if __name__ == "__main__":
    main()
