"""Tune the renderer's speech gains on its own landmarks (issue 13, item 1; the default preset's gains).

Renders small neutral sets of the default preset with speech gains and head-motion scale overridden, and
prints the ratio of each speech and head statistic, read from the renderer's own landmark positions
(`stccl.real.calibration.truth_signals`), to the real MEAD median in a committed calibration table. The IOD
scale (dlib outer-eye-corner distance over the renderer's eye-centre distance) is the median of the default
preset's truth rows in that table. Each grid point is "open,width,jaw,pose_jitter":

    python experiments/speech_gain_grid.py 1.8,1,1,0.35 1.5,0.6,2,0.35    # about 1 min per point on one core
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from stccl.data import synth
from stccl.real import calibration as cal

SHOWN = ("mouth_open_amp", "mouth_open_vel", "mouth_width_amp", "mouth_width_vel", "jaw_drop_amp", "jaw_drop_vel",
         "head_x_amp", "head_y_amp", "head_roll_amp", "head_scale_amp")


def truth_ratios(root: Path, real: dict, iod_scale: float) -> dict[str, float]:
    signals, fps = cal.truth_clip_signals(root, iod_scale)
    med = cal.summarise(pd.DataFrame([cal.signal_statistics(sig, fps) for sig in signals]))
    return {s: round(med[s] / real[s], 2) for s in SHOWN}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("points", nargs="+", help="open,width,jaw,pose_jitter")
    ap.add_argument("--table", default="reports/calibration/per_clip.csv")
    ap.add_argument("--out", default="data/speech_gain_grid")
    ap.add_argument("--identities", type=int, default=4)
    ap.add_argument("--sentences", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    per_clip = pd.read_csv(args.table)
    real = cal.summarise(per_clip[per_clip["source"] == "real"])
    iod_scale = float(per_clip[per_clip["source"] == "synth default (112 px) truth"]["iod_scale"].median())
    for point in args.points:
        og, wg, jg, pj = (float(v) for v in point.split(","))
        cfg = synth.make_config("default", n_identities=args.identities, n_test=1, n_sentences=args.sentences,
                                emotions=("neutral", "happy"), workers=1, speech_open_gain=og,
                                speech_width_gain=wg, speech_jaw_gain=jg, pose_jitter=pj)
        root = Path(args.out) / point.replace(",", "_")
        if not (root / "meta.json").is_file():
            synth.synthesize(root, cfg, seed=args.seed, force=True, progress=False)
        print(f"open {og} width {wg} jaw {jg} pose {pj}: truth / real", truth_ratios(root, real, iod_scale),
              flush=True)


if __name__ == "__main__":
    main()
