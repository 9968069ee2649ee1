"""REPORT.md of one params file: every figure, table and number read from the saved outputs.

`build_report` (notebook 06) writes reports/<stem>/: figures (PNG + PDF), tables (CSV + MD),
REPORT.md and REPORT.html. Every number in its text is read from the files the notebooks saved;
nothing is typed in and no network is run. The figures come from `stccl.pipeline.figures`.
`results_vs_paper` builds the paper-claim table (results_vs_paper.md / .csv) from a finished
report folder's CSVs alone; REPORT.md shows it near the top.

How the text decides (the same rules everywhere):
- a run on the smoke preset (PIPELINE_CHECK_PRESETS) checks the pipeline only: its report prints
  the tables and figures but no target verdict and no better / worse wording;
- a change is worded by its direction and size ("14.8 % lower"; accuracies in points; a tie is
  "tie"), never as a signed percentage next to a direction word;
- every number that has seeds carries its SD over seeds; a difference between two means counts
  only beyond YARDSTICK_K standard errors of the difference, a threshold check only beyond
  YARDSTICK_K of its SD; otherwise the text says "not shown";
- a metric whose every row lies next to its bound (figures.SATURATION) is flagged as saturated
  and its change is not quoted as a gain.

At about 850 lines this stays one module: the section writers, the verdicts and the results table
apply the same rules above to the same saved outputs, and keeping them together keeps the rules in
one place.
"""

from __future__ import annotations

import html
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import markdown as md
import numpy as np
import pandas as pd

from stccl.io import atomic_write_csv, atomic_write_text, read_json, read_jsonl
from stccl.pipeline.figures import (SATURATION, TARGET_GAP, TARGET_NEG, TARGET_POS, VARIANT_LABELS, ablation_figure,
                                    ablation_markdown, alignment_figure, control_figure, correlation_figures,
                                    data_summary_table, eval_markdown, first_pair, loss_curves, markdown, plt,
                                    pos_neg_figure, save_figure, saturated, seed_sd, side_by_side_figure,
                                    spfem_comparison_figure, spfem_training_figure, weight_map_sentence,
                                    weight_map_summary, write_table)
from stccl.pipeline import spfem_targets as _spfem_targets
from stccl.pipeline.params import Paths, ReproduceParams
from stccl.pipeline.spfem_targets import METRICS as SPFEM_TARGET_METRICS
from stccl.pipeline.spfem_targets import YARDSTICK_K, diff_se
from stccl.pipeline.spfem_targets import comparison_markdown, spfem_comparison, target_verdicts, verdicts_markdown
from stccl.spfem.evaluate import SUMMARY_METRICS

# The paper's MEAD intra-ID numbers (arXiv 2604.20226, main comparison table; FAD and LSE-D lower, CSIM higher),
# shown beside the measured ones.
PAPER_MEAD_INTRA = pd.DataFrame(
    [("NED", 2.108, 9.454, 0.831), ("NED + STCCL (VD)", 1.077, 9.359, 0.914), ("NED + STCCL (CM)", 1.103, 9.330, 0.916),
     ("ICface", 6.795, 10.083, 0.775), ("ICface + STCCL (VD)", 6.634, 9.411, 0.806),
     ("ICface + STCCL (CM)", 6.651, 9.412, 0.810)],
    columns=["method", "FAD", "LSE-D", "CSIM"])
# The kit's SPFEM target (TARGET_POS, TARGET_NEG, TARGET_GAP for the diagnostic live in figures): +STCCL lowers
# mouth_l1 by at least TARGET_MOUTH_DROP_PCT % against the baseline, with emotion accuracy at most
# TARGET_EMOTION_POINTS below the baseline's and CSIM not lower: issue 14's numbers, from spfem_targets.
TARGET_MOUTH_DROP_PCT = _spfem_targets.TARGET_MOUTH_DROP_PCT
TARGET_EMOTION_POINTS = _spfem_targets.TARGET_EMOTION_DROP_POINTS / 100.0
# A difference counts when it exceeds YARDSTICK_K standard errors (means over seeds) or SDs (single values);
# YARDSTICK_K and diff_se come from spfem_targets, so both tables judge noise alike.
# Presets whose runs only check that the pipeline runs end to end (params/smoke.yaml): no verdicts.
PIPELINE_CHECK_PRESETS = ("tiny",)
PIPELINE_CHECK_NOTE = "pipeline check only, no verdicts"
RATE_METRICS = ("emotion_acc",)   # changes in points, not percent


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


def fmt_sd(mean: Any, sd: Any, nd: int = 4) -> str:
    """'0.0143 ± 0.0010', or the mean alone when there is no SD (one seed)."""
    s = fmt(mean, nd)
    return s if s == "n/a" or not _finite(sd) else f"{s} ± {fmt(sd, nd)}"


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def pct_change(new: float, base: float) -> str:
    if base == 0 or not (math.isfinite(new) and math.isfinite(base)):
        return "n/a"
    return f"{100.0 * (new - base) / abs(base):+.1f}%"


def change_words(new: float, base: float, nd: int = 4, points: bool = False) -> str:
    """The change from `base` to `new` in words: '14.8 % lower', '9.7 points higher' (`points`: a rate in [0, 1]),
    'tie (0.3333 both)' when the two agree to `nd` decimals. Never a signed number beside a direction word."""
    if not (_finite(new) and _finite(base)):
        return "n/a"
    new, base = float(new), float(base)
    if fmt(new, nd) == fmt(base, nd):
        return f"tie ({fmt(new, nd)} both)"
    word = "higher" if new > base else "lower"
    if points:
        return f"{100.0 * abs(new - base):.1f} points {word}"
    if base == 0:
        return f"{fmt(abs(new - base), nd)} {word}"
    pct = 100.0 * abs(new - base) / abs(base)
    return f"{pct:.1f} % {word}" if pct >= 0.05 else f"{pct:.2g} % {word}"


def against(value: float, threshold: float, noise: float = float("nan"), at_least: bool = True) -> str:
    """'yes' / 'no' for `value` >= `threshold` (or <= with `at_least=False`); 'not shown' when `noise` (an SD or
    SE) is known and `value` lies within YARDSTICK_K of it from the threshold."""
    if not (_finite(value) and _finite(threshold)):
        return "no"
    margin = (value - threshold) if at_least else (threshold - value)
    if _finite(noise) and abs(margin) <= YARDSTICK_K * float(noise) and float(noise) > 0:
        return "not shown"
    return "yes" if margin >= 0 else "no"


def outcome(answers: list[str]) -> str:
    """'met' when every check says yes, 'not met' when one says no, else 'not shown'."""
    if any(a == "no" for a in answers):
        return "not met"
    return "met" if all(a == "yes" for a in answers) else "not shown"


def is_pipeline_check(preset: str | None = None, report_dir: str | Path | None = None) -> bool:
    """A smoke run: its preset (or, from a report folder, the preset in data_summary.csv) is a pipeline-check one."""
    if preset is None and report_dir is not None and (Path(report_dir) / "data_summary.csv").is_file():
        ds = pd.read_csv(Path(report_dir) / "data_summary.csv")
        hit = ds.loc[ds["quantity"] == "preset", "value"]
        preset = str(hit.iloc[0]) if len(hit) else None
    return preset in PIPELINE_CHECK_PRESETS


def compare_text(metric: str, table: pd.DataFrame, variant: str, reference: str = "baseline") -> str:
    """'mouth_l1 0.0143 ± 0.0010 vs 0.0169 ± 0.0008: 15.3 % lower, beyond 2 SE (0.0011): better' for one metric of
    the comparison table; saturated metrics and differences within the yardstick make no claim."""
    row = table[table["variant"] == variant].iloc[0]
    base = table[table["variant"] == reference].iloc[0]
    n, b = float(row[f"{metric}_mean"]), float(base[f"{metric}_mean"])
    sd_n, sd_b = row.get(f"{metric}_std", np.nan), base.get(f"{metric}_std", np.nan)
    head = f"{metric} {fmt_sd(n, sd_n)} vs {fmt_sd(b, sd_b)}"
    if saturated(metric, table[f"{metric}_mean"]):
        bound, margin = SATURATION[metric]
        return (f"{head}: saturated (every row within {margin:g} of its bound {bound:g}), {fmt(abs(n - b), 4)} "
                f"apart; no gain claimed")
    words = change_words(n, b, points=metric in RATE_METRICS)
    if words.startswith("tie"):
        return f"{metric} {words}"
    se = diff_se(sd_n, row["runs"], sd_b, base["runs"])
    if not _finite(se):
        return f"{head}: {words}; one seed, no spread: no claim"
    if abs(n - b) <= YARDSTICK_K * se:
        return f"{head}: {words}, within {YARDSTICK_K:g} SE ({fmt(YARDSTICK_K * se, 4)}): no difference shown"
    return f"{head}: {words}, beyond {YARDSTICK_K:g} SE ({fmt(YARDSTICK_K * se, 4)}): " \
           f"{_direction(n, b, SUMMARY_METRICS[metric]).split()[0]}"


def _direction(new: float, base: float, higher_better: bool) -> str:
    if not (math.isfinite(new) and math.isfinite(base)) or new == base:
        return "no change from"
    better = (new > base) == higher_better
    return "better than" if better else "worse than"


# ---------------------------------------------------------------------------
# 06: every figure, table and REPORT.md from the saved outputs of one params file
# ---------------------------------------------------------------------------

def build_report(params: ReproduceParams, paths: Paths, show: bool = False, verdicts: bool | None = None) -> Path:
    """Write reports/<stem>/: figures (PNG + PDF), tables (CSV + MD) and REPORT.md, from saved outputs only.

    `params`, `paths` come from `stccl.pipeline.params.notebook_context`. Sections whose inputs were not produced
    (a notebook left out of the params file) say so instead of failing. `verdicts` (default: not a pipeline-check
    preset) decides whether target verdicts and better / worse claims are printed.
    """
    rd, out = paths.run_dir, paths.report_dir
    figs_dir = out / "figures"
    figs_dir.mkdir(parents=True, exist_ok=True)
    for stale in figs_dir.glob("loss_spfem_*"):  # one plot per SPFEM run, replaced by figures/spfem_training
        stale.unlink()
    check_only = (not verdicts) if verdicts is not None else is_pipeline_check(params.preset)

    def fig_out(fig, name: str) -> str:
        save_figure(fig, figs_dir / name)
        if not show:
            plt.close(fig)
        return f"![{name}](figures/{name}.png)"

    ctx = {"check_only": check_only}
    sections: list[str] = []
    for section in (_data_section, _correlation_section, _metric_section, _spfem_section, _ablation_section,
                    _timings_section):
        sections += section(params, paths, fig_out, **ctx)
    text = [f"# STCCL reproduction report: `{paths.params_file}`", "",
            f"All numbers below are read from the saved outputs in `{rd}` by `stccl.pipeline.report.build_report` "
            f"(notebook 06); none is typed in. The paper's numbers are those of arXiv 2604.20226 and its official "
            f"repository, as listed in `stccl/pipeline/figures.py` (`PAPER_POS_NEG`, `PAPER_CONTROLS`) and "
            f"`stccl/pipeline/report.py` (`PAPER_MEAD_INTRA`).", ""]
    if check_only:
        text += [f"**Pipeline check only.** `{paths.params_file}` uses the `{params.preset}` preset with a few "
                 f"training steps per run: it checks that every notebook runs end to end, and its numbers mean "
                 f"nothing about the method. The report shows the tables and figures the pipeline produced, with "
                 f"no target verdicts and no claim that one run beats another.", ""]
    else:
        text += [f"How to read the numbers: mean ± SD over seeds wherever there are seeds. A difference between two "
                 f"means counts only beyond {YARDSTICK_K:g} standard errors of the difference "
                 f"(SE = sqrt(SD_a²/n_a + SD_b²/n_b)); a value checked against a threshold only beyond "
                 f"{YARDSTICK_K:g} of its SD; otherwise the text says \"not shown\". "
                 + ", ".join(f"{m.upper()} is flagged as saturated when every row lies within {mg:g} of {bd:g}"
                             for m, (bd, mg) in SATURATION.items())
                 + ": its changes are then not read as gains.", ""]
    size = evaluation_size(paths)
    if len(size):
        write_table(size, out / "evaluation_size")
        text += ["What each evaluation scores (`evaluation_size.csv`):", "", markdown(size), ""]
    rvp = results_vs_paper(out, pipeline_check=check_only)
    text += ["## Results against the paper", "",
             results_vs_paper_markdown(rvp, pipeline_check=check_only) if len(rvp) else "No results to compare yet.",
             "", "The same table: `results_vs_paper.md` / `.csv` in this folder.", ""]
    body = "\n".join(text + sections) + "\n"
    atomic_write_text(out / "REPORT.md", body)
    atomic_write_text(out / "REPORT.html", markdown_to_html(body, title=f"STCCL report: {paths.params_file}"))
    return out / "REPORT.md"


def _data_section(params: ReproduceParams, paths: Paths, fig_out: Callable[[Any, str], str], **ctx) -> list[str]:
    """Section 1: the data summary table, the synthetic set's numbers and the alignment figure."""
    out, root = paths.report_dir, paths.data_root
    figs_dir = out / "figures"
    text: list[str] = []
    text += ["## 1. Data", ""]
    if (root / "aligned_path.json").is_file():
        summary = data_summary_table(root)
        write_table(summary, out / "data_summary")
        text += [markdown(summary), ""]
        if (root / "summary.json").is_file():
            s = read_json(root / "summary.json")
            shutil.copyfile(root / "contact_sheet.png", figs_dir / "contact_sheet.png")
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
    return text


def _correlation_section(params: ReproduceParams, paths: Paths, fig_out: Callable[[Any, str], str],
                         **ctx) -> list[str]:
    """Section 2: the correlation snapshot figures saved by notebooks 02 and 03, with what the weight maps show."""
    rd = paths.run_dir
    text: list[str] = []
    text += ["## 2. Spatial and temporal coherent correlations", ""]
    snap = rd / "correlation_snapshot.npz"
    if snap.is_file():
        figs = correlation_figures(snap, paths.data_root)
        text += ["Sampled anchors with their 8 neighbours and the temporal positions; VD vectors and their "
                 "cross-rendition cosine similarities; spatial CM (one row per anchor over every sampled position) "
                 "and temporal CM (frame by frame) of both renditions; the adaptive weight map. The network here is "
                 "the untrained one (notebook 02).", ""]
        for key in ("positions", "vd", "cm", "weights"):
            text += [fig_out(figs[key], f"correlation_{key}"), ""]
        text += [weight_map_sentence(weight_map_summary(snap, paths.data_root)), ""]
        trained = rd / "correlation_snapshot_trained.npz"
        if trained.is_file():
            text += ["The same weight map with the trained metric network (notebook 03):", "",
                     fig_out(correlation_figures(trained, paths.data_root)["weights"], "correlation_weights_trained"),
                     "", weight_map_sentence(weight_map_summary(trained, paths.data_root)), ""]
    else:
        text += ["Not run (no correlation snapshot).", ""]
    return text


def metric_steps_text(metric_run: Path, diagnose_after: Path | None = None) -> str:
    """'1122 steps (stopped by its 10-minute wall-time cap)': the step of the checkpoint that the diagnostic and
    SPFEM use (diagnose_after.json), not the last logged step."""
    step = None
    if diagnose_after is not None and diagnose_after.is_file():
        step = read_json(diagnose_after).get("step")
    if step is None and (metric_run / "metrics.jsonl").is_file():
        step = read_jsonl(metric_run / "metrics.jsonl")[-1]["step"]
    if step is None:
        return "n/a steps"
    why = ""
    if (metric_run / "config.json").is_file():
        cfg = read_json(metric_run / "config.json")
        cfg = cfg.get("config", cfg)
        cap, minutes = cfg.get("max_steps") or 0, cfg.get("max_minutes") or 0
        if minutes and (not cap or int(step) < int(cap)):
            why = f" (stopped by its {fmt(float(minutes), 0)}-minute wall-time cap)"
    return f"{int(step)} steps{why}"


def _diag_size(path: Path) -> str:
    if not path.is_file():
        return ""
    d = read_json(path)
    seeds = d.get("seeds") or []
    return (f"{d.get('windows', 'n/a')} windows of the {d.get('split', 'test')} identities, "
            f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} of positions")


def _metric_section(params: ReproduceParams, paths: Paths, fig_out: Callable[[Any, str], str],
                    check_only: bool = False, **ctx) -> list[str]:
    """Section 3: the metric loss and the before/after positive, control and negative similarities."""
    rd, out = paths.run_dir, paths.report_dir
    text: list[str] = []
    text += ["## 3. Metric network: before/after positive and negative similarity", ""]
    mrun = paths.metric_run
    if (mrun / "metrics.jsonl").is_file():
        recs = read_jsonl(mrun / "metrics.jsonl")
        terms = [k for k in ("loss", "scc_vd", "scc_cm", "tcc_vd", "tcc_cm") if k in recs[-1]]
        text += [fig_out(loss_curves(mrun / "metrics.jsonl", keys=terms, title="metric network: total loss and "
                                     "its terms", logy=True), "metric_loss"), ""]
        text += [f"The metric network trained {metric_steps_text(mrun, rd / 'diagnose_after.json')} (the paper: "
                 f"100 epochs on MEAD); its logged loss went from {fmt(recs[0]['loss'])} (first logged step) to "
                 f"{fmt(recs[-1]['loss'])} (last logged step).", ""]
    ct = pd.read_csv(rd / "controls.csv") if (rd / "controls.csv").is_file() else None
    size = _diag_size(rd / "diagnose_after.json")
    if (rd / "pos_neg.csv").is_file():
        pn = pd.read_csv(rd / "pos_neg.csv")
        write_table(pn, out / "pos_neg")
        text += [f"Diagnostic size: {size}." if size else "", "", markdown(pn), "",
                 fig_out(pos_neg_figure(pn, ct), "pos_neg"), ""]
        sd = _per_query_sd(ct)
        for r in pn.itertuples():
            kind, name = r.measure.split("_")
            before, after = sd.get((r.variant, kind, name, "before")), sd.get((r.variant, kind, name, "after"))
            line = (f"- {r.variant.upper()} {kind} {name}: {fmt_sd(r.before, before, 3)} before training (paper "
                    f"{fmt(r.paper_before, 2)}) -> {fmt_sd(r.after, after, 3)} after (paper {fmt(r.paper_after, 2)})")
            if not check_only and name == "pos":
                gap = r.paper_after - r.after
                line += ("; reaches the paper's value" if gap <= 0.02 else
                         f"; {fmt(gap, 2)} below the paper's {fmt(r.paper_after, 2)}")
            text.append(line + ".")
        text += ["", "The paper's after-training numbers were logged with the official code's measure; the "
                 "per-query measure above is the one PatchNCE trains. The control figure below shows both.", ""]
        if not check_only:
            text += [pos_neg_verdict(pn, ct), ""]
    if ct is not None:
        text += _premise_text(ct, out, fig_out)
        write_table(ct, out / "controls")
        text += ["### Every positive beside its mismatched-pair control", "",
                 "`pos` compares a query with its matched key, `pos_mismatched` with the key of a mismatched pair "
                 "(same actor and emotions, another sentence: the same face layout without the same speech), "
                 "`neg` with another index; `gap = pos - pos_mismatched` is what speech correspondence adds. "
                 f"Mean ± SD over the diagnostic's seeds ({size or 'held-out identities'}).", "",
                 fig_out(control_figure(ct), "controls"), ""]
        if not check_only:
            text += [control_verdict(ct), ""]
    elif not (rd / "pos_neg.csv").is_file():
        text += ["Not run (no diagnose outputs).", ""]
    return text


def premise_table(ct: pd.DataFrame) -> pd.DataFrame:
    """The paper's premise measured before any learning (its figure, part a), from the controls table.

    One row per variant and kind (per-query measure, untrained network, held-out pairs): the similarity of
    corresponding regions (`pos`), of non-corresponding regions (`neg`), of corresponding regions of a
    mismatched pair (same face, other sentence), and the gap matched - mismatched, beside the paper's values.
    """
    before = ct[(ct["when"] == "before") & (ct["measure"] == "per_query")]
    rows = []
    for r in before.itertuples():
        rows.append({"variant": r.variant.upper(), "kind": r.kind,
                     "corresponding": fmt_sd(r.pos, r.pos_sd, 3), "non-corresponding": fmt_sd(r.neg, r.neg_sd, 3),
                     "mismatched pair (control)": fmt_sd(r.pos_mismatched, r.pos_mismatched_sd, 3),
                     "gap": fmt_sd(r.gap, r.gap_sd, 3),
                     "paper corresponding": fmt(r.paper_pos, 2), "paper non-corresponding": fmt(r.paper_neg, 2)})
    return pd.DataFrame(rows)


def _premise_text(ct: pd.DataFrame, out: Path, fig_out: Callable[[Any, str], str]) -> list[str]:
    """The premise table and, where `experiments/coherence_sweep.py` has run, its figure and table."""
    table = premise_table(ct)
    if not len(table):
        return []
    write_table(table, out / "premise")
    text = ["### The premise before learning", "",
            "The paper's figure (a): before any metric learning, the correlation of corresponding regions of a "
            "neutral and an emotional frame is similar (0.48 spatial, 0.52 temporal) and that of non-corresponding "
            "regions is not (0.02 / 0.01). The same measure on this data, with the untrained network, beside the "
            "control the figure lacks: corresponding regions of a mismatched pair (same face, another sentence). "
            "A premise that the data carries shows as corresponding > mismatched, i.e. a positive gap "
            "(`premise.csv`).", "", markdown(table), ""]
    sweep_dir = out.parent / "coherence"  # reports/coherence beside reports/<stem>
    sweep = sweep_dir / "coherence_sweep.png"
    if sweep.is_file() and (sweep_dir / "table.md").is_file():
        shutil.copyfile(sweep, out / "figures" / "coherence_sweep.png")
        text += ["### How the learned gap depends on shared speech (coherence sweep)", "",
                 f"From `{sweep_dir}` (`experiments/coherence_sweep.py`, small data sets at five `coherence` "
                 "levels of the preset the table names, which need not be this run's; the default metric config "
                 "for a fixed number of steps):", "",
                 (sweep_dir / "table.md").read_text().strip(), "",
                 "![coherence sweep](figures/coherence_sweep.png)", ""]
    return text


def _per_query_sd(ct: pd.DataFrame | None) -> dict[tuple, float]:
    """{(variant, kind, 'pos' | 'neg', when): SD over seeds} of the per-query measure (the pos_neg table's)."""
    if ct is None:
        return {}
    out = {}
    for r in ct[ct["measure"] == "per_query"].itertuples():
        out[(r.variant, r.kind, "pos", r.when)] = r.pos_sd
        out[(r.variant, r.kind, "neg", r.when)] = r.neg_sd
    return out


def evaluation_size(paths: Paths) -> pd.DataFrame:
    """How many items each evaluation of this run scores: the diagnostic, the SPFEM comparison, an ablation point."""
    rows = []
    d = paths.run_dir / "diagnose_after.json"
    if d.is_file():
        j = read_json(d)
        rows.append({"evaluation": "metric diagnostic", "identities": ", ".join(_split_actors(paths, j)),
                     "items": f"{j.get('windows')} windows", "frames": "", "seeds": len(j.get("seeds") or [])})
    evals = sorted(paths.run_dir.glob("spfem_*_s*/eval.json"))
    if evals:
        e = read_json(evals[0])
        seeds = len({read_json(p).get("seed") for p in evals})
        rows.append({"evaluation": "SPFEM comparison (each run)", "identities": ", ".join(e.get("actors", [])),
                     "items": f"{e['clips']} clip x target-emotion pairs", "frames": e.get("frames", ""),
                     "seeds": seeds})
    ab = sorted(paths.ablation_dir.glob("*/spfem/eval.json")) if paths.ablation_dir.is_dir() else []
    if ab:
        e = read_json(ab[0])
        rows.append({"evaluation": "ablation grid point", "identities": ", ".join(e.get("actors", [])),
                     "items": f"{e['clips']} clip x target-emotion pairs", "frames": e.get("frames", ""), "seeds": 1})
    return pd.DataFrame(rows, columns=["evaluation", "identities", "items", "frames", "seeds"])


def _split_actors(paths: Paths, diag: dict) -> list[str]:
    s = paths.data_root / "summary.json"
    if diag.get("split", "test") == "test" and s.is_file():
        return list(read_json(s).get("test_actors", []))
    return [str(diag.get("split", ""))]


def _spfem_section(params: ReproduceParams, paths: Paths, fig_out: Callable[[Any, str], str],
                   check_only: bool = False, **ctx) -> list[str]:
    """Section 4: the SPFEM comparison table, its comparisons and verdicts, training curves and frames."""
    rd, out = paths.run_dir, paths.report_dir
    text: list[str] = []
    text += ["## 4. SPFEM: baseline vs +STCCL", ""]
    if (rd / "spfem_comparison.csv").is_file():
        table = pd.read_csv(rd / "spfem_comparison.csv")
        atomic_write_csv(out / "spfem_comparison.csv", table)
        atomic_write_text(out / "spfem_comparison.md", eval_markdown(table))
        size = evaluation_size(paths)
        ev = size[size["evaluation"].str.startswith("SPFEM")]
        n_txt = (f" Each run is scored on {ev['items'].iloc[0]} ({ev['frames'].iloc[0]} frames) of identities "
                 f"{ev['identities'].iloc[0]}." if len(ev) else "")
        text += ["Evaluated on the held-out identities against the rendered ground truth (mean ± SD over seeds; "
                 "`copy` copies the input: perfect speech, no emotion change)." + n_txt + " Arrows: "
                 + ", ".join(f"{k} {'↑' if hb else '↓'}" for k, hb in SUMMARY_METRICS.items()) + ".", "",
                 eval_markdown(table), "", fig_out(spfem_comparison_figure(table), "spfem_comparison"), ""]
        text += spfem_target_tables(table, out, check_only)
        base = table[table["variant"] == "baseline"]
        if len(base) and not check_only:
            for v in ("vd", "cm"):
                if (table["variant"] == v).any():
                    parts = [compare_text(k, table, v) for k in ("mouth_l1", "mouth_param_err", "emotion_acc",
                                                                 "csim", "fad") if f"{k}_mean" in table]
                    text.append(f"- {VARIANT_LABELS[v]} vs baseline: " + "; ".join(parts) + ".")
            text += [""] + [spfem_verdict(table, v) for v in ("vd", "cm") if (table["variant"] == v).any()]
        copy = table[table["variant"] == "copy"]
        if len(copy) and len(base) and "emotion_acc_mean" in table and not check_only:
            acc = {v: fmt_sd(r["emotion_acc_mean"], r.get("emotion_acc_std")) for v, r in
                   zip(table["variant"], table.to_dict("records"))}
            text += ["", f"- Read the speech and identity numbers against the `copy` row, which changes nothing: "
                         f"mouth_l1 {fmt(float(copy['mouth_l1_mean'].iloc[0]), 4)}, emotion_acc {acc['copy']}. "
                         f"Target-emotion accuracy: baseline {acc['baseline']}, "
                         + ", ".join(f"{VARIANT_LABELS.get(v, v)} {acc[v]}" for v in ("weak_emotion", "vd", "cm")
                                     if v in acc)
                         + ". A +STCCL run whose accuracy is at or below the copy row's kept the speech by not "
                           "manipulating the expression, which is not the paper's result."]
        steps = [read_json(p).get("steps") for p in sorted(rd.glob("spfem_*_s*/eval.json"))]
        steps = sorted({int(s) for s in steps if s is not None})
        text += ["", "Paper (MEAD intra-ID, NED / ICface backbones, FAD and CSIM with ArcFace, LSE-D with "
                     "SyncNet) for comparison; the kit's generator, data and evaluation nets differ, so only the "
                     "direction of a change can be compared, not the values:", "",
                 markdown(PAPER_MEAD_INTRA, ".3f"), "",
                 "In the paper STCCL lowers FAD and raises CSIM for both backbones."
                 + (f" Each SPFEM run here trained {'/'.join(map(str, steps))} steps." if steps else ""), ""]
        write_table(PAPER_MEAD_INTRA, out / "paper_mead_intra", ".3f")
        runs = sorted(p.parent for p in rd.glob("spfem_*_s*/metrics.jsonl"))
        if runs:
            text += [fig_out(spfem_training_figure(runs), "spfem_training"), ""]
        if (rd / "side_by_side.npz").is_file():
            text += [fig_out(side_by_side_figure(rd / "side_by_side.npz"), "side_by_side"), ""]
    else:
        text += ["Not run (no evaluated SPFEM runs).", ""]
    return text


def spfem_target_tables(table: pd.DataFrame, out: Path, check_only: bool = False) -> list[str]:
    """Issue 14's comparison (copy, baseline, edit-less control, +VD, +CM) and its per-target verdicts.

    Writes spfem_targets_comparison.{csv,md} and (unless a pipeline check) spfem_target_verdicts.{csv,md} into
    the report folder; returns the REPORT.md lines. Computed by `stccl.pipeline.spfem_targets` from the table.
    """
    missing = [f"{m}_mean" for m in SPFEM_TARGET_METRICS if f"{m}_mean" not in table]
    if missing:  # a comparison saved before SSIM was part of every evaluation
        return ["### Targets of issue 14", "", f"Not computed: the comparison table lacks {', '.join(missing)}.", ""]
    comp = spfem_comparison(table)
    atomic_write_csv(out / "spfem_targets_comparison.csv", comp)
    atomic_write_text(out / "spfem_targets_comparison.md", comparison_markdown(comp))
    text = ["### Targets of issue 14: comparison", "",
            "Mean ± SD over seeds (copy: one deterministic run). The edit-less control is the baseline with its "
            "emotion loss weakened (`weak_emotion_cls_factor` in the params file), so that its emotion accuracy "
            "falls about as far as +STCCL's: if +STCCL's mouth gain came only from editing less, the control "
            "would show it too (`spfem_targets_comparison.csv`).", "", comparison_markdown(comp), ""]
    if check_only or not (table["variant"] == "baseline").any():
        return text + ["No target verdicts (" + ("pipeline check" if check_only else "no baseline row") + ").", ""]
    ver = target_verdicts(table)
    atomic_write_csv(out / "spfem_target_verdicts.csv", ver)
    atomic_write_text(out / "spfem_target_verdicts.md", verdicts_markdown(ver))
    met = int((ver["verdict"] == "met").sum())
    return text + ["### Targets of issue 14: verdicts", "",
                   f"{met} of {len(ver)} target checks met, computed from the table above by "
                   f"`stccl.pipeline.spfem_targets.target_verdicts` (`spfem_target_verdicts.csv`). 'By how much': "
                   f"the distance past the threshold, positive on the good side; 'within noise' when it is smaller "
                   f"than {YARDSTICK_K:g} standard errors of the difference of the means over seeds.", "",
                   verdicts_markdown(ver), "",
                   "What was tried where a target is missed: the generators measured before this one (a warp; a "
                   "warp plus a bounded appearance residual under a mask; the NED-like generator with free "
                   "landmarks, with an expression basis, with a landmark-space emotion loss and several edit "
                   "penalties) are listed with their numbers in the header of `params/spfem_default_vd.yaml`; "
                   "`experiments/ned_like.py` (reports/ned_like/) has the 3-seed comparison of a setting whose "
                   "baseline damages the mouth more; the README's \"What does not work yet\" says what was not "
                   "tried.", ""]


def _ablation_section(params: ReproduceParams, paths: Paths, fig_out: Callable[[Any, str], str],
                      check_only: bool = False, **ctx) -> list[str]:
    """Section 5: the ablation table and figure (also published to ablation.publish_dir)."""
    rd, out = paths.run_dir, paths.report_dir
    text: list[str] = []
    text += ["## 5. Ablations", ""]
    if (rd / "ablations.csv").is_file() and len(pd.read_csv(rd / "ablations.csv")):
        ab = pd.read_csv(rd / "ablations.csv")
        atomic_write_csv(out / "ablations.csv", ab)
        atomic_write_text(out / "ablations.md", ablation_markdown(ab))
        comp = rd / "spfem_comparison.csv"
        sds = seed_sd(pd.read_csv(comp)) if comp.is_file() else {}
        if params.ablation.publish_dir:  # the main run's grid also lands at reports/ablations.*
            pub = Path(params.ablation.publish_dir)
            pub.mkdir(parents=True, exist_ok=True)
            atomic_write_csv(pub / "ablations.csv", ab)
            atomic_write_text(pub / "ablations.md", ablation_markdown(ab))
            fig = ablation_figure(ab, seed_sd=sds, k_sd=YARDSTICK_K)
            save_figure(fig, pub / "ablations")
            plt.close(fig)
        size = evaluation_size(paths)
        ev = size[size["evaluation"] == "ablation grid point"]
        text += [f"{len(ab)} grid points, one factor at a time around the default, one seed each; each retrains "
                 f"the metric network for {int(ab['metric_steps'].iloc[0])} steps (shared by points with the same "
                 f"metric settings) and trains SPFEM for {int(ab['spfem_steps'].iloc[0])} steps"
                 + (f"; each point is scored on {ev['items'].iloc[0]} of identities {ev['identities'].iloc[0]}"
                    if len(ev) else "") + ".", "",
                 ablation_markdown(ab), "",
                 fig_out(ablation_figure(ab, seed_sd=sds, k_sd=YARDSTICK_K), "ablations"), ""]
        if "spfem_clip_frames" in ab and (ab["variant"] != "baseline").any():
            plug = ab[ab["variant"] != "baseline"].iloc[0]
            text += [f"The metric rows (window T, lambda_T, tau, ...) change only how the metric network is "
                     f"trained. The STCCL plug-in in SPFEM sees clips of {int(plug['spfem_clip_frames'])} frames "
                     f"and weighs its SCC / TCC terms by {fmt(plug['spfem_stccl_lambda_S'], 2)} / "
                     f"{fmt(plug['spfem_stccl_lambda_T'], 2)} (lambda_stccl {fmt(plug['spfem_lambda_stccl'], 2)}) "
                     f"at every grid point; the table's metric_* and spfem_* columns record both.", ""]
        if not check_only:
            noise = seed_noise_note(comp)
            if noise:
                text += [noise, ""]
            text += ablation_findings(ab, sds) + [""]
    else:
        text += ["Not run (no ablation results).", ""]
    return text


def ablation_findings(ab: pd.DataFrame, sds: dict[str, float], metrics: tuple[str, ...] = ("mouth_l1", "emotion_acc"),
                      k: float = YARDSTICK_K) -> list[str]:
    """One line per metric: the grid points that differ from the default by more than k seed SDs, or none."""
    ref = ab[ab["factor"] == "default"]
    lines = []
    if not len(ref):
        return lines
    for m in metrics:
        if m not in ab:
            continue
        r = float(ref[m].iloc[0])
        sd = sds.get(m)
        if sd is None or not math.isfinite(sd):
            lines.append(f"- {m}: no seed SD to judge the grid against; no factor is named.")
            continue
        hb = SUMMARY_METRICS[m]
        others = ab[ab["factor"] != "default"]
        beyond = others[(others[m] - r).abs() > k * sd]
        if not len(beyond):
            lo, hi = float(ab[m].min()), float(ab[m].max())
            lines.append(f"- {m}: every grid point lies within {k:g} SD ({fmt(k * sd, 4)}) of the default "
                         f"{fmt(r, 4)} (range {fmt(lo, 4)}-{fmt(hi, 4)}): no factor is shown to change it.")
            continue
        parts = []
        for row in beyond.itertuples():
            val = float(getattr(row, m))
            words = change_words(val, r, points=m in RATE_METRICS)
            parts.append(f"{row.factor} = {row.level} ({fmt(val, 4)}, {words}: "
                         f"{_direction(val, r, hb).split()[0]})")
        lines.append(f"- {m}: beyond {k:g} SD ({fmt(k * sd, 4)}) of the default {fmt(r, 4)}: " + "; ".join(parts) + ".")
    return lines


def _timings_section(params: ReproduceParams, paths: Paths, fig_out: Callable[[Any, str], str], **ctx) -> list[str]:
    """Section 6: the recorded notebook times."""
    text: list[str] = []
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
    return text


def markdown_to_html(text: str, title: str = "STCCL report") -> str:
    """A standalone HTML page of a Markdown report (tables, images by relative path)."""
    body = md.markdown(text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.45}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{max-width:100%}code{background:#f3f3f3}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


# ---------------------------------------------------------------------------
# Verdicts (none of them is printed for a pipeline check)
# ---------------------------------------------------------------------------

def pos_neg_verdict(pn: pd.DataFrame, controls: pd.DataFrame | None = None) -> str:
    """One line: which variant/kind meets pos >= TARGET_POS with |neg| <= TARGET_NEG after training.

    With `controls` (per-query SDs over seeds), a value within YARDSTICK_K SD of its threshold is 'not shown'.
    """
    after = {(r.variant, r.measure): float(r.after) for r in pn.itertuples()}
    sd = _per_query_sd(controls)
    groups: dict[str, list[str]] = {"met": [], "not met": [], "not shown": []}
    for variant in sorted({v for v, _ in after}):
        for kind in ("spatial", "temporal"):
            pos, neg = after.get((variant, f"{kind}_pos")), after.get((variant, f"{kind}_neg"))
            if pos is None or neg is None:
                continue
            s_pos = sd.get((variant, kind, "pos", "after"), np.nan)
            s_neg = sd.get((variant, kind, "neg", "after"), np.nan)
            label = f"{variant.upper()} {kind} ({fmt_sd(pos, s_pos, 3)} / {fmt_sd(neg, s_neg, 3)})"
            plain = pos >= TARGET_POS and abs(neg) <= TARGET_NEG
            answers = [against(pos, TARGET_POS, s_pos), against(abs(neg), TARGET_NEG, s_neg, at_least=False)]
            verdict = outcome(answers) if (_finite(s_pos) or _finite(s_neg)) else ("met" if plain else "not met")
            groups[verdict].append(label)
    text = (f"**Target** (held-out identities, after training: pos ≥ {TARGET_POS}, |neg| ≤ {TARGET_NEG}): "
            f"met by {', '.join(groups['met']) or 'none'}; not met by {', '.join(groups['not met']) or 'none'}")
    if groups["not shown"]:
        text += f"; not shown (within {YARDSTICK_K:g} SD of a threshold) by {', '.join(groups['not shown'])}"
    return text + " (pos / neg)."


def control_verdict(ct: pd.DataFrame, target: float = TARGET_GAP) -> str:
    """One line: which (measure, variant, kind) reaches gap >= target after training (beyond YARDSTICK_K SD)."""
    after = ct[ct["when"] == "after"]
    groups: dict[str, list[str]] = {"yes": [], "no": [], "not shown": []}
    for r in after.itertuples():
        groups[against(r.gap, target, r.gap_sd)].append(
            f"{r.measure} {r.variant.upper()} {r.kind} ({fmt(r.gap, 2)} ± {fmt(r.gap_sd, 2)})")
    text = (f"**Control** (after training, gap = matched - mismatched ≥ {target}): met by "
            f"{', '.join(groups['yes']) or 'none'}; not met by {', '.join(groups['no']) or 'none'}")
    if groups["not shown"]:
        text += f"; not shown (within {YARDSTICK_K:g} SD of {target}) by {', '.join(groups['not shown'])}"
    return text + "."


def spfem_verdict(table: pd.DataFrame, variant: str) -> str:
    """One line: does +STCCL meet the mouth / CSIM / emotion-accuracy target against the baseline?

    Each check answers yes / no, or 'not shown' when the table has SDs over seeds and the difference lies within
    YARDSTICK_K standard errors of the threshold; the target is met when every check says yes.
    """
    base = table[table["variant"] == "baseline"].iloc[0]
    row = table[table["variant"] == variant].iloc[0]
    se = {k: diff_se(row.get(f"{k}_std"), row.get("runs"), base.get(f"{k}_std"), base.get("runs"))
          for k in ("mouth_l1", "csim", "emotion_acc")}
    one_seed = all(not _finite(row.get(f"{k}_std")) for k in se) and any(f"{k}_std" in table for k in se)
    drop = -float(row["mouth_l1_change_vs_baseline_pct"])  # the comparison table's own change column
    se_drop = 100.0 * se["mouth_l1"] / float(base["mouth_l1_mean"]) if _finite(se["mouth_l1"]) else np.nan
    d_acc = row["emotion_acc_mean"] - base["emotion_acc_mean"]
    mouth_words = change_words(row["mouth_l1_mean"], base["mouth_l1_mean"])
    acc_words = change_words(row["emotion_acc_mean"], base["emotion_acc_mean"], points=True)
    csim_note = ", saturated" if saturated("csim", table["csim_mean"]) else ""
    within = d_acc >= -TARGET_EMOTION_POINTS
    checks = {
        f"mouth_l1 {mouth_words} (needs ≥ {TARGET_MOUTH_DROP_PCT:g} % lower)":
            against(drop, TARGET_MOUTH_DROP_PCT, se_drop),
        f"CSIM {fmt_sd(row['csim_mean'], row.get('csim_std'))} vs {fmt_sd(base['csim_mean'], base.get('csim_std'))}"
        f" (needs not lower{csim_note})": against(row["csim_mean"], base["csim_mean"], se["csim"]),
        f"emotion accuracy {acc_words} (needs at most {TARGET_EMOTION_POINTS * 100:g} points lower)":
            "yes" if within else "no"}
    if _finite(se["emotion_acc"]) and abs(d_acc + TARGET_EMOTION_POINTS) <= YARDSTICK_K * se["emotion_acc"]:
        checks[next(k for k in checks if k.startswith("emotion"))] = "not shown"
    verdict = outcome(list(checks.values()))
    parts = "; ".join(f"{k}: {v}" for k, v in checks.items())
    tail = " One seed, no spread: indicative only." if one_seed else ""
    if "not shown" in checks.values():
        tail += f" 'not shown': within {YARDSTICK_K:g} SE of the threshold."
    return f"- **Target, {VARIANT_LABELS[variant]}: {verdict}** ({parts}).{tail}"


def seed_noise_note(comparison_csv: Path) -> str:
    """How large seed-to-seed differences are (section 4), as a yardstick for single-seed grid points."""
    if not comparison_csv.is_file():
        return ""
    sd = seed_sd(pd.read_csv(comparison_csv), ("mouth_l1", "emotion_acc"))
    if not sd:
        return ""
    return (f"Each grid point is a single seed. The yardstick is the seed-to-seed SD of the main runs (section 4, "
            f"mean over variants): " + ", ".join(f"{fmt(v, 4)} for {k}" for k, v in sd.items())
            + f"; a grid point within {YARDSTICK_K:g} SD of the default (the grey band in the figure) is not "
              f"evidence of an effect.")


# ---------------------------------------------------------------------------
# The paper's claims against the kit's numbers, from a finished report folder's CSVs
# ---------------------------------------------------------------------------

RVP_COLUMNS = ["claim", "paper", "kit", "seeds", "verdict", "figure"]


def results_vs_paper(report_dir: str | Path, pipeline_check: bool | None = None,
                     figure_base: str = "figures", write: bool = True) -> pd.DataFrame:
    """The paper's claims beside the kit's numbers, one row per claim, from reports/<stem>/*.csv.

    Reads pos_neg.csv, controls.csv, spfem_comparison.csv, paper_mead_intra.csv and ablations.csv (each
    optional). Columns: claim, paper (the paper's number), kit (mean ± SD over seeds), seeds, verdict
    (met / not met / not shown / saturated; or PIPELINE_CHECK_NOTE for a pipeline check, detected from
    data_summary.csv when `pipeline_check` is None) and figure (a link, `figure_base`/name.png: give
    "reports/<stem>/figures" for a table pasted into the top-level README). Written to
    results_vs_paper.csv / .md in `report_dir` when `write`.
    """
    rd = Path(report_dir)
    check_only = is_pipeline_check(report_dir=rd) if pipeline_check is None else bool(pipeline_check)
    rows: list[dict] = []
    link = lambda name: f"[{name}]({figure_base}/{name}.png)"
    rows += _rvp_metric_rows(rd, link)
    rows += _rvp_spfem_rows(rd, link)
    rows += _rvp_ablation_rows(rd, link)
    df = pd.DataFrame(rows, columns=RVP_COLUMNS)
    if check_only:
        df["verdict"] = PIPELINE_CHECK_NOTE
    if write:
        atomic_write_csv(rd / "results_vs_paper.csv", df)
        atomic_write_text(rd / "results_vs_paper.md", results_vs_paper_markdown(df, check_only))
    return df


def results_vs_paper_markdown(df: pd.DataFrame, pipeline_check: bool = False) -> str:
    """The table as Markdown, headed by a line saying how to read it (or that it is a pipeline check)."""
    head = (f"**{PIPELINE_CHECK_NOTE[0].upper() + PIPELINE_CHECK_NOTE[1:]}**: this run is too short to mean "
            f"anything; the numbers only show that every step produced its output." if pipeline_check else
            f"Mean ± SD over seeds. Verdicts: *met* / *not met* only where the difference exceeds "
            f"{YARDSTICK_K:g} SE (means over seeds) or {YARDSTICK_K:g} SD (a value against a threshold); "
            f"*not shown* otherwise; *saturated*: the metric sits at its bound for every row, so its change "
            f"says nothing.")
    return head + "\n\n" + markdown(df)


def _rvp_metric_rows(rd: Path, link) -> list[dict]:
    """Rows of the diagnostic: similarity before and after metric learning, and the mismatched-pair control."""
    rows: list[dict] = []
    ct = pd.read_csv(rd / "controls.csv") if (rd / "controls.csv").is_file() else None
    pn = pd.read_csv(rd / "pos_neg.csv") if (rd / "pos_neg.csv").is_file() else None
    if pn is None:
        return rows
    sd = _per_query_sd(ct)
    seeds = "1 (no spread)"
    if ct is not None:
        size = pd.read_csv(rd / "evaluation_size.csv") if (rd / "evaluation_size.csv").is_file() else None
        hit = size[size["evaluation"] == "metric diagnostic"] if size is not None else []
        seeds = f"{int(hit['seeds'].iloc[0])} of positions" if len(hit) else "seeds of positions"
    variants = list(dict.fromkeys(pn["variant"]))
    val = lambda v, m, when: float(pn.loc[(pn.variant == v) & (pn.measure == m), when].iloc[0])
    for kind, short in (("spatial", "SCC"), ("temporal", "TCC")):
        paper = lambda m, when: float(pn.loc[pn.measure == f"{kind}_{m}", f"paper_{when}"].iloc[0])
        kit, verdicts = [], []
        for v in variants:
            p, n = val(v, f"{kind}_pos", "before"), val(v, f"{kind}_neg", "before")
            sp, sn = sd.get((v, kind, "pos", "before"), np.nan), sd.get((v, kind, "neg", "before"), np.nan)
            kit.append(f"{v.upper()} {fmt_sd(p, sp, 3)} vs {fmt_sd(n, sn, 3)}")
            noise = math.sqrt(sp ** 2 + sn ** 2) if _finite(sp) and _finite(sn) else np.nan
            # a difference of two measured values needs a spread to be judged (the diagnostic's seeds)
            verdicts.append(f"{v.upper()} {_met(against(p - n, 0.0, noise)) if _finite(noise) else 'not shown'}")
        rows.append({"claim": f"Before metric learning, corresponding regions share their {kind} correlation "
                              f"across emotions, other regions do not (corresponding vs other index)",
                     "paper": f"{fmt(paper('pos', 'before'), 2)} vs {fmt(paper('neg', 'before'), 2)}",
                     "kit": "; ".join(kit), "seeds": seeds, "verdict": "; ".join(verdicts), "figure": link("pos_neg")})
        kit, verdicts = [], []
        for v in variants:
            p, n = val(v, f"{kind}_pos", "after"), val(v, f"{kind}_neg", "after")
            sp, sn = sd.get((v, kind, "pos", "after"), np.nan), sd.get((v, kind, "neg", "after"), np.nan)
            kit.append(f"{v.upper()} {fmt_sd(p, sp, 3)} (neg {fmt_sd(n, sn, 3)})")
            answer = outcome([against(p, TARGET_POS, sp), against(abs(n), TARGET_NEG, sn, at_least=False)])
            verdicts.append(f"{v.upper()} {_met(answer)}")
        rows.append({"claim": f"After metric learning the {short} similarity of corresponding correlations is high "
                              f"(kit target: pos ≥ {TARGET_POS}, |neg| ≤ {TARGET_NEG})",
                     "paper": f"{fmt(paper('pos', 'after'), 2)} (neg about {fmt(paper('neg', 'after'), 2)})",
                     "kit": "; ".join(kit), "seeds": seeds, "verdict": "; ".join(verdicts), "figure": link("pos_neg")})
        if ct is not None:
            a = ct[(ct["when"] == "after") & (ct["measure"] == "per_query") & (ct["kind"] == kind)]
            rows.append({"claim": f"The {short} similarity reflects speech: matched pair above a mismatched pair of "
                                  f"the same face (gap, kit target ≥ {TARGET_GAP})",
                         "paper": "not reported",
                         "kit": "; ".join(f"{r.variant.upper()} {fmt_sd(r.gap, r.gap_sd, 3)}" for r in a.itertuples()),
                         "seeds": seeds,
                         "verdict": "; ".join(f"{r.variant.upper()} {_met(against(r.gap, TARGET_GAP, r.gap_sd))}"
                                              for r in a.itertuples()),
                         "figure": link("controls")})
    return rows


def _met(answer: str) -> str:
    return {"yes": "met", "no": "not met"}.get(answer, answer)


def _rvp_spfem_rows(rd: Path, link) -> list[dict]:
    """Rows of the SPFEM comparison: the paper's FAD, CSIM and lip-sync direction, and the kit's own target."""
    rows: list[dict] = []
    if not (rd / "spfem_comparison.csv").is_file():
        return rows
    table = pd.read_csv(rd / "spfem_comparison.csv")
    if not (table["variant"] == "baseline").any():
        return rows
    paper = pd.read_csv(rd / "paper_mead_intra.csv") if (rd / "paper_mead_intra.csv").is_file() else PAPER_MEAD_INTRA
    p = paper.set_index("method")
    variants = [v for v in ("vd", "cm") if (table["variant"] == v).any()]
    runs = table.set_index("variant")["runs"]
    counts = [int(runs[v]) for v in ["baseline"] + variants]
    seeds = f"{counts[0]} per variant" if len(set(counts)) == 1 else "/".join(map(str, counts))
    spec = (("fad", "FAD", "STCCL lowers FAD (identity-embedding distance to real frames)"),
            ("csim", "CSIM", "STCCL raises CSIM (identity kept)"),
            ("mouth_l1", "LSE-D", "STCCL keeps the mouth closer to the speech (paper: LSE-D, SyncNet distance; "
                                  "kit: mouth_l1 against the rendered ground truth)"))
    for metric, col, claim in spec:
        if f"{metric}_mean" not in table:
            continue
        paper_txt = (f"NED {fmt(p.loc['NED', col], 3)} -> " + " / ".join(
            f"{fmt(p.loc[f'NED + STCCL ({v.upper()})', col], 3)} ({v.upper()})" for v in ("vd", "cm")))
        b = table[table.variant == "baseline"].iloc[0]
        kit = [f"baseline {fmt_sd(b[f'{metric}_mean'], b.get(f'{metric}_std'))}"]
        verdicts = []
        want_higher = SUMMARY_METRICS[metric]
        for v in variants:
            r = table[table.variant == v].iloc[0]
            kit.append(f"{v.upper()} {fmt_sd(r[f'{metric}_mean'], r.get(f'{metric}_std'))}")
            verdicts.append(f"{v.upper()} {_direction_verdict(metric, table, v, want_higher)}")
        rows.append({"claim": claim, "paper": paper_txt, "kit": "; ".join(kit), "seeds": seeds,
                     "verdict": "; ".join(verdicts), "figure": link("spfem_comparison")})
    if all(f"{k}_mean" in table for k in ("mouth_l1", "csim", "emotion_acc")):
        verdicts = []
        for v in variants:
            line = spfem_verdict(table, v)
            verdicts.append(f"{v.upper()} {line.split(': ', 1)[1].split('**', 1)[0]}")
        kit = []
        for v in variants:
            r, b = table[table.variant == v].iloc[0], table[table.variant == "baseline"].iloc[0]
            kit.append(f"{v.upper()}: mouth_l1 {change_words(r['mouth_l1_mean'], b['mouth_l1_mean'])}, emotion "
                       f"accuracy {change_words(r['emotion_acc_mean'], b['emotion_acc_mean'], points=True)}")
        rows.append({"claim": f"Kit target for +STCCL: mouth_l1 ≥ {TARGET_MOUTH_DROP_PCT:g} % lower, CSIM not lower, "
                              f"emotion accuracy at most {TARGET_EMOTION_POINTS * 100:g} points below the baseline's",
                     "paper": "not a paper number (the paper keeps expression accuracy while improving sync)",
                     "kit": "; ".join(kit), "seeds": seeds, "verdict": "; ".join(verdicts),
                     "figure": link("spfem_comparison")})
    return rows


def _direction_verdict(metric: str, table: pd.DataFrame, variant: str, want_higher: bool) -> str:
    """met / not met / not shown / saturated for 'variant moves `metric` the paper's way against the baseline'."""
    if saturated(metric, table[f"{metric}_mean"]):
        return "saturated"
    r, b = table[table.variant == variant].iloc[0], table[table.variant == "baseline"].iloc[0]
    se = diff_se(r.get(f"{metric}_std"), r["runs"], b.get(f"{metric}_std"), b["runs"])
    d = float(r[f"{metric}_mean"] - b[f"{metric}_mean"])
    if not _finite(se) or abs(d) <= YARDSTICK_K * se:
        return "not shown"
    return "met" if (d > 0) == want_higher else "not met"


def _rvp_ablation_rows(rd: Path, link) -> list[dict]:
    """Rows of the ablation grid: does dropping a part of STCCL make mouth_l1 worse beyond 2 seed SDs?"""
    if not (rd / "ablations.csv").is_file() or not (rd / "spfem_comparison.csv").is_file():
        return []
    ab = pd.read_csv(rd / "ablations.csv")
    sd = seed_sd(pd.read_csv(rd / "spfem_comparison.csv"), ("mouth_l1",)).get("mouth_l1")
    ref = ab[ab["factor"] == "default"]
    if not len(ref) or "mouth_l1" not in ab:
        return []
    r0 = float(ref["mouth_l1"].iloc[0])
    rows = []
    for name, part in (("no_stccl", "STCCL"), ("frame_negatives", "the mismatched spatial negatives"),
                       ("temporal_only", "the spatial terms (temporal terms instead)"),
                       ("no_adaptive", "the adaptive weighting")):
        hit = ab[ab["run"] == name]
        if not len(hit):
            continue
        v = float(hit["mouth_l1"].iloc[0])
        if sd is None or not math.isfinite(sd):
            verdict = "not shown"
        elif abs(v - r0) <= YARDSTICK_K * sd:
            verdict = "not shown"
        else:
            verdict = "met" if v > r0 else "not met"
        rows.append({"claim": f"Ablation: dropping {part} raises mouth_l1 (one seed per point; yardstick "
                              f"{YARDSTICK_K:g} seed SD = {fmt(YARDSTICK_K * sd, 4) if sd else 'n/a'})",
                     "paper": "direction only (the paper's ablation)",
                     "kit": f"default {fmt(r0, 4)} vs {fmt(v, 4)} without it ({change_words(v, r0)})",
                     "seeds": "1", "verdict": verdict, "figure": link("ablations")})
    return rows
