"""Figures and tables of the report, built only from saved run outputs.

Every builder reads files (metrics.jsonl, eval.json, *.csv, *.npz, summary.json)
and returns a matplotlib figure or a DataFrame; `save_figure` writes PNG and PDF
atomically. `write_report` assembles reports/<stem>/REPORT.md; every number in
its text is read from those files, nothing is typed in.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from stccl.io import StcclError, atomic_path, atomic_write_csv, atomic_write_text, read_json, read_jsonl

# The paper's numbers (SPEC section 3.4 and 4), shown beside the measured ones.
PAPER_POS_NEG = {
    "before": {"spatial_pos": 0.48, "temporal_pos": 0.52, "spatial_neg": 0.0, "temporal_neg": 0.0},
    "after": {"spatial_pos": 0.96, "temporal_pos": 0.98, "spatial_neg": 0.0, "temporal_neg": 0.0},
}
PAPER_MEAD_INTRA = pd.DataFrame(
    [("NED", 2.108, 9.454, 0.831), ("NED + STCCL (VD)", 1.077, 9.359, 0.914), ("NED + STCCL (CM)", 1.103, 9.330, 0.916),
     ("ICface", 6.795, 10.083, 0.775), ("ICface + STCCL (VD)", 6.634, 9.411, 0.806),
     ("ICface + STCCL (CM)", 6.651, 9.412, 0.810)],
    columns=["method", "FAD", "LSE-D", "CSIM"])
VARIANT_LABELS = {"baseline": "baseline", "vd": "+STCCL (VD)", "cm": "+STCCL (CM)", "copy": "copy input"}
# The kit's acceptance targets, checked in the report against the measured numbers.
TARGET_POS, TARGET_NEG = 0.9, 0.1          # diagnostic on held-out identities: pos >= 0.9, |neg| <= 0.1
TARGET_MOUTH_DROP_PCT = 15.0               # +STCCL: mouth_l1 at least 15 % below the baseline ...
TARGET_EMOTION_POINTS = 0.05               # ... with emotion accuracy within 5 points and CSIM not lower


def _plt():
    import matplotlib

    if not os.environ.get("MPLBACKEND") and "ipykernel" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: str | os.PathLike, pdf: bool = True) -> list[Path]:
    """Write `stem`.png (and .pdf) atomically; returns the paths."""
    stem = Path(stem)
    out = []
    for ext in ("png", "pdf") if pdf else ("png",):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            # no creation date in the PDF: a re-run with the same numbers rewrites the same bytes
            meta = {"CreationDate": None} if ext == "pdf" else {}
            fig.savefig(tmp, format=ext, dpi=130, bbox_inches="tight", metadata=meta)
        out.append(path)
    return out


def write_table(df: pd.DataFrame, stem: str | os.PathLike, floatfmt: str = ".4f") -> list[Path]:
    """Write `stem`.csv and a Markdown `stem`.md."""
    stem = Path(stem)
    atomic_write_csv(stem.with_suffix(".csv"), df)
    atomic_write_text(stem.with_suffix(".md"), markdown(df, floatfmt))
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


def markdown(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A pipe table without the tabulate dependency."""
    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "n/a" if not math.isfinite(float(v)) else format(float(v), floatfmt)
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# 01 data
# ---------------------------------------------------------------------------

def data_summary_table(data_root: str | os.PathLike) -> pd.DataFrame:
    """Key counts of a synthetic data set from its summary.json (or a MEAD root's alignment)."""
    root = Path(data_root)
    if (root / "summary.json").is_file():
        s = read_json(root / "summary.json", "data summary")
        rows = [("preset", s["preset"]), ("frame size (px)", s["size"]), ("actors", s["actors"]),
                ("test actors", ", ".join(s["test_actors"])), ("emotions", s["emotions"]),
                ("sentences", s["sentences"]), ("clips", s["clips"]), ("frames", s["frames"]),
                ("neutral/emotional pairs", s["pairs"]),
                ("frames per clip", f"{s['frames_per_clip']['min']}-{s['frames_per_clip']['max']}"),
                ("DTW mean |frame error|", s["dtw_mean_abs_frame_error"]),
                ("linear-stretch mean |frame error|", s["linear_stretch_mean_abs_frame_error"]),
                ("no-alignment mean |frame error|", s["no_alignment_mean_abs_frame_error"]),
                ("render seconds", s["seconds"]["total"])]
        return pd.DataFrame(rows, columns=["quantity", "value"]).astype({"value": str})
    from stccl.data.mead import summarise_pairs

    s = summarise_pairs(root / "aligned_path.json", root)
    rows = [("actors", s["actors"]), ("pairs", s["pairs"]), ("test actors", ", ".join(s["test_actors"]))]
    rows += [(f"{k} windows (T={s['T']})", v["windows"]) for k, v in s["splits"].items()]
    return pd.DataFrame(rows, columns=["quantity", "value"]).astype({"value": str})


def first_pair(data_root: str | os.PathLike, emotion: str = "happy") -> tuple[str, str, str]:
    """(actor, emotion, "NNN_MMM") of the first train pair with `emotion` (else any emotion)."""
    from stccl.data.mead import load_alignment, resolve_test_actors

    root = Path(data_root)
    align = load_alignment(root / "aligned_path.json")
    tests = set(resolve_test_actors(root))
    for actor in sorted(a for a in align if a not in tests):
        emos = align[actor]
        emo = emotion if emotion in emos else sorted(emos)[0]
        return actor, emo, sorted(emos[emo])[0]
    raise StcclError(f"{root / 'aligned_path.json'}: no train pair found")


def alignment_figure(data_root: str | os.PathLike, actor: str, emotion: str, pair: str, n_show: int = 6):
    """The DTW path of one pair drawn over both renditions, and against the true frame map when known."""
    from stccl.data.mead import MeadLayout, load_alignment, parse_pair

    plt = _plt()
    root = Path(data_root)
    idx_n, idx_e = load_alignment(root / "aligned_path.json")[actor][emotion][pair]
    idx_n, idx_e = np.asarray(idx_n), np.asarray(idx_e)
    c_n, c_e = parse_pair(pair)
    layout = MeadLayout(root)
    steps = np.linspace(0, len(idx_n) - 1, n_show).round().astype(int)
    neu = layout.load_frames_uint8(actor, "neutral", c_n, idx_n[steps])   # (n, H, W, 3)
    emo = layout.load_frames_uint8(actor, emotion, c_e, idx_e[steps])
    fig = plt.figure(figsize=(2.0 * n_show, 6.4))
    gs = fig.add_gridspec(3, n_show, height_ratios=[1, 1, 1.3])
    for j, s in enumerate(steps):
        for r, (frames, idx, name) in enumerate(((neu, idx_n, "neutral"), (emo, idx_e, emotion))):
            ax = fig.add_subplot(gs[r, j])
            ax.imshow(frames[j])
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{name} f{idx[s]}" + (f"\n(path step {s})" if r == 0 else ""), fontsize=8)
    ax = fig.add_subplot(gs[2, :])
    ax.plot(idx_n, idx_e, "o-", ms=3, label="DTW path (aligned_path.json)")
    truth_path = root / "ground_truth.parquet"
    if truth_path.is_file():
        from stccl.data.synth import load_ground_truth, true_frame_map

        gt = load_ground_truth(root)
        sel = lambda e, c: gt[(gt["actor"] == actor) & (gt["emotion"] == e) & (gt["clip"] == c)].sort_values("frame")
        s_n, s_e = sel("neutral", c_n)["sentence_time"].to_numpy(), sel(emotion, c_e)["sentence_time"].to_numpy()
        ax.plot(np.arange(len(s_n)), true_frame_map(s_n, s_e), "k--", lw=1, label="true frame map (synthetic)")
    ax.scatter(idx_n[steps], idx_e[steps], s=60, facecolors="none", edgecolors="r", label="frames shown above")
    ax.set_xlabel(f"neutral clip {c_n:03d} frame")
    ax.set_ylabel(f"{emotion} clip {c_e:03d} frame")
    ax.legend(fontsize=8)
    ax.set_title(f"{actor}: neutral vs {emotion}, pair {pair}", fontsize=9)
    fig.tight_layout()
    return fig


def image_figure(path: str | os.PathLike, title: str = "", width: float = 10.0):
    """Show a saved image (e.g. the synth contact sheet)."""
    from PIL import Image

    plt = _plt()
    img = np.asarray(Image.open(path).convert("RGB"))
    fig, ax = plt.subplots(figsize=(width, width * img.shape[0] / img.shape[1]))
    ax.imshow(img)
    ax.axis("off")
    ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------
# 03 metric training
# ---------------------------------------------------------------------------

def loss_curves(metrics_jsonl: str | os.PathLike, keys: Sequence[str] | None = None, title: str = ""):
    """Loss curves from a run's metrics.jsonl (every numeric key with 'loss' in its name by default)."""
    plt = _plt()
    recs = read_jsonl(metrics_jsonl)
    if not recs:
        raise StcclError(f"{metrics_jsonl}: no logged steps to plot")
    df = pd.DataFrame(recs)
    if keys is None:
        keys = [k for k in df.columns if "loss" in k and pd.api.types.is_numeric_dtype(df[k])]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for k in keys:
        d = df[["step", k]].dropna()
        ax.plot(d["step"], d[k], marker="o" if len(d) < 20 else None, ms=3, label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or str(Path(metrics_jsonl).parent.name))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pos_neg_table(before: dict, after: dict) -> pd.DataFrame:
    """Rows (variant, kind, stage) with measured before/after and the paper's numbers.

    `before`/`after` are `stccl diagnose` outputs: {variant: {spatial_pos, spatial_neg, temporal_pos, temporal_neg}}.
    """
    rows = []
    for variant in sorted(set(_variants(before)) & set(_variants(after))):
        for key in ("spatial_pos", "spatial_neg", "temporal_pos", "temporal_neg"):
            rows.append({"variant": variant, "measure": key,
                         "before": float(_variants(before)[variant][key]),
                         "after": float(_variants(after)[variant][key]),
                         "paper_before": PAPER_POS_NEG["before"][key], "paper_after": PAPER_POS_NEG["after"][key]})
    if not rows:
        raise StcclError("diagnose outputs share no variant with spatial_pos/neg and temporal_pos/neg values")
    return pd.DataFrame(rows)


def _variants(diag: dict) -> dict:
    """The {variant: {...pos/neg...}} part of a diagnose output."""
    if "variants" in diag and isinstance(diag["variants"], dict):
        diag = diag["variants"]
    return {k: v for k, v in diag.items() if isinstance(v, dict) and "spatial_pos" in v}


def pos_neg_figure(table: pd.DataFrame):
    """The paper's before/after figure: mean cosine similarity of positive and negative pairs."""
    plt = _plt()
    variants = list(dict.fromkeys(table["variant"]))
    fig, axes = plt.subplots(1, 2 * len(variants), figsize=(3.4 * 2 * len(variants), 3.4), squeeze=False)
    for i, v in enumerate(variants):
        for j, kind in enumerate(("spatial", "temporal")):
            ax = axes[0, 2 * i + j]
            t = table[(table.variant == v) & table.measure.str.startswith(kind)].set_index("measure")
            x = np.arange(2)
            for k, (col, lab, off) in enumerate((("before", "before (measured)", -0.3), ("after", "after (measured)", -0.1),
                                                 ("paper_before", "before (paper)", 0.1),
                                                 ("paper_after", "after (paper)", 0.3))):
                vals = [t.loc[f"{kind}_pos", col], t.loc[f"{kind}_neg", col]]
                ax.bar(x + off, vals, width=0.2, label=lab, hatch="//" if "paper" in col else None,
                       alpha=0.55 if "paper" in col else 1.0, color=f"C{k % 2}")
            ax.set_xticks(x, ["pos", "neg"])
            ax.axhline(0, color="k", lw=0.5)
            ax.set_ylim(min(-0.2, float(t[["before", "after"]].min().min()) - 0.05), 1.05)
            ax.set_title(f"{v.upper()} {kind}", fontsize=10)
            if i == 0 and j == 0:
                ax.set_ylabel("mean cosine similarity")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# 04 SPFEM
# ---------------------------------------------------------------------------

def eval_table(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Mean ± std over seeds per variant, from each run's eval.json (stccl.spfem.evaluate.compare_runs)."""
    from stccl.spfem.evaluate import compare_runs

    return compare_runs([str(d) for d in run_dirs])


def eval_markdown(table: pd.DataFrame) -> str:
    from stccl.spfem.evaluate import to_markdown

    return to_markdown(table)


def write_eval_table(table: pd.DataFrame, stem: str | os.PathLike) -> list[Path]:
    """`stem`.csv (every column) and `stem`.md ('mean ± std' per metric)."""
    stem = Path(stem)
    atomic_write_csv(stem.with_suffix(".csv"), table)
    atomic_write_text(stem.with_suffix(".md"), eval_markdown(table))
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


def side_by_side_figure(npz_path: str | os.PathLike):
    """Rows: source, ground truth, then each variant's output, from the frames saved by notebook 04."""
    plt = _plt()
    z = np.load(npz_path, allow_pickle=False)
    rows = [str(r) for r in z["rows"]]
    frames = z["frames"]  # (R, N, H, W, 3) uint8
    idx = z["frame_index"]
    title = str(z["title"])
    R, N = frames.shape[:2]
    fig, axes = plt.subplots(R, N, figsize=(1.6 * N, 1.7 * R), squeeze=False)
    for r in range(R):
        for n in range(N):
            ax = axes[r, n]
            ax.imshow(frames[r, n])
            ax.set_xticks([]), ax.set_yticks([])
            if n == 0:
                ax.set_ylabel(VARIANT_LABELS.get(rows[r], rows[r]), fontsize=8)
            if r == 0:
                ax.set_title(f"frame {int(idx[n])}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# 05 ablations
# ---------------------------------------------------------------------------

def ablation_frame(rows: Sequence[dict] | str | os.PathLike) -> pd.DataFrame:
    """The ablation results as a DataFrame (from row dicts or reports/.../ablations.csv)."""
    if isinstance(rows, (str, os.PathLike)):
        return pd.read_csv(rows)
    return pd.DataFrame(list(rows))


ABLATION_METRICS = ("mouth_l1", "mouth_param_err", "emotion_acc", "csim", "fad")


def ablation_markdown(df: pd.DataFrame, metrics: Sequence[str] = ABLATION_METRICS) -> str:
    """A table like the paper's ablation table: factor, setting, then the evaluation numbers."""
    from stccl.spfem.evaluate import SUMMARY_METRICS

    metrics = [m for m in metrics if m in df]
    arrows = {m: ("↑" if SUMMARY_METRICS.get(m, False) else "↓") for m in metrics}
    view = df[["factor", "level", "run"] + metrics].rename(columns={m: f"{m} {arrows[m]}" for m in metrics})
    return markdown(view)


def ablation_figure(df: pd.DataFrame, metrics: Sequence[str] = ("mouth_l1", "mouth_param_err", "emotion_acc", "csim")):
    """Seaborn strip plot per metric: one point per grid point, the default setting as a dashed line."""
    import seaborn as sns

    plt = _plt()
    metrics = [m for m in metrics if m in df]
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 2.5, 0.32 * len(df) + 1.4),
                             sharey=True, squeeze=False)
    label = np.where(df["factor"] == "default", "default", df["factor"] + ": " + df["level"].astype(str))
    d = df.assign(setting=label)
    ref = d[d["factor"] == "default"]
    for ax, m in zip(axes[0], metrics):
        sns.stripplot(data=d, y="setting", x=m, hue="factor", ax=ax, size=7, jitter=False, legend=False,
                      palette="tab10")
        if len(ref):
            ax.axvline(float(ref[m].iloc[0]), color="k", ls="--", lw=1)
        ax.set_ylabel("")
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.grid(axis="y", lw=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Small helpers for the report text
# ---------------------------------------------------------------------------

def fmt(x: Any, nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "n/a" if not math.isfinite(xf) else f"{xf:.{nd}f}"


def pct_change(new: float, base: float) -> str:
    if base == 0 or not (math.isfinite(new) and math.isfinite(base)):
        return "n/a"
    return f"{100.0 * (new - base) / abs(base):+.1f}%"


def flat_eval(eval_json: str | os.PathLike) -> dict[str, float]:
    """The numeric summary scores of an eval.json."""
    ev = read_json(eval_json, "evaluation file")
    return {k: float(v) for k, v in ev.get("summary", {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


# ---------------------------------------------------------------------------
# 02 correlation analysis: one snapshot computed with the package, saved, then plotted
# ---------------------------------------------------------------------------

def correlation_snapshot(metric_config: str | os.PathLike, data_root: str | os.PathLike, out: str | os.PathLike,
                         checkpoint: str | os.PathLike | None = None, emotion: str = "happy", stage: int = 1,
                         seed: int = 0) -> Path:
    """VD vectors, CM matrices and the adaptive weight map of one neutral/emotional window, saved as .npz.

    Uses the metric network of `checkpoint`, or a freshly initialised one (before training) built from
    `metric_config`. Clip A (queries) is the emotional window, clip B (keys) the neutral one, as in training.
    """
    import torch

    from stccl.core.correlation import (NEIGHBOUR_OFFSETS, StageSample, central_cells, flat_map, sample_stage,
                                   spatial_cm, spatial_vd, temporal_cm)
    from stccl.data.mead import PairedWindowDataset
    from stccl.core.losses import adaptive_weight, network_from_checkpoint
    from stccl.core.metric_net import MetricNet
    from stccl.runs import load_checkpoint
    from stccl.core.train_metric import load_metric_config

    root = Path(data_root)
    cfg = load_metric_config(metric_config, {"data_root": str(root)})
    torch.manual_seed(seed)
    if checkpoint:
        net, opts = network_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    else:
        net, opts = MetricNet(cfg.net), cfg.loss
    net.eval()
    ds = PairedWindowDataset(root, root / "aligned_path.json", T=cfg.T, split="train", size=cfg.size)
    pick = next((i for i in range(len(ds)) if ds.pairs[int(ds._pair_of[i])]["emotion"] == emotion), 0)
    item = ds[pick]
    T = cfg.T
    x = torch.cat([item["emotional"], item["neutral"]])  # (2T, 3, H, W): A then B
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        feats = net(x)
        f = feats[stage]  # (2T, C, h, w)
        h, w = f.shape[-2:]
        head = net.heads[stage]
        s = sample_stage(h, w, n_spatial=4, n_temporal=6, central=opts.central, generator=gen)
        flat = flat_map(f)  # (2T, hw, C)
        t = T // 2
        vd_a, _ = spatial_vd(flat[t:t + 1], head, s)            # (1, S*8, D)
        vd_b, _ = spatial_vd(flat[T + t:T + t + 1], head, s)
        cm_a, _ = spatial_cm(flat[t:t + 1], head, s)            # (1, S, P)
        cm_b, _ = spatial_cm(flat[T + t:T + t + 1], head, s)
        seq = flat[:, s.temporal].unflatten(0, (2, T))         # (2, T, N, C)
        tcm, _ = temporal_cm(seq, net.heads_for("temporal")[stage])  # (2, N*T, T)
        tcm = tcm.unflatten(1, (-1, T))                        # (2, N, T, T)
        # adaptive weight over the face: every interior cell of stage 0 as an anchor
        f0 = flat_map(feats[0][t:t + 1])  # (1, h0*w0, C0)
        h0, w0 = feats[0].shape[-2:]
        anchors = central_cells(h0, w0, opts.central, margin=1)
        offs = NEIGHBOUR_OFFSETS[:, 0] * w0 + NEIGHBOUR_OFFSETS[:, 1]
        full = StageSample(h0, w0, anchors, anchors[:, None] + offs[None, :], anchors)
        _, strength = spatial_vd(f0, net.heads[0], full, with_strength=True)  # (1, S*8)
        strength = strength.view(-1, 8)                                       # (S, 8)
        weight = adaptive_weight(strength, opts.theta).mean(-1)               # (S,)
    hmap = np.full(h0 * w0, np.nan)
    wmap = np.full(h0 * w0, np.nan)
    hmap[anchors.numpy()] = strength.mean(-1).numpy()
    wmap[anchors.numpy()] = weight.numpy()
    to_img = lambda v: (v.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)  # (N, H, W, 3)
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, emotional=to_img(item["emotional"]), neutral=to_img(item["neutral"]), t=t, stage=stage,
            stage_hw=np.array([h, w]), anchors=s.anchors.numpy(), neighbours=s.neighbours.numpy(),
            temporal=s.temporal.numpy(), vd_a=vd_a[0].numpy(), vd_b=vd_b[0].numpy(), cm_a=cm_a[0].numpy(),
            cm_b=cm_b[0].numpy(), tcm_a=tcm[0].numpy(), tcm_b=tcm[1].numpy(), h_map=hmap.reshape(h0, w0),
            w_map=wmap.reshape(h0, w0), theta=opts.theta, trained=bool(checkpoint),
            title=np.array(f"{item['actor']} neutral vs {item['emotion']}, pair {item['pair']}, path step {item['step']}"))
    return out


def correlation_figures(npz_path: str | os.PathLike) -> dict[str, Any]:
    """Figures from a `correlation_snapshot`: sampled positions, VD vectors, CM heatmaps, adaptive weight map."""
    plt = _plt()
    z = np.load(npz_path, allow_pickle=False)
    t, (h, w) = int(z["t"]), z["stage_hw"]
    img_a, img_b = z["emotional"][t], z["neutral"][t]
    H, W = img_a.shape[:2]
    cell = lambda idx: ((idx % w + 0.5) * W / w, (idx // w + 0.5) * H / h)  # flat index -> (x, y) pixels
    figs = {}
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
    for ax, img, name in zip(axes, (img_b, img_a), ("neutral (B, keys)", "emotional (A, queries)")):
        ax.imshow(img)
        for k, a in enumerate(z["anchors"]):
            nx, ny = cell(z["neighbours"][k])
            ax.scatter(nx, ny, s=12, c=f"C{k}", marker="s", alpha=0.6)
            ax.scatter(*cell(a), s=40, c=f"C{k}", edgecolors="w")
        ax.scatter(*cell(z["temporal"]), s=25, c="w", marker="x", label="temporal positions")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{z['title']}: anchors and their 8 neighbours (stage {int(z['stage']) + 1})", fontsize=9)
    fig.tight_layout()
    figs["positions"] = fig

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    vmax = float(max(np.abs(z["vd_a"]).max(), np.abs(z["vd_b"]).max()))
    for ax, key, name in zip(axes[:2], ("vd_b", "vd_a"), ("neutral", "emotional")):
        im = ax.imshow(z[key], aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(f"VD vectors, {name} (anchor x neighbour rows)", fontsize=9)
        ax.set_xlabel("projected dimension")
    fig.colorbar(im, ax=axes[1])
    sim = z["vd_a"] @ z["vd_b"].T
    im = axes[2].imshow(sim, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    axes[2].set_title("cos(VD_A, VD_B): diagonal = positives", fontsize=9)
    fig.colorbar(im, ax=axes[2])
    fig.tight_layout()
    figs["vd"] = fig

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    for ax, key, name in zip(axes, ("cm_b", "cm_a", "tcm_b", "tcm_a"),
                             ("spatial CM, neutral", "spatial CM, emotional", "temporal CM, neutral (position 1)",
                              "temporal CM, emotional (position 1)")):
        m = z[key] if key.startswith("cm") else z[key][0]
        im = ax.imshow(m, cmap="magma", interpolation="nearest")
        ax.set_title(name, fontsize=9)
    fig.colorbar(im, ax=axes[-1])
    fig.tight_layout()
    figs["cm"] = fig

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    axes[0].imshow(img_a)
    axes[0].set_title("emotional frame", fontsize=9)
    for ax, key, name in ((axes[1], "h_map", "h = mean_c sigmoid(|d|)"),
                          (axes[2], "w_map", f"adaptive weight (theta {float(z['theta']):.2f})")):
        ax.imshow(img_a, alpha=0.5)
        im = ax.imshow(z[key], cmap="inferno", alpha=0.75, extent=(0, W, H, 0), interpolation="nearest")
        fig.colorbar(im, ax=ax)
        ax.set_title(name + (" (trained)" if bool(z["trained"]) else " (untrained net)"), fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    figs["weights"] = fig
    return figs


# ---------------------------------------------------------------------------
# 06: every figure, table and REPORT.md from the saved outputs of one params file
# ---------------------------------------------------------------------------

def _direction(new: float, base: float, higher_better: bool) -> str:
    if not (math.isfinite(new) and math.isfinite(base)) or new == base:
        return "no change from"
    better = (new > base) == higher_better
    return "better than" if better else "worse than"


def build_report(params, paths, show: bool = False) -> Path:
    """Write reports/<stem>/: figures (PNG + PDF), tables (CSV + MD) and REPORT.md, from saved outputs only.

    `params`, `paths` come from `stccl.pipeline.runner.notebook_context`. Sections whose inputs were not produced
    (a notebook left out of the params file) say so instead of failing.
    """
    import shutil

    from stccl.spfem.evaluate import SUMMARY_METRICS

    plt = _plt()
    rd, out = paths.run_dir, paths.report_dir
    figs_dir = out / "figures"
    figs_dir.mkdir(parents=True, exist_ok=True)
    made: list[str] = []

    def fig_out(fig, name: str) -> str:
        save_figure(fig, figs_dir / name)
        if not show:
            plt.close(fig)
        made.append(f"figures/{name}.png")
        return f"![{name}](figures/{name}.png)"

    text = [f"# STCCL reproduction report: `{paths.params_file}`", "",
            f"All numbers below are read from the saved outputs in `{rd}` by `stccl.pipeline.report.build_report` "
            f"(notebook 06); none is typed in. Paper numbers come from SPEC sections 3.4 and 4.", ""]

    # 1. data -------------------------------------------------------------
    root = paths.data_root
    text += ["## 1. Data", ""]
    if (root / "aligned_path.json").is_file():
        summary = data_summary_table(root)
        write_table(summary, out / "data_summary")
        text += [markdown(summary), ""]
        if (root / "summary.json").is_file():
            s = read_json(root / "summary.json")
            shutil.copyfile(root / "contact_sheet.png", figs_dir / "contact_sheet.png")
            made.append("figures/contact_sheet.png")
            text += [f"The synthetic set has {s['actors']} identities x {s['emotions']} emotions x {s['sentences']} "
                     f"sentences ({s['clips']} clips, {s['frames']} frames, {s['size']} px); "
                     f"{len(s['test_actors'])} identities ({', '.join(s['test_actors'])}) are held out. "
                     f"The DTW alignment of the {s['pairs']} neutral/emotional pairs is off the true frame "
                     f"correspondence by {fmt(s['dtw_mean_abs_frame_error'], 2)} frames on average, against "
                     f"{fmt(s['linear_stretch_mean_abs_frame_error'], 2)} for a linear stretch and "
                     f"{fmt(s['no_alignment_mean_abs_frame_error'], 2)} with no alignment.", "",
                     "![contact sheet](figures/contact_sheet.png)", ""]
        actor, emotion, pair = first_pair(root)
        text += [fig_out(alignment_figure(root, actor, emotion, pair, params.frames_to_show), "alignment"), ""]
    else:
        text += ["Not run (notebook 01 made no data).", ""]

    # 2. correlations -----------------------------------------------------
    text += ["## 2. Spatial and temporal coherent correlations", ""]
    snap = rd / "correlation_snapshot.npz"
    if snap.is_file():
        figs = correlation_figures(snap)
        text += ["Sampled anchors with their 8 neighbours and the temporal positions; VD vectors and their "
                 "cross-rendition cosine similarities; spatial and temporal CM heatmaps; the adaptive weight "
                 "map. The network here is the untrained one (notebook 02).", ""]
        for key in ("positions", "vd", "cm", "weights"):
            text += [fig_out(figs[key], f"correlation_{key}"), ""]
        if (rd / "correlation_snapshot_trained.npz").is_file():
            text += ["The same weight map with the trained metric network (notebook 03):", "",
                     fig_out(correlation_figures(rd / "correlation_snapshot_trained.npz")["weights"],
                             "correlation_weights_trained"), ""]
    else:
        text += ["Not run (no correlation snapshot).", ""]

    # 3. metric -----------------------------------------------------------
    text += ["## 3. Metric network: before/after positive and negative similarity", ""]
    mrun = paths.metric_run
    if (mrun / "metrics.jsonl").is_file():
        recs = read_jsonl(mrun / "metrics.jsonl")
        text += [fig_out(loss_curves(mrun / "metrics.jsonl", title="metric network loss"), "metric_loss"), ""]
        text += [f"The metric network trained {recs[-1]['step']} steps (the paper: 100 epochs on MEAD); "
                 f"its loss went from {fmt(recs[0]['loss'])} at step {recs[0]['step']} to "
                 f"{fmt(recs[-1]['loss'])}.", ""]
    if (rd / "pos_neg.csv").is_file():
        pn = pd.read_csv(rd / "pos_neg.csv")
        write_table(pn, out / "pos_neg")
        text += [markdown(pn), "", fig_out(pos_neg_figure(pn), "pos_neg"), ""]
        for r in pn[pn["measure"].str.endswith("_pos")].itertuples():
            gap = r.paper_after - r.after
            verdict = ("reaches the paper's value" if gap <= 0.02 else
                       f"stays {fmt(gap, 2)} below the paper's {fmt(r.paper_after, 2)}")
            text.append(f"- {r.variant.upper()} {r.measure.replace('_', ' ')}: {fmt(r.before)} before training "
                        f"(paper {fmt(r.paper_before, 2)}) -> {fmt(r.after)} after (paper "
                        f"{fmt(r.paper_after, 2)}); this run {verdict}.")
        for r in pn[pn["measure"].str.endswith("_neg")].itertuples():
            text.append(f"- {r.variant.upper()} {r.measure.replace('_', ' ')}: {fmt(r.before)} -> {fmt(r.after)} "
                        f"(paper about 0 both times).")
        text += ["", pos_neg_verdict(pn), ""]
    else:
        text += ["Not run (no diagnose outputs).", ""]

    # 4. SPFEM ------------------------------------------------------------
    text += ["## 4. SPFEM: baseline vs +STCCL", ""]
    if (rd / "spfem_comparison.csv").is_file():
        table = pd.read_csv(rd / "spfem_comparison.csv")
        atomic_write_csv(out / "spfem_comparison.csv", table)
        atomic_write_text(out / "spfem_comparison.md", eval_markdown(table))
        text += ["Evaluated on the held-out identities against the rendered ground truth (mean ± std over seeds; "
                 "`copy` copies the input: perfect speech, no emotion change). Arrows: "
                 + ", ".join(f"{k} {'↑' if hb else '↓'}" for k, hb in SUMMARY_METRICS.items()) + ".", "",
                 eval_markdown(table), ""]
        base = table[table["variant"] == "baseline"]
        for v in ("vd", "cm"):
            row = table[table["variant"] == v]
            if len(base) and len(row):
                parts = []
                for k in ("mouth_l1", "mouth_param_err", "emotion_acc", "csim", "fad"):
                    if f"{k}_mean" in table:
                        b, n = float(base[f"{k}_mean"].iloc[0]), float(row[f"{k}_mean"].iloc[0])
                        parts.append(f"{k} {fmt(n, 4)} vs {fmt(b, 4)} ({pct_change(n, b)}, "
                                     f"{_direction(n, b, SUMMARY_METRICS[k])} the baseline)")
                text.append(f"- {VARIANT_LABELS[v]}: " + "; ".join(parts) + ".")
        if len(base):
            text += [""] + [spfem_verdict(table, v) for v in ("vd", "cm") if (table["variant"] == v).any()]
        copy = table[table["variant"] == "copy"]
        if len(copy) and len(base) and "emotion_acc_mean" in table:
            acc = {v: float(table.loc[table["variant"] == v, "emotion_acc_mean"].iloc[0])
                   for v in table["variant"]}
            text += ["", f"- Read the speech and identity gains against the `copy` row, which changes nothing: it "
                         f"scores mouth_l1 {fmt(float(copy['mouth_l1_mean'].iloc[0]), 4)} and emotion_acc "
                         f"{fmt(acc['copy'], 4)}. Target-emotion accuracy: baseline {fmt(acc['baseline'], 4)}, "
                         + ", ".join(f"{VARIANT_LABELS.get(v, v)} {fmt(acc[v], 4)}" for v in ("vd", "cm") if v in acc)
                         + ". A +STCCL run whose accuracy is at or below the copy row's kept the speech by not "
                           "manipulating the expression, which is not the paper's result."]
        steps = [read_json(p)["steps"] for p in sorted(rd.glob("spfem_*_s*/eval.json"))]
        text += ["", "Paper (MEAD intra-ID, NED / ICface backbones, FAD and CSIM with ArcFace, LSE-D with "
                     "SyncNet) for comparison; the kit's generator, data and evaluation nets differ, so only the "
                     "direction of the change can be compared, not the values:", "",
                 markdown(PAPER_MEAD_INTRA, ".3f"), "",
                 f"In the paper STCCL lowers FAD and raises CSIM for both backbones. Here each SPFEM run trained "
                 f"{min(steps) if steps else 'n/a'} steps; the lines above state whether +STCCL moved each "
                 f"measure the same way on this run.", ""]
        write_table(PAPER_MEAD_INTRA, out / "paper_mead_intra", ".3f")
        for p in sorted(rd.glob("spfem_*_s*/metrics.jsonl")):
            text += [fig_out(loss_curves(p, keys=["loss_g", "loss_d"], title=p.parent.name),
                             f"loss_{p.parent.name}"), ""]
        if (rd / "side_by_side.npz").is_file():
            text += [fig_out(side_by_side_figure(rd / "side_by_side.npz"), "side_by_side"), ""]
    else:
        text += ["Not run (no evaluated SPFEM runs).", ""]

    # 5. ablations --------------------------------------------------------
    text += ["## 5. Ablations", ""]
    if (rd / "ablations.csv").is_file() and len(pd.read_csv(rd / "ablations.csv")):
        ab = pd.read_csv(rd / "ablations.csv")
        atomic_write_csv(out / "ablations.csv", ab)
        atomic_write_text(out / "ablations.md", ablation_markdown(ab))
        if params.ablation.publish_dir:  # the main run's grid also lands at reports/ablations.*
            pub = Path(params.ablation.publish_dir)
            pub.mkdir(parents=True, exist_ok=True)
            atomic_write_csv(pub / "ablations.csv", ab)
            atomic_write_text(pub / "ablations.md", ablation_markdown(ab))
            fig = ablation_figure(ab)
            save_figure(fig, pub / "ablations")
            plt.close(fig)
        text += [f"{len(ab)} grid points, one factor at a time around the default; each retrains the metric "
                 f"network for {int(ab['metric_steps'].iloc[0])} steps (shared by points with the same metric "
                 f"settings) and trains SPFEM for {int(ab['spfem_steps'].iloc[0])} steps.", "",
                 ablation_markdown(ab), "", fig_out(ablation_figure(ab), "ablations"), ""]
        noise = seed_noise_note(rd / "spfem_comparison.csv")
        if noise:
            text += [noise, ""]
        ref = ab[ab["factor"] == "default"]
        if len(ref):
            for k in ("mouth_l1", "emotion_acc"):
                if k in ab and ab[k].nunique() == 1:
                    text.append(f"- {k}: every grid point gives {fmt(float(ab[k].iloc[0]), 4)} (no factor changes it).")
                elif k in ab:
                    hb = SUMMARY_METRICS[k]
                    best = ab.loc[ab[k].idxmax() if hb else ab[k].idxmin()]
                    text.append(f"- best {k}: {best['factor']} = {best['level']} ({fmt(best[k], 4)}; default "
                                f"{fmt(float(ref[k].iloc[0]), 4)}).")
            text.append("")
    else:
        text += ["Not run (no ablation results).", ""]

    # 6. timings ----------------------------------------------------------
    text += ["## 6. Run times", ""]
    rows = []
    for st in sorted(paths.status_dir.glob("*.json")):
        s = read_json(st)
        rows.append({"notebook": st.stem, "status": s.get("status"), "seconds": s.get("seconds")})
    if rows:
        tdf = pd.DataFrame(rows)
        text += [markdown(tdf, ".1f"), "", f"Sum of the recorded notebook times: {fmt(tdf['seconds'].sum(), 1)} s "
                 "(the report notebook itself is recorded after it finishes, so its time appears from the next "
                 "run on).", ""]
    body = "\n".join(text) + "\n"
    atomic_write_text(out / "REPORT.md", body)
    atomic_write_text(out / "REPORT.html", markdown_to_html(body, title=f"STCCL report: {paths.params_file}"))
    return out / "REPORT.md"


def markdown_to_html(text: str, title: str = "STCCL report") -> str:
    """A standalone HTML page of a Markdown report (tables, images by relative path)."""
    import html

    import markdown as md

    body = md.markdown(text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}code{background:#f3f3f3}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def pos_neg_verdict(pn: pd.DataFrame) -> str:
    """One line: which variant/kind meets pos >= TARGET_POS with |neg| <= TARGET_NEG after training."""
    after = {(r.variant, r.measure): float(r.after) for r in pn.itertuples()}
    met, missed = [], []
    for variant in sorted({v for v, _ in after}):
        for kind in ("spatial", "temporal"):
            pos, neg = after.get((variant, f"{kind}_pos")), after.get((variant, f"{kind}_neg"))
            if pos is None or neg is None:
                continue
            label = f"{variant.upper()} {kind} ({fmt(pos)} / {fmt(neg)})"
            (met if pos >= TARGET_POS and abs(neg) <= TARGET_NEG else missed).append(label)
    return (f"**Target** (held-out identities, after training: pos ≥ {TARGET_POS}, |neg| ≤ {TARGET_NEG}): "
            f"met by {', '.join(met) if met else 'none'}; not met by {', '.join(missed) if missed else 'none'} "
            f"(pos / neg).")


def spfem_verdict(table: pd.DataFrame, variant: str) -> str:
    """One line: does +STCCL meet the mouth / CSIM / emotion-accuracy target against the baseline?"""
    base = table[table["variant"] == "baseline"].iloc[0]
    row = table[table["variant"] == variant].iloc[0]
    drop = -float(row["mouth_l1_change_vs_baseline_pct"])  # the comparison table's own change column
    d_acc = row["emotion_acc_mean"] - base["emotion_acc_mean"]
    checks = {f"mouth_l1 {fmt(drop, 1)} % lower (needs ≥ {TARGET_MOUTH_DROP_PCT:g} %)": drop >= TARGET_MOUTH_DROP_PCT,
              f"CSIM {fmt(row['csim_mean'], 4)} vs {fmt(base['csim_mean'], 4)} (needs not lower)":
                  row["csim_mean"] >= base["csim_mean"],
              f"emotion accuracy {d_acc * 100:+.1f} points (needs within ±{TARGET_EMOTION_POINTS * 100:g})":
                  abs(d_acc) <= TARGET_EMOTION_POINTS}
    ok = all(checks.values())
    parts = "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items())
    return f"- **Target, {VARIANT_LABELS[variant]}: {'met' if ok else 'not met'}** ({parts})."


def seed_noise_note(comparison_csv: Path) -> str:
    """How large seed-to-seed differences are (section 4), as a yardstick for single-seed grid points."""
    if not comparison_csv.is_file():
        return ""
    table = pd.read_csv(comparison_csv)
    rows = table[(table["runs"] > 1) & table["variant"].isin(["baseline", "vd", "cm"])]
    if not len(rows):
        return ""
    sd = {k: float(rows[f"{k}_std"].mean()) for k in ("mouth_l1", "emotion_acc") if f"{k}_std" in rows}
    return ("Each grid point is a single seed. For scale, the seed-to-seed standard deviation of the main runs "
            "(section 4, mean over variants) is " + ", ".join(f"{fmt(v, 4)} for {k}" for k, v in sd.items())
            + "; a difference between two grid points smaller than about twice that is not evidence of an effect.")
