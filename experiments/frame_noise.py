"""Frame-to-frame noise of real and synthetic clips, as the metric sees them (64 px).

The temporal correlations are built from frame differences; sensor noise drawn afresh every frame
adds difference everywhere and drowns the speech motion. This measures, on the source panels of the
real MEAD clips (../shared/data/real_clips) and on synthetic roots:

- `static`: median over frame pairs of the mean absolute frame difference in the top-left 8x8 corner
  (background in real MEAD crops: what changes where nothing moves);
- `lower_face`: the same in the lower-face box (rows 40-60, columns 16-48 of 64), where speech moves.

    python experiments/frame_noise.py --synth data/synth_default [more roots] --out reports/calibration/frame_noise.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from stccl.data.mead import MeadLayout
from stccl.pipeline.figures import markdown
from stccl.real.published_clips import read_manifest, row_panels
from stccl.real.video import panel_box, read_frames

SIZE = 64


def frame_noise(frames: np.ndarray) -> tuple[float, float]:
    """(static, lower_face) for uint8 frames (N, H, W, 3) of any size, resized to 64 px."""
    f = np.stack([np.asarray(Image.fromarray(x).resize((SIZE, SIZE), Image.BILINEAR)) for x in frames])
    d = np.abs(np.diff(f.astype(np.float32) / 255.0, axis=0))  # (N-1, 64, 64, 3)
    return float(np.median(d[:, :8, :8].mean((1, 2, 3)))), float(np.median(d[:, 40:60, 16:48].mean((1, 2, 3))))


def real_rows(clips: Path) -> list[tuple[float, float]]:
    manifest = read_manifest(clips / "manifest.csv")
    out = []
    for _, row in manifest.iterrows():
        frames, _ = read_frames(clips / row["clip"])
        x0, x1 = panel_box(row_panels(row)["source"], int(row["panel_size"]), int(row["panel_gap"]))
        out.append(frame_noise(frames[:, :, x0:x1]))
    return out


def synth_rows(root: Path, max_clips: int) -> list[tuple[float, float]]:
    layout = MeadLayout(root)
    out = []
    for actor in layout.actors():
        for clip in layout.clips(actor, "neutral"):
            n = layout.num_frames(actor, "neutral", clip)
            frames = np.stack([np.asarray(Image.open(layout.frame_path(actor, "neutral", clip, f)).convert("RGB"))
                               for f in range(n)])
            out.append(frame_noise(frames))
            if len(out) >= max_clips:
                return out
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", default="../shared/data/real_clips")
    p.add_argument("--synth", nargs="*", default=["data/synth_default"])
    p.add_argument("--max-clips", type=int, default=10)
    p.add_argument("--out", default=None, help="write the Markdown table here")
    args = p.parse_args()
    rows = []
    for name, vals in [("real MEAD source panels", real_rows(Path(args.real)))] + \
            [(f"synthetic {root}", synth_rows(Path(root), args.max_clips)) for root in args.synth]:
        v = np.array(vals)
        rows.append({"clips": name, "n": len(v), "static (median)": float(np.median(v[:, 0])),
                     "lower_face (median)": float(np.median(v[:, 1]))})
    df = pd.DataFrame(rows)
    df["lower_face / static"] = df["lower_face (median)"] / df["static (median)"].clip(lower=1e-6)
    text = ("Mean absolute frame difference at 64 px (0..1 scale), median over clips; `python "
            "experiments/frame_noise.py --synth " + " ".join(args.synth) + "`\n\n"
            + markdown(df, ".5f") + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
