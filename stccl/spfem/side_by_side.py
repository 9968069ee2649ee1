"""Frames of one held-out clip side by side: source, ground truth and each run's output, saved as .npz.

Notebook 04 saves them; the report only draws them (`stccl.pipeline.figures.side_by_side_figure`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from stccl.data.mead import EMOTIONS, MeadLayout, frames_to_tensor, resolve_test_actors
from stccl.data.synth import render_target
from stccl.io import atomic_path
from stccl.spfem.evaluate import generator_output_fn
from stccl.spfem.train import load_generator


def save_side_by_side(data_root: str | os.PathLike, runs: dict[str, Path], out: Path, emotion: str = "happy",
                      n_frames: int = 6) -> Path:
    """Frames of one held-out clip: source, ground truth and each run's output, saved as .npz for the figures."""
    root = Path(data_root)
    layout = MeadLayout(root)
    actor = resolve_test_actors(root)[0]
    clip = layout.clips(actor, "neutral")[0]
    n = layout.num_frames(actor, "neutral", clip)
    idx = np.linspace(0, n - 1, n_frames).round().astype(int)
    rows, frames = [], []
    for name, run in runs.items():
        G, cfg = load_generator(run, "cpu")
        source = layout.load_frames(actor, "neutral", clip, np.arange(n), cfg.size)  # (N, 3, H, W)
        with torch.no_grad():
            output = generator_output_fn(G, "cpu")(source, EMOTIONS.index(emotion), None).clamp(0, 1)
        if not rows:
            target = frames_to_tensor(render_target(root, actor, clip, emotion), cfg.size)
            rows += ["source (neutral)", f"ground truth ({emotion})"]
            frames += [source[idx], target[idx]]
        rows.append(name)
        frames.append(output[idx])
    arr = (torch.stack(frames).permute(0, 1, 3, 4, 2).numpy() * 255 + 0.5).astype(np.uint8)  # (R, N, H, W, 3)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, frames=arr, rows=np.array(rows), frame_index=idx, mouth_box=np.array(cfg.aux.mouth_box),
                            title=np.array(f"test actor {actor}, sentence {clip:03d}: neutral -> {emotion}"))
    return out
