"""Figures and tables drawn from saved run outputs (metrics.jsonl, eval.json, *.csv, *.npz, summary.json).

Every builder reads files and returns a matplotlib figure or a DataFrame; `save_figure` writes PNG and
PDF atomically. The notebooks show them; `stccl.pipeline.report` assembles them into REPORT.md. Nothing
here runs a network: the snapshots it draws are saved by the notebooks (`stccl.core.snapshot`,
`stccl.spfem.side_by_side`).

At about 460 lines this stays one module: every builder has the same contract
(saved outputs in, figure or table out) and they share the paper's reference numbers.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from stccl.data.mead import MeadLayout, load_alignment, parse_pair, resolve_test_actors, summarise_pairs
from stccl.data.synth import load_ground_truth, true_frame_map
from stccl.core.diagnose import diagnostic_rows
from stccl.io import StcclError, atomic_path, atomic_write_csv, atomic_write_text, read_json, read_jsonl
from stccl.spfem.evaluate import SUMMARY_METRICS, compare_runs, to_markdown

if not os.environ.get("MPLBACKEND") and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # scripts and tests draw off screen; a notebook keeps its inline backend
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

# The paper's numbers (SPEC section 3.4), shown beside the measured ones.
PAPER_POS_NEG = {
    "before": {"spatial_pos": 0.48, "temporal_pos": 0.52, "spatial_neg": 0.0, "temporal_neg": 0.0},
    "after": {"spatial_pos": 0.96, "temporal_pos": 0.98, "spatial_neg": 0.0, "temporal_neg": 0.0},
}
VARIANT_LABELS = {"baseline": "baseline", "vd": "+STCCL (VD)", "cm": "+STCCL (CM)", "copy": "copy input"}


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
    s = summarise_pairs(root / "aligned_path.json", root)
    rows = [("actors", s["actors"]), ("pairs", s["pairs"]), ("test actors", ", ".join(s["test_actors"]))]
    rows += [(f"{k} windows (T={s['T']})", v["windows"]) for k, v in s["splits"].items()]
    return pd.DataFrame(rows, columns=["quantity", "value"]).astype({"value": str})


def first_pair(data_root: str | os.PathLike, emotion: str = "happy") -> tuple[str, str, str]:
    """(actor, emotion, "NNN_MMM") of the first train pair with `emotion` (else any emotion)."""
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


# The paper's figure for each measure (SPEC 3.4): before learning it reports per-region similarities
# (corresponding 0.48 / 0.52, non-corresponding 0.02 / 0.01); after learning, the official code's logged
# similarity (0.96 / 0.98; its logs: negatives about 0.01). No mismatched-pair control is reported.
PAPER_CONTROLS = {
    ("per_query", "before", "spatial"): {"pos": 0.48, "neg": 0.02},
    ("per_query", "before", "temporal"): {"pos": 0.52, "neg": 0.01},
    ("official", "after", "spatial"): {"pos": 0.96, "neg": 0.01},
    ("official", "after", "temporal"): {"pos": 0.98, "neg": 0.01},
}
CONTROL_BARS = (("pos", "matched pair"), ("pos_mismatched", "mismatched pair (control)"), ("neg", "other index"))


def control_table(before: dict, after: dict) -> pd.DataFrame:
    """Rows (measure, variant, kind, when) with pos / pos_mismatched / neg / gap and their SDs over seeds,
    plus the paper's number where the paper reports one for that measure and moment (else NaN)."""
    rows = []
    for when, diag in (("before", before), ("after", after)):
        for row in diagnostic_rows(diag, when=when):
            paper = PAPER_CONTROLS.get((row["measure"], when, row["kind"]), {})
            rows.append({**row, "paper_pos": paper.get("pos", np.nan), "paper_neg": paper.get("neg", np.nan)})
    if not rows:
        raise StcclError("diagnose outputs carry no per_query / official entries; re-run `stccl diagnose`")
    return pd.DataFrame(rows)


def control_figure(table: pd.DataFrame, gap_target: float = 0.3):
    """Matched, mismatched-pair and other-index similarity before/after training, with SD error bars over seeds.

    One row of panels per measure, one panel per (variant, kind); a dashed line marks the paper's number where
    it reports one, and the title gives gap = matched - mismatched after training against `gap_target`.
    """
    measures = list(dict.fromkeys(table["measure"]))
    cols = list(dict.fromkeys(zip(table["variant"], table["kind"])))
    fig, axes = plt.subplots(len(measures), len(cols), figsize=(3.0 * len(cols), 2.9 * len(measures)),
                             squeeze=False, sharey=True)
    for i, measure in enumerate(measures):
        for j, (variant, kind) in enumerate(cols):
            ax = axes[i, j]
            t = table[(table.measure == measure) & (table.variant == variant) & (table.kind == kind)].set_index("when")
            x = np.arange(len(CONTROL_BARS))
            for k, when in enumerate(("before", "after")):
                if when not in t.index:
                    continue
                r = t.loc[when]
                ax.bar(x + (k - 0.5) * 0.38, [r[n] for n, _ in CONTROL_BARS], width=0.36,
                       yerr=[r[f"{n}_sd"] for n, _ in CONTROL_BARS], capsize=2, color=f"C{k}",
                       alpha=0.55 if when == "before" else 1.0, label=f"{when} training")
                for n, xo in (("pos", 0), ("neg", 2)):
                    paper = r[f"paper_{n}"]
                    if np.isfinite(paper):
                        ax.plot([xo + (k - 0.5) * 0.38 - 0.18, xo + (k - 0.5) * 0.38 + 0.18], [paper, paper],
                                "k--", lw=1.2, label="paper" if n == "pos" else None)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xticks(x, ["matched", "mismatched", "other idx"], fontsize=8)
            gap = t.loc["after", "gap"] if "after" in t.index else np.nan
            ax.set_title(f"{measure.replace('_', '-')}: {variant.upper()} {kind}\ngap after {gap:.2f} "
                         f"(target >= {gap_target})", fontsize=9)
            if j == 0:
                ax.set_ylabel("cosine similarity (mean ± SD over seeds)", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=len(uniq), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def pos_neg_figure(table: pd.DataFrame):
    """The paper's before/after figure: mean cosine similarity of positive and negative pairs."""
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
    return compare_runs([str(d) for d in run_dirs])


def eval_markdown(table: pd.DataFrame) -> str:
    return to_markdown(table)


def write_eval_table(table: pd.DataFrame, stem: str | os.PathLike) -> list[Path]:
    """`stem`.csv (every column) and `stem`.md ('mean ± std' per metric)."""
    stem = Path(stem)
    atomic_write_csv(stem.with_suffix(".csv"), table)
    atomic_write_text(stem.with_suffix(".md"), eval_markdown(table))
    return [stem.with_suffix(".csv"), stem.with_suffix(".md")]


def side_by_side_figure(npz_path: str | os.PathLike):
    """Rows: source, ground truth, then each variant's output, from the frames saved by notebook 04."""
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
    metrics = [m for m in metrics if m in df]
    arrows = {m: ("↑" if SUMMARY_METRICS.get(m, False) else "↓") for m in metrics}
    view = df[["factor", "level", "run"] + metrics].rename(columns={m: f"{m} {arrows[m]}" for m in metrics})
    return markdown(view)


def ablation_figure(df: pd.DataFrame, metrics: Sequence[str] = ("mouth_l1", "mouth_param_err", "emotion_acc", "csim")):
    """Seaborn strip plot per metric: one point per grid point, the default setting as a dashed line."""
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
# 02 correlation analysis: one snapshot computed with the package, saved, then plotted
# ---------------------------------------------------------------------------

def correlation_figures(npz_path: str | os.PathLike) -> dict[str, Any]:
    """Figures from a `correlation_snapshot`: sampled positions, VD vectors, CM heatmaps, adaptive weight map."""
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


def flat_eval(eval_json: str | os.PathLike) -> dict[str, float]:
    """The numeric summary scores of an eval.json."""
    ev = read_json(eval_json, "evaluation file")
    return {k: float(v) for k, v in ev.get("summary", {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}
