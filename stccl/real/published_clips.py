"""Evaluate real SPFEM outputs against their source video: `stccl eval-clips`.

Each clip is a side-by-side video; manifest.csv names its panels. Panels
called `source`, `label` or `reference` are roles (only the source is
measured: it is what every output is compared with); every other panel name
is a method (the shipped clips: baseline, stccl_cm, stccl_vd). `--baseline
NAME` picks the method the paired tests compare against, by default the first
method panel. An optional panel_K_method column says which published method
panel K shows; the table repeats it for the baseline, or says "unknown".
For every clip and method this measures, on sampled frames:

- CSIM: cosine similarity of dlib 128-d identity embeddings, output vs the
  source frame at the same time (identity preservation, higher is better);
- FAD: Frechet distance between the method's and the source's embeddings,
  pooled over all clips (lower is better; per clip there are too few frames
  for a 128-d covariance);
- mouth distance: mean L2 between the output's and the source's mouth
  landmarks (48-67) after mapping each face onto the source's reference shape
  with a similarity fitted on stable points (eye corners, nose), in
  inter-ocular distances (speech preservation, lower is better). It also
  moves when the expression legitimately changes the mouth shape (a smile),
  so read it together with
- mouth-opening correlation: Pearson r over time between the output's and the
  source's inner-lip gap / mouth width (lip-sync with the source, higher is
  better; insensitive to a constant expression offset); also the best r over
  lags of up to about 4 frames, and that lag, since a generator may trail
  its driving video by a frame or two. For the other methods, the same
  correlation against the baseline output tells whether the methods agree
  with each other more than with the source.

- LSE-D / LSE-C (SyncNet, stccl.real.syncnet): only when the user supplies the
  public syncnet_v2.model (--syncnet-weights or $STCCL_SYNCNET_WEIGHTS);
  every frame of the source and method panels is cropped around its dlib
  landmark box and scored against the clip's audio. Without the file the
  table says "not computed" and where to put it.

At about 550 lines this stays one module: the manifest's roles, the per-clip
measures, the paired test against the baseline, the tables and the batch over
the manifest are one command's pieces and read the same panel names.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from stccl.io import StcclError, atomic_path, atomic_write_csv, atomic_write_json, atomic_write_text
from stccl.real import dlib_faces, syncnet
from stccl.real.video import probe, read_audio, read_frames, split_panel
from stccl.spfem.scores import cosine_similarity, frechet_distance

REQUIRED_COLUMNS = ("clip", "target_emotion", "panel_size", "panel_gap")
SOURCE = "source"
ROLES = (SOURCE, "label", "reference")  # panels that are not a method's output; only the source is measured
# display names of the shipped panels; any other method panel shows under its own name
METHOD_LABELS = {"baseline": "baseline", "stccl_cm": "STCCL-CM", "stccl_vd": "STCCL-VD"}


def method_label(name: str) -> str:
    return METHOD_LABELS.get(name, name)


def _panel_columns(columns) -> list[str]:
    return sorted((c for c in columns if c.startswith("panel_") and c[6:].isdigit()), key=lambda c: int(c[6:]))


def row_panels(row) -> dict[str, int]:
    """{panel name: panel index} of one manifest row, in panel order; empty cells are no panel."""
    out = {}
    for c in _panel_columns(row.index):
        name = "" if row[c] is None or (isinstance(row[c], float) and np.isnan(row[c])) else str(row[c]).strip()
        if name:
            out.setdefault(name, int(c[6:]))
    return out


def row_methods(row) -> list[str]:
    """The method panels of one row in panel order: every panel that is not a role (source, label, reference)."""
    return [name for name in row_panels(row) if name not in ROLES]


def read_manifest(path: str | Path) -> "pandas.DataFrame":  # noqa: F821
    """Load manifest.csv and check every row has a source panel and the same method panels.

    Panels named source, label or reference are roles; every other panel
    name is a method whose output is scored against the source. Windows
    line endings and a UTF-8 byte-order mark are accepted.
    """
    import io

    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise StcclError(f"manifest not found: {path}")
    try:
        # read_text's universal newlines turn CRLF into LF, so no cell keeps a trailing \r
        df = pd.read_csv(io.StringIO(path.read_text(encoding="utf-8-sig")))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StcclError(f"{path}: not a readable CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    panel_cols = _panel_columns(df.columns)
    if not panel_cols:
        missing.append("panel_0..panel_K")
    if missing:
        raise StcclError(f"{path}: missing column(s) {', '.join(missing)}; expected clip, target_emotion, "
                         "panel_size, panel_gap and panel_0..panel_K naming each panel (source, label or "
                         "reference, or a method's name)")
    for c in ["clip", "target_emotion"] + panel_cols + [c + "_method" for c in panel_cols if c + "_method" in df]:
        df[c] = df[c].map(lambda v: "" if pd.isna(v) else str(v).strip())
    first = None
    for i, row in df.iterrows():
        names = [row[c] for c in panel_cols if row[c]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise StcclError(f"{path}: row {i + 2} ({row['clip']}) names more than one panel {', '.join(twice)}")
        if SOURCE not in names:
            raise StcclError(f"{path}: row {i + 2} ({row['clip']}) has no panel called {SOURCE}")
        methods = row_methods(row)
        if not methods:
            raise StcclError(f"{path}: row {i + 2} ({row['clip']}) has no method panel (a panel not called "
                             f"{', '.join(ROLES)})")
        if first is None:
            first = methods
        elif set(methods) != set(first):
            raise StcclError(f"{path}: row {i + 2} ({row['clip']}) has method panels {', '.join(methods)} but "
                             f"row 2 has {', '.join(first)}; every clip needs the same methods")
    return df


def manifest_methods(df) -> list[str]:
    """The method panels of a checked manifest, in the panel order of its first row."""
    return row_methods(df.iloc[0])


def choose_baseline(methods: list[str], baseline: str | None, manifest: str | Path) -> str:
    """`baseline` if it is one of the method panels, else the first method panel when None."""
    if baseline is None:
        return methods[0]
    if baseline not in methods:
        what = "a role, not a method" if baseline in ROLES else "not a panel of it"
        raise StcclError(f"{manifest}: --baseline {baseline!r} is {what}; method panels: {', '.join(methods)} "
                         f"(source, label and reference are roles)")
    return baseline


def published_method(df, name: str) -> str:
    """Which published method panel `name` shows, from the optional panel_K_method columns, else "unknown"."""
    seen = []
    for _, row in df.iterrows():
        k = row_panels(row)[name]
        seen.append(str(row.get(f"panel_{k}_method", "") or "") or "unknown")
    counts = {v: seen.count(v) for v in dict.fromkeys(seen)}
    if len(counts) == 1:
        return seen[0]
    return ", ".join(f"{v} in {n} clip(s)" for v, n in counts.items())


def sample_indices(num_frames: int, stride: int, max_frames: int | None) -> np.ndarray:
    """Every `stride`-th frame, then at most `max_frames` of them spread evenly."""
    idx = np.arange(0, num_frames, max(1, stride))
    if max_frames and len(idx) > max_frames:
        idx = idx[np.linspace(0, len(idx) - 1, max_frames).round().astype(int)]
    return idx


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() < 1e-9 or b[ok].std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def lagged_pearson(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Best Pearson r of b shifted by -max_lag..max_lag samples against a, and that lag.

    A positive lag means b trails a (output late relative to the source).
    """
    best, best_lag = float("nan"), 0
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(0, -lag): len(a) - max(0, lag)]
        y = b[max(0, lag): len(b) - max(0, -lag)]
        r = _pearson(x, y)
        if np.isfinite(r) and not (r <= best):
            best, best_lag = r, lag
    return best, best_lag


def panel_lse(video: Path, row, analyses: dict, idx: np.ndarray, frames: np.ndarray | None, fps: float,
              net) -> dict:
    """SyncNet scores {role: {"lse_d", "lse_c", "offset", "windows"} or None} of every panel.

    `analyses[role]["landmarks"]` on frames `idx` give the face boxes;
    `frames` are all frames of the clip in order, or None to decode them
    again (when only some frames were sampled). A panel with no face on any
    sampled frame gets None.
    """
    sound = read_audio(video)
    if sound is None:
        raise StcclError(f"{video}: no audio stream, so LSE-D cannot be computed; "
                         f"unset {syncnet.ENV_VAR} / --syncnet-weights to skip it")
    if frames is None:
        frames, _ = read_frames(video)
    size, gap = int(row["panel_size"]), int(row["panel_gap"])
    panels = row_panels(row)
    out = {}
    for role in [SOURCE] + row_methods(row):
        panel = split_panel(frames, panels[role], size, gap, source=video)  # (N, H, size, 3)
        boxes = syncnet.boxes_from_landmarks(analyses[role]["landmarks"], idx, len(panel))
        out[role] = None if boxes is None else syncnet.lse(syncnet.crop_faces(panel, boxes), sound[0], fps,
                                                            sound[1], net)
    return out


def evaluate_clip(video: Path, row, stride: int = 1, max_frames: int | None = None,
                  embed_stride: int = 6, syncnet=None, baseline: str | None = None) -> dict:
    """Measure every method panel of one side-by-side clip against its source panel.

    Method panels are the row's panels not called source, label or
    reference; `baseline` (default: the first of them) is the one the others'
    mouth-opening r is also measured against.

    Landmarks on frames sample_indices(stride, max_frames); embeddings on
    every `embed_stride`-th of those (the embedder is ~15x slower than the
    landmarks); SyncNet scores on every frame when `syncnet` (a loaded
    stccl.real.syncnet.SyncNet) is given. Returns {"rows": [per-method dicts], "embeddings": {role: (M, 128)},
    "sampled": [...], "embedded": [...]}.
    """
    info = probe(video)
    if info.num_frames:
        idx = sample_indices(info.num_frames, stride, max_frames)
        frames, fps = read_frames(video, indices=idx)
    else:  # container does not declare a count: decode all, then sample
        frames, fps = read_frames(video)
        idx = sample_indices(len(frames), stride, max_frames)
        frames = frames[idx]
    idx = idx[: len(frames)]
    emb_mask = np.zeros(len(idx), bool)
    emb_mask[:: max(1, embed_stride)] = True
    size, gap = int(row["panel_size"]), int(row["panel_gap"])
    panels, methods = row_panels(row), row_methods(row)
    baseline = choose_baseline(methods, baseline, video)
    res = {}
    for role in [SOURCE] + methods:
        panel = split_panel(frames, panels[role], size, gap, source=video)
        res[role] = dlib_faces.analyse_frames(panel, embed_mask=emb_mask)
    src = res["source"]
    if not src["found"].any():
        raise StcclError(f"{video}: no face found in the source panel of any sampled frame")
    ref = dlib_faces.canonical_reference(src["landmarks"])
    src_norm = dlib_faces.normalise_landmarks(src["landmarks"], ref)  # NaN rows stay NaN
    src_open = dlib_faces.mouth_opening(src["landmarks"])
    step = int(np.median(np.diff(idx))) if len(idx) > 1 else 1  # frames between samples
    max_lag = max(1, round(4 / step))  # about +-4 frames (0.16 s at 25 fps)
    base_open = dlib_faces.mouth_opening(res[baseline]["landmarks"])
    # every frame decoded in order already when nothing was skipped
    sync = None if syncnet is None else panel_lse(video, row, res, idx, frames if stride <= 1 and not max_frames else None,
                                                  fps, syncnet)
    rows, embs = [], {"source": src["embeddings"][emb_mask & src["found"]]}
    for m in methods:
        r = res[m]
        both = src["found"] & r["found"]
        norm = dlib_faces.normalise_landmarks(r["landmarks"], ref)
        mouth = np.linalg.norm(norm[:, dlib_faces.MOUTH] - src_norm[:, dlib_faces.MOUTH], axis=-1).mean(-1)  # (N,)
        emb_both = both & emb_mask
        r_lag, lag = lagged_pearson(src_open, dlib_faces.mouth_opening(r["landmarks"]), max_lag)
        cs = cosine_similarity(src["embeddings"][emb_both], r["embeddings"][emb_both]) if emb_both.any() else np.array([])
        rows.append({
            "clip": video.name, "target_emotion": row["target_emotion"], "method": m,
            "csim": float(cs.mean()) if len(cs) else float("nan"),
            "mouth_dist": float(np.nanmean(mouth[both])) if both.any() else float("nan"),
            "mouth_open_r": _pearson(dlib_faces.mouth_opening(r["landmarks"]), src_open),
            "mouth_open_r_best_lag": r_lag,
            "best_lag_frames": lag * step,
            "mouth_open_r_vs_baseline": _pearson(dlib_faces.mouth_opening(r["landmarks"]), base_open) if m != baseline else float("nan"),
            "mouth_open_mean": float(np.nanmean(dlib_faces.mouth_opening(r["landmarks"])[both])) if both.any() else float("nan"),
            "source_open_mean": float(np.nanmean(src_open[both])) if both.any() else float("nan"),
            "frames_sampled": int(len(idx)), "frames_with_face": int(both.sum()),
            "frames_embedded": int(emb_both.sum()),
        })
        if sync is not None:
            nan = {"lse_d": float("nan"), "lse_c": float("nan"), "offset": float("nan")}  # no face in that panel
            mine, src_s = sync[m] or nan, sync["source"] or nan
            rows[-1].update({"lse_d": mine["lse_d"], "lse_c": mine["lse_c"], "lse_offset": mine["offset"],
                             "source_lse_d": src_s["lse_d"], "source_lse_c": src_s["lse_c"]})
        embs[m] = r["embeddings"][emb_mask & r["found"]]
    return {"rows": rows, "embeddings": embs, "sampled": idx.tolist(),
            "embedded": idx[emb_mask].tolist(), "fps": fps, "num_frames": info.num_frames}


# metric -> True when higher is better
PAIRED_METRICS = {"csim": True, "mouth_dist": False, "mouth_open_r": True}


def paired_vs_baseline(per_clip, baseline: str = "baseline") -> "pandas.DataFrame":  # noqa: F821
    """Per other method and metric: clips where it beats `baseline`, and a Wilcoxon signed-rank p.

    Methods come in the order of `per_clip`. Ten clips is a small sample;
    this says whether a mean difference is consistent across clips or
    driven by one or two of them.
    """
    import pandas as pd
    from scipy.stats import wilcoxon

    wide = per_clip.pivot(index="clip", columns="method")
    rows = []
    for m in (m for m in dict.fromkeys(per_clip["method"]) if m != baseline):
        for metric, higher in PAIRED_METRICS.items():
            diff = (wide[(metric, m)] - wide[(metric, baseline)]).dropna().to_numpy()
            better = diff > 0 if higher else diff < 0
            p = float(wilcoxon(diff).pvalue) if len(diff) >= 5 and np.any(diff != 0) else float("nan")
            rows.append({"method": m, "baseline": baseline, "metric": metric,
                         "mean_diff_vs_baseline": float(diff.mean()) if len(diff) else float("nan"),
                         "clips_better": int(better.sum()), "clips": int(len(diff)), "wilcoxon_p": p})
    return pd.DataFrame(rows, columns=["method", "baseline", "metric", "mean_diff_vs_baseline", "clips_better",
                                       "clips", "wilcoxon_p"])


def _figure(df, fad: dict, path: Path) -> None:
    """Box plots per method (in the order of `fad`) of the per-clip metrics, and pooled FAD."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = df.assign(method=df["method"].map(method_label))
    order = [method_label(m) for m in fad]
    panels = [("csim", "CSIM vs source (higher better)"), ("mouth_dist", "mouth distance, IOD (lower better)"),
              ("mouth_open_r", "mouth-opening r vs source (higher better)")]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    for ax, (col, title) in zip(axes, panels):
        sns.boxplot(data=d, x="method", y=col, order=order, ax=ax, color="0.85", showfliers=False)
        sns.stripplot(data=d, x="method", y=col, order=order, hue="target_emotion", ax=ax, dodge=False,
                      size=6, legend=col == "csim")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("")
    axes[0].legend(fontsize=7, title="target emotion", title_fontsize=7, loc="lower left")
    sns.barplot(x=order, y=list(fad.values()), ax=axes[3], color="tab:blue")
    axes[3].set_title("FAD vs source, all clips (lower better)", fontsize=10)
    fig.suptitle(f"Published SPFEM outputs on {df['clip'].nunique()} real MEAD clips (dlib embeddings/landmarks)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def markdown_table(summary, baseline: str = "baseline") -> str:
    """One row per method of `summary`; the `baseline` row is marked when its name does not say so."""
    has_lse = "lse_d" in summary.columns
    cols = ["method", "CSIM ↑", "FAD ↓", "mouth dist (IOD) ↓", "mouth-open r ↑", "r at best lag", "median lag", "mouth-open r vs baseline",
            "clips", "frames"] + ["LSE-D ↓", "LSE-C ↑", "source LSE-D / LSE-C"] * has_lse
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    name_is_not_baseline = method_label(baseline) != "baseline"
    for _, s in summary.iterrows():
        lse = (f" {s['lse_d']:.3f} ± {s['lse_d_sd']:.3f} | {s['lse_c']:.3f} ± {s['lse_c_sd']:.3f} | "
               f"{s['source_lse_d']:.3f} / {s['source_lse_c']:.3f} |") if has_lse else ""
        name = method_label(s["method"]) + (" (baseline)" if s["method"] == baseline and name_is_not_baseline else "")
        lines.append(f"| {name} | {s['csim']:.3f} ± {s['csim_sd']:.3f} | {s['fad']:.4f} | "
                     f"{s['mouth_dist']:.4f} ± {s['mouth_dist_sd']:.4f} | {s['mouth_open_r']:.3f} ± {s['mouth_open_r_sd']:.3f} | "
                     f"{s['mouth_open_r_best_lag']:.3f} | {s['median_best_lag_frames']:+.0f} | "
                     f"{'—' if not np.isfinite(s['mouth_open_r_vs_baseline']) else format(s['mouth_open_r_vs_baseline'], '.3f')} | "
                     f"{int(s['clips'])} | {int(s['frames'])} |" + lse)
    return "\n".join(lines) + "\n"


def lse_note(weights: Path | None) -> str:
    """The table's sentence on LSE-D / LSE-C: how they were computed, or why not and how to enable them."""
    if weights is None:
        return (f"LSE-D / LSE-C (SyncNet) are {syncnet.NOT_COMPUTED}: they need the public syncnet_v2.model weights, "
                f"which the kit cannot download; {syncnet.WEIGHTS_HINT} (or pass --syncnet-weights).")
    return (f"LSE-D / LSE-C: SyncNet ({weights}) on every frame of each panel cropped around its dlib landmark "
            "box, against the clip's audio, offsets -15..15 frames (LSE-D = min over offsets of the mean "
            "distance, lower better; LSE-C = median minus min, higher better); source = the same on the "
            "source panel.")


def baseline_note(df, manifest: Path, baseline: str, chosen_by: str) -> str:
    """The table's sentence naming the baseline panel and, if the manifest says, the published method it shows."""
    shows = published_method(df, baseline)
    source = (f"unknown: {manifest.name} does not say (an optional panel_K_method column would)"
              if shows == "unknown" else f"{shows} (from {manifest.name}'s panel_K_method column)")
    return (f"Baseline (the paired tests and the 'vs baseline' column compare against it): panel `{baseline}`, "
            f"{chosen_by}; the published method it shows: {source}.")


_WORKER_NETS: dict = {}


def _evaluate_job(job) -> dict:
    """One clip (in a worker process when --workers > 1); the SyncNet weights load once per process."""
    video, row, stride, max_frames, embed_stride, weights, baseline = job
    net = None
    if weights is not None:
        net = _WORKER_NETS.get(str(weights)) or _WORKER_NETS.setdefault(str(weights), syncnet.load_syncnet(weights))
    return evaluate_clip(video, row, stride, max_frames, embed_stride, syncnet=net, baseline=baseline)


def eval_clips(clips_dir: str | Path, manifest: str | Path | None = None, out: str | Path = "reports/real_clips",
               stride: int = 1, max_frames: int | None = None, embed_stride: int = 6,
               limit: int | None = None, syncnet_weights: str | Path | None = None, workers: int = 1,
               baseline: str | None = None) -> dict:
    """Run the evaluation over every clip of the manifest and write CSV, Markdown and PNG to `out`.

    Every panel not called source, label or reference is a method; the
    paired tests compare each method with `baseline` (default: the first
    method panel of the manifest's first row); an unknown name fails before
    any clip is read. LSE-D/LSE-C are added when `syncnet_weights` or $STCCL_SYNCNET_WEIGHTS
    names the SyncNet weight file (checked before any clip is read).
    """
    import pandas as pd
    from tqdm import tqdm

    t0 = time.perf_counter()
    clips_dir = Path(clips_dir)
    man_path = Path(manifest) if manifest else clips_dir / "manifest.csv"
    if not man_path.is_absolute() and not man_path.exists() and (clips_dir / man_path).exists():
        man_path = clips_dir / man_path
    df = read_manifest(man_path)
    methods = manifest_methods(df)
    chosen_by = "--baseline" if baseline is not None else "the first method panel"
    baseline = choose_baseline(methods, baseline, man_path)
    if limit:
        df = df.head(limit)
    for name in df["clip"]:
        if not (clips_dir / name).is_file():
            raise StcclError(f"{man_path}: clip {name} listed but {clips_dir / name} does not exist")
    weights = syncnet.syncnet_weights_path(syncnet_weights)
    if weights is not None:
        syncnet.load_syncnet(weights)  # a bad weight file fails here, before any clip is read
    jobs = [(clips_dir / row["clip"], row, stride, max_frames, embed_stride, weights, baseline)
            for _, row in df.iterrows()]
    rows, embs, sampling = [], {r: [] for r in [SOURCE] + methods}, {}
    workers = max(1, min(workers, len(jobs)))
    with contextlib.ExitStack() as stack:
        if workers > 1:
            # Clips are independent; dlib and the embedder are single-threaded, so one process per core.
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")))
            results = pool.map(_evaluate_job, jobs)
        else:
            results = map(_evaluate_job, jobs)
        results = list(tqdm(results, total=len(jobs), desc="eval-clips", unit="clip"))
    for (_, row, *_), res in zip(jobs, results):
        rows += res["rows"]
        for k, v in res["embeddings"].items():
            embs[k].append(v)
        sampling[row["clip"]] = {"num_frames": res["num_frames"], "fps": res["fps"],
                                 "landmark_frames": res["sampled"], "embedding_frames": res["embedded"]}
    per_clip = pd.DataFrame(rows)
    pooled = {k: np.concatenate(v) for k, v in embs.items()}
    fad = {m: frechet_distance(pooled[m], pooled[SOURCE]) for m in methods}
    g = per_clip.groupby("method", sort=False)

    def per_method(col: str, how: str = "mean") -> list:
        return [getattr(g.get_group(m)[col], how)(**({"ddof": 0} if how == "std" else {})) for m in methods]

    summary = pd.DataFrame({
        "method": methods,
        "csim": per_method("csim"), "csim_sd": per_method("csim", "std"),
        "fad": [fad[m] for m in methods],
        "mouth_dist": per_method("mouth_dist"), "mouth_dist_sd": per_method("mouth_dist", "std"),
        "mouth_open_r": per_method("mouth_open_r"), "mouth_open_r_sd": per_method("mouth_open_r", "std"),
        "mouth_open_r_best_lag": per_method("mouth_open_r_best_lag"),
        "median_best_lag_frames": per_method("best_lag_frames", "median"),
        "mouth_open_r_vs_baseline": per_method("mouth_open_r_vs_baseline"),
        "clips": [len(g.get_group(m)) for m in methods],
        "frames": [int(v) for v in per_method("frames_with_face", "sum")],
        "embeddings": [len(pooled[m]) for m in methods],
    })
    if weights is not None:
        for col in ("lse_d", "lse_c"):
            summary[col] = per_method(col)
            summary[col + "_sd"] = per_method(col, "std")
            summary["source_" + col] = per_method("source_" + col)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds = time.perf_counter() - t0
    atomic_write_csv(out / "per_clip.csv", per_clip, float_format="%.5f")
    atomic_write_csv(out / "summary.csv", summary, float_format="%.5f")
    header = (f"Real published SPFEM outputs vs their source, {len(df)} clips from {man_path}; "
              f"landmarks every {stride} frame(s)" + (f" (at most {max_frames} per clip)" if max_frames else "")
              + f", identity embeddings on every {embed_stride}th of those; "
              f"source embeddings pooled for FAD: {len(pooled['source'])}. Mean ± SD over clips "
              "(FAD pooled over clips).\n\n"
              + baseline_note(df, man_path, baseline, chosen_by) + "\n\n")
    paired = paired_vs_baseline(per_clip, baseline)
    atomic_write_csv(out / "paired_vs_baseline.csv", paired, float_format="%.5f")
    paired_md = ["", f"Paired with the baseline panel `{baseline}`, per clip (Wilcoxon signed-rank p, two-sided):",
                 "", "| method | metric | mean diff vs baseline | clips better | p |", "|---|---|---|---|---|"]
    paired_md += [f"| {method_label(r.method)} | {r.metric} | {r.mean_diff_vs_baseline:+.4f} | "
                  f"{r.clips_better}/{r.clips} | {r.wilcoxon_p:.3f} |" for r in paired.itertuples()]
    notes = ("\nColumns: CSIM and FAD on dlib 128-d identity embeddings (output vs source frame); mouth dist = "
             "mean L2 of mouth landmarks 48-67 after a similarity fit on eye/nose points, in inter-ocular "
             "distances; mouth-open r = Pearson r over time of inner-lip gap / mouth width vs the source; "
             "r at best lag = the best r over shifts of up to about 4 frames, median lag in frames (negative: "
             "output ahead of source); r vs baseline = the same correlation against the baseline output. ")
    notes += lse_note(weights) + "\n"
    atomic_write_text(out / "table.md", header + markdown_table(summary, baseline) + "\n".join(paired_md) + "\n" + notes)
    _figure(per_clip, fad, out / "figure.png")
    atomic_write_json(out / "sampling.json", {"manifest": str(man_path), "methods": methods, "baseline": baseline,
                                              "published_methods": {m: published_method(df, m) for m in methods},
                                              "stride": stride, "max_frames": max_frames,
                                              "embed_stride": embed_stride, "seconds": round(seconds, 1),
                                              "syncnet_weights": None if weights is None else str(weights),
                                              "clips": sampling})
    return {"summary": summary, "per_clip": per_clip, "seconds": seconds, "out": str(out), "baseline": baseline}


def _cmd_eval_clips(args) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    res = eval_clips(args.clips, args.manifest, args.out, stride=args.stride, max_frames=args.max_frames,
                     embed_stride=args.embed_stride, limit=args.limit, syncnet_weights=args.syncnet_weights,
                     workers=args.workers, baseline=args.baseline)
    print(markdown_table(res["summary"], res["baseline"]), end="")
    if "lse_d" not in res["summary"].columns:
        print(lse_note(None))
    print(f"wrote {res['out']}/per_clip.csv, summary.csv, paired_vs_baseline.csv, table.md, figure.png, sampling.json "
          f"in {res['seconds']:.1f} s")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("eval-clips", help="CSIM/FAD/mouth metrics of real side-by-side SPFEM outputs")
    p.add_argument("--clips", required=True, help="folder with the side-by-side mp4s")
    p.add_argument("--manifest", default=None, help="manifest.csv (default: CLIPS/manifest.csv)")
    p.add_argument("--out", default="reports/real_clips", help="output folder")
    p.add_argument("--stride", type=int, default=1, help="landmarks on every STRIDE-th frame")
    p.add_argument("--max-frames", type=int, default=None, help="at most this many landmark frames per clip")
    p.add_argument("--embed-stride", type=int, default=6,
                   help="identity embeddings on every K-th landmark frame (the slow part)")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="method panel the paired tests compare against (default: the first method panel; "
                        "panels called source, label or reference are roles, every other panel is a method)")
    p.add_argument("--limit", type=int, default=None, help="only the first N clips of the manifest")
    p.add_argument("--syncnet-weights", default=None,
                   help="syncnet_v2.model for LSE-D/LSE-C (default: $STCCL_SYNCNET_WEIGHTS; none: not computed)")
    p.add_argument("--workers", type=int, default=2, help="clips evaluated in parallel processes (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for SyncNet (default: torch's choice)")
    p.set_defaults(func=_cmd_eval_clips)
