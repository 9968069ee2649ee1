"""Worked examples and computed summaries for the notebooks.

Each notebook shows its step on one small example, then the full run, then a
"what this shows" paragraph. The example functions here run one window pair
through the package's own code (`stccl.core.correlation`, `stccl.core.losses`,
`stccl.core.diagnose`) and return small tables; the `*_takeaways` functions
turn saved results into Markdown, so every number in that text is read from a
run, never typed. The paper's numbers and the kit's targets come from
`stccl.pipeline.figures` and `stccl.pipeline.report`.

    item = window_pair(cfg)                                   # one neutral/emotional window
    feats_a, feats_b = stage_features(net, item)              # clip A = emotional, B = neutral
    samples = sample_positions(...)                           # as training draws them
    stage_shapes(feats_a, samples, cfg.T)                     # what each correlation looks like
    patchnce_table(net, cfg.loss, feats_a, feats_b, samples, cfg.T)   # loss vs chance log Q

At about 470 lines this stays one module: it is the notebooks' worked examples and their computed text,
one helper per notebook step, each small; the notebooks import it under one name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from stccl.core.correlation import NEIGHBOUR_OFFSETS, StageSample, correlation_vectors, sample_positions
from stccl.core.diagnose import official_measure, per_query_measure
from stccl.core.losses import STCCLLoss, STCCLOptions, adaptive_weight, patch_nce, stccl_terms
from stccl.core.metric_net import MetricNet
from stccl.core.snapshot import first_window_of
from stccl.core.train_metric import MetricTrainConfig
from stccl.data.mead import PairedWindowDataset
from stccl.io import read_jsonl
from stccl.pipeline.figures import PAPER_CONTROLS
from stccl.pipeline.report import PAPER_MEAD_INTRA, TARGET_GAP

TERMS = (("scc", "spatial"), ("tcc", "temporal"))


# ---------------------------------------------------------------------------
# One window pair through the metric network
# ---------------------------------------------------------------------------

def window_pair(cfg: MetricTrainConfig, emotion: str = "happy", split: str = "train") -> dict:
    """A (neutral window, emotional window) of the first pair showing `emotion`, as training loads it.

    The first window of that pair whose path repeats no frame (a repeat makes a temporal disparity exactly
    zero, which the diagnostic leaves out), else the pair's first window.
    """
    ds = PairedWindowDataset(cfg.data_root, cfg.alignment_file(), T=cfg.T, split=split,
                             test_actors=cfg.test_actors, size=cfg.size)
    first = first_window_of(ds, emotion)
    pair = ds.window(first)[0]
    same = [i for i in range(first, len(ds)) if ds.window(i)[0] is pair]
    return ds[next((i for i in same if not ds.repeats_index(i)), first)]


@torch.no_grad()
def stage_features(net: MetricNet, item: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Stage maps of clip A (the emotional window: queries) and clip B (the neutral one: keys).

    Both windows go through the network in one batch, as in training; each map is (T, C_l, H_l, W_l).
    """
    T = item["neutral"].shape[0]
    net.eval()
    feats = net(torch.cat([item["emotional"], item["neutral"]]))  # [(2T, C_l, H_l, W_l)]
    return [f[:T] for f in feats], [f[T:] for f in feats]


def stage_shapes(feats: Sequence[torch.Tensor], samples: Sequence[StageSample], T: int,
                 head_ratio: int = 4) -> pd.DataFrame:
    """Per stage: the feature map, the sampled positions and the number of vectors each correlation gives."""
    rows = []
    for stage, (f, s) in enumerate(zip(feats, samples)):
        N, C, H, W = f.shape
        S = s.anchors.numel() if s.has_anchors else 0
        P = int(torch.unique(torch.cat([s.anchors, s.neighbours.flatten()])).numel()) if S else 0
        Nt = s.temporal.numel()
        rows.append({"stage": stage + 1, "feature map (T, C, H, W)": str((N, C, H, W)),
                     "projected dim D": max(1, C // head_ratio), "anchors S": S,
                     "spatial VD queries / frame (8 S)": 8 * S, "spatial CM rows x cols (S x P)": f"{S} x {P}",
                     "temporal positions N": Nt,
                     "temporal VD queries / clip (T(T-1)/2 N)": T * (T - 1) // 2 * Nt,
                     "temporal CM rows / clip (N T, each of length T)": Nt * T})
    return pd.DataFrame(rows)


@torch.no_grad()
def patchnce_table(net: MetricNet, opts: STCCLOptions, feats_a: Sequence[torch.Tensor],
                   feats_b: Sequence[torch.Tensor], samples: Sequence[StageSample], T: int) -> pd.DataFrame:
    """PatchNCE of every (term, variant, stage) on one window pair, beside its chance level log Q.

    Columns: Q (candidates per query: the positive and Q - 1 negatives), groups G, mean cosine of a query with
    its positive and with the other keys, the unweighted cross-entropy, the loss with the adaptive weights,
    and log Q, the cross-entropy of a metric that cannot tell its positive from its negatives.
    """
    rows = []
    for term, kind in TERMS:
        if kind == "temporal" and T < 2:
            continue
        for variant in ("vd", "cm"):
            for stage, (head, fa, fb, s) in enumerate(zip(net.heads_for(kind), feats_a, feats_b, samples)):
                if kind == "spatial" and not s.has_anchors:
                    continue
                q, k, h = correlation_vectors(kind, variant, head, fa, fb, s, T, with_strength=True)
                G, Q, D = q.shape
                sim = q @ k.transpose(1, 2)  # (G, Q, Q)
                eye = torch.eye(Q, dtype=torch.bool)
                stats: dict = {}
                weighted = patch_nce(q, k, opts.tau, adaptive_weight(h, opts.theta), opts.normalise_weight, stats)
                rows.append({"term": term, "variant": variant, "stage": stage + 1, "groups G": G, "Q": Q, "D": D,
                             "cos positive": float(sim[:, eye].mean()),
                             "cos negatives": float(sim[:, ~eye].mean()) if Q > 1 else float("nan"),
                             "PatchNCE": stats["ce"], "PatchNCE weighted": float(weighted),
                             "chance log Q": stats["chance"]})
    return pd.DataFrame(rows)


@torch.no_grad()
def anchor_vd(net: MetricNet, opts: STCCLOptions, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor],
              samples: Sequence[StageSample], stage: int = 1, frame: int = 0, anchor: int = 0) -> pd.DataFrame:
    """The 8 spatial VD vectors of one anchor (stage index `stage`, 0-based): raw disparity, weight, match.

    For each neighbour q of anchor p: |f(p) - f(q)| of clip A, h = mean_c sigmoid(|d|), the adaptive weight,
    the cosine of the projected query with its positive (the same (p, q) in clip B), the best cosine with
    any other key of the frame, and the rank of the positive among all Q keys (1: PatchNCE picks it).
    """
    head, fa, fb, s = net.heads[stage], feats_a[stage], feats_b[stage], samples[stage]
    q, k, h = correlation_vectors("spatial", "vd", head, fa, fb, s, fa.shape[0], with_strength=True)
    flat = fa.flatten(2).transpose(1, 2)[frame]  # (HW, C)
    d = flat[s.anchors[anchor]][None, :] - flat[s.neighbours[anchor]]  # (8, C)
    sims = q[frame] @ k[frame].T  # (Q, Q)
    rows = []
    for j in range(8):
        i = anchor * 8 + j
        others = torch.cat([sims[i, :i], sims[i, i + 1:]])
        rows.append({"neighbour (dy, dx)": tuple(int(v) for v in NEIGHBOUR_OFFSETS[j]),
                     "|d| raw": float(d[j].norm()), "h": float(h[frame, i]),
                     "weight w": float(adaptive_weight(h[frame, i], opts.theta)),
                     "cos with positive": float(sims[i, i]), "best cos with a negative": float(others.max()),
                     "rank of positive": int((sims[i] > sims[i, i]).sum()) + 1, "of Q": sims.shape[1]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# The plug-in loss of notebook 04
# ---------------------------------------------------------------------------

@torch.no_grad()
def plugin_table(loss: STCCLLoss, input_clip: torch.Tensor, candidates: dict[str, torch.Tensor],
                 seed: int = 0) -> pd.DataFrame:
    """The frozen STCCL loss of `input_clip` against each candidate "generated" clip, beside its chance level.

    input_clip and each candidate: (T, 3, H, W). Every candidate is scored at the same sampled positions. Rows:
    candidate, term (e.g. scc_vd), its PatchNCE (weighted as in training), the unweighted cross-entropy and
    the chance level (both summed over stages), and one "total" row per candidate: lambda_S SCC +
    lambda_T TCC, the value the SPFEM log calls g_stccl, with its chance level weighted the same way.
    """
    T = input_clip.shape[0]
    opts = loss.options
    feats_b = loss.features(input_clip)  # [(T, C_l, H_l, W_l)]
    samples = sample_positions([tuple(f.shape[-2:]) for f in feats_b], opts.spatial_samples, opts.temporal_factor,
                               opts.central, generator=torch.Generator().manual_seed(seed))
    rows = []
    for name, clip in candidates.items():
        stats: dict[str, float] = {}
        terms = stccl_terms(loss.net, loss.features(clip), feats_b, T, opts, samples, stats)
        total = chance = 0.0
        for key, value in terms.items():
            w = opts.lambda_S if key.startswith("scc") else opts.lambda_T
            total, chance = total + w * float(value), chance + w * stats[f"{key}_chance"]
            rows.append({"candidate": name, "term": key, "PatchNCE": float(value), "cross-entropy": stats[f"{key}_ce"],
                         "chance": stats[f"{key}_chance"]})
        rows.append({"candidate": name, "term": "total (g_stccl)", "PatchNCE": total, "cross-entropy": float("nan"),
                     "chance": chance})
    return pd.DataFrame(rows)


def spfem_loss_table(runs: dict[tuple[str, int], Any], stccl_chance: dict[str, float],
                     n_emotions: int) -> pd.DataFrame:
    """The last logged SPFEM losses that have a chance level, beside it: g_cls (cross-entropy over the
    emotions: chance log n_emotions) and g_stccl (chance from `plugin_table`'s total row)."""
    rows = []
    for (variant, seed), run in runs.items():
        last = read_jsonl(Path(run) / "metrics.jsonl")[-1]
        rows.append({"run": f"{variant} s{seed}", "step": last.get("step"), "g_cls": last.get("g_cls", float("nan")),
                     "g_cls_chance": math.log(n_emotions), "g_stccl": last.get("g_stccl", float("nan")),
                     "g_stccl_chance": stccl_chance.get(variant, float("nan"))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# The diagnostic's two measures on a toy with a known answer
# ---------------------------------------------------------------------------

def layout_toy(layout: float, speech: float, groups: int = 8, positions: int = 64, channels: int = 16,
               noise: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Query, matched key and mismatched key vectors (G, Q, D) built from a face layout and a speech part.

    Every vector at position i is layout * a_i + speech * s_i + noise: a_i is the same for every frame of the
    face (where position i lies on it); s_i is shared by the query and its matched key (same speech) but
    drawn anew for the mismatched key (another sentence). Unit-normalised like the kit's vectors.
    """
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(1, positions, channels, generator=g)
    s = torch.randn(groups, positions, channels, generator=g)
    s_other = torch.randn(groups, positions, channels, generator=g)

    def vec(sp: torch.Tensor) -> torch.Tensor:
        return F.normalize(layout * a + speech * sp + noise * torch.randn(sp.shape, generator=g), dim=-1)

    return vec(s), vec(s), vec(s_other)


def toy_measures(cases: dict[str, tuple[float, float]], seed: int = 0) -> pd.DataFrame:
    """Both diagnostic measures (per_query, official) on `layout_toy` for each case name -> (layout, speech)."""
    rows = []
    for name, (layout, speech) in cases.items():
        q, k, km = layout_toy(layout, speech, seed=seed)
        valid = torch.ones(q.shape[:2], dtype=torch.bool)
        for measure, fn in (("per_query", per_query_measure), ("official", official_measure)):
            r = fn(q, k, km, valid, torch.Generator().manual_seed(seed))
            rows.append({"case": name, "layout": layout, "speech": speech, "measure": measure, "pos": r["pos"],
                         "neg": r["neg"], "pos_mismatched": r["pos_mismatched"],
                         "gap": r["pos"] - r["pos_mismatched"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# Loss against chance, from a run's metrics.jsonl
# ---------------------------------------------------------------------------

def loss_vs_chance(records: Sequence[dict]) -> pd.DataFrame:
    """Per term with a logged chance level: first and last unweighted PatchNCE beside chance (sum of log Q)."""
    rows = []
    for key in [k for k in (records[0] if records else {}) if k.endswith("_chance")]:
        term = key[:-len("_chance")]
        logged = [r for r in records if f"{term}_ce" in r]
        if not logged:
            continue
        first, last = logged[0], logged[-1]
        rows.append({"term": term, "first_step": first["step"], "first": first[f"{term}_ce"],
                     "last_step": last["step"], "last": last[f"{term}_ce"], "chance": last[key],
                     "ratio": last[f"{term}_ce"] / last[key]})
    return pd.DataFrame(rows)


def grid_loss_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per grid point with a metric retrain: each term's last logged PatchNCE as a fraction of its chance level
    (1: no better than a metric that cannot tell positive from negatives), read from its metrics.jsonl."""
    rows = []
    for r in df.itertuples():
        log = Path(str(r.metric_run)) / "metrics.jsonl" if isinstance(r.metric_run, str) and r.metric_run else None
        if log is None or not log.is_file():
            continue
        for t in loss_vs_chance(read_jsonl(log)).itertuples():
            rows.append({"run": r.run, "term": t.term, "ratio": t.ratio})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index="run", columns="term", values="ratio", sort=False)


# ---------------------------------------------------------------------------
# "What this shows": Markdown from saved numbers
# ---------------------------------------------------------------------------

def _f(x: float, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def data_takeaways(summary: dict, settings: dict[str, Any], data_root: str, pairs: dict | None = None,
                   mead_pairs: dict | None = None) -> str:
    """Data set size, how well DTW recovers the true frame correspondence, and how coherent the renditions are.

    `summary`: the synthetic data's summary.json; `settings`: its SynthConfig as a dict; `pairs` and
    `mead_pairs`: `stccl.data.mead.summarise_pairs` of this data and of the real MEAD alignment file.
    """
    dtw, none = summary.get("dtw_mean_abs_frame_error"), summary.get("no_alignment_mean_abs_frame_error")
    lines = [f"- **Data** (`{data_root}`): {summary.get('actors')} identities "
             f"({len(summary.get('test_actors', []))} held out: {', '.join(summary.get('test_actors', []))}), "
             f"{summary.get('sentences')} sentence(s) each, {summary.get('emotions')} emotions, "
             f"{summary.get('pairs')} neutral/emotional pairs, {summary.get('frames')} frames of "
             f"{summary.get('size')} px."]
    if pairs and mead_pairs:
        sp, mp = pairs["splits"], mead_pairs["splits"]
        lines.append(f"- **Against MEAD** (its alignment file `{mead_pairs['align']}`): {mead_pairs['actors']} actors, "
                     f"{mead_pairs['pairs']} pairs, {mp['train']['windows']} training windows of T = "
                     f"{mead_pairs['T']}; here {pairs['actors']} actors, {pairs['pairs']} pairs, "
                     f"{sp['train']['windows']} training windows "
                     f"({100.0 * sp['train']['windows'] / max(mp['train']['windows'], 1):.1f} % of MEAD's).")
    if dtw is not None and none is not None:
        head = (f"- **Alignment**: the DTW path is off the true frame correspondence by {_f(dtw)} frames on "
                f"average (worst pair {_f(summary.get('dtw_max_pair_error'))}); matching frame t to frame t "
                f"would be off by {_f(none)} frames, a linear stretch by "
                f"{_f(summary.get('linear_stretch_mean_abs_frame_error'))}. ")
        if none > 0:
            lines.append(head + f"DTW removes {100.0 * (none - dtw) / none:.0f} % of the unaligned error; the rest "
                                f"means a positive pair is on average {_f(dtw, 1)} frames apart in speech time.")
        else:
            lines.append(head + "The renditions are frame-aligned already; what DTW adds is its own error.")
    shared = [k for k in ("emotion_timing", "emotion_on_mouth") if settings.get(k) is False]
    nuisance = {k: settings[k] for k in ("pose_jitter", "blink_rate", "noise_std") if k in settings}
    lines.append("- **Coherence of the renditions**: "
                 + ("neutral and emotional renditions share the exact phoneme timing" if "emotion_timing" in shared
                    else "each emotion speaks at its own tempo (DTW has to find the correspondence)")
                 + "; " + ("emotion leaves the mouth and jaw alone" if "emotion_on_mouth" in shared
                           else "emotion also moves the mouth corners, mouth opening and jaw")
                 + "; per-take nuisance " + ", ".join(f"{k} = {v}" for k, v in nuisance.items())
                 + ". The paper's premise (local correlations shared across emotions) holds only as far as these "
                 "allow.")
    n_sent = summary.get("sentences") or 0
    lines.append(f"- **Mismatched pairs for the control**: "
                 + (f"each actor says {n_sent} sentences, so the diagnostic's control is another sentence of the "
                    f"same actor and emotion." if n_sent >= 2 else
                    "each actor says one sentence, so the control falls back to a window at least 1 s away."))
    return "\n".join(lines)


def correlation_takeaways(example: pd.DataFrame, before: dict) -> str:
    """Before training: PatchNCE vs chance on the example, and matched vs mismatched similarity on held-out pairs."""
    lines = []
    below = 0
    groups = list(example.groupby(["term", "variant"], sort=False))
    for (term, variant), t in groups:
        ce, chance = t["PatchNCE"].sum(), t["chance log Q"].sum()
        below += int(ce < chance)
        lines.append(f"- **{term.upper()} {variant.upper()}** on the example pair: PatchNCE {_f(ce)} (sum over "
                     f"stages) against chance {_f(chance)}; the positive's mean cosine "
                     f"{_f(t['cos positive'].mean())} vs {_f(t['cos negatives'].mean())} for the negatives.")
    lines.append(f"- Untrained, {below} of {len(groups)} terms are already below chance on this pair. Whether "
                 f"the network finds the positive by its speech or by where it lies on the face is what the "
                 f"mismatched-pair control decides:")
    pq = before.get("per_query", {})
    for variant in ("vd", "cm"):
        for kind in ("spatial", "temporal"):
            e = pq.get(variant, {}).get(kind)
            if not e:
                continue
            lines.append(f"- Held-out pairs, {variant.upper()} {kind}, untrained: matched {_f(e['pos'], 3)} ± "
                         f"{_f(e['pos_sd'], 3)}, mismatched-pair control {_f(e['pos_mismatched'], 3)} ± "
                         f"{_f(e['pos_mismatched_sd'], 3)} (gap {_f(e['gap'], 3)} ± {_f(e['gap_sd'], 3)}), "
                         f"other index {_f(e['neg'], 3)}.")
    gaps = {(v, k): (pq[v][k]["gap"], pq[v][k]["gap_sd"]) for v in pq for k in pq[v]}
    if gaps:
        (gv, gk), (top, sd) = max(gaps.items(), key=lambda kv: kv[1][0])
        noise = [f"{v.upper()} {k}" for (v, k), (g, g_sd) in gaps.items() if abs(g) <= 2 * g_sd]
        paper = {k: PAPER_CONTROLS[("per_query", "before", k)] for k in ("spatial", "temporal")}
        lines.append(f"- Gaps within 2 SD of zero (matched no closer than mismatched): {len(noise)} of "
                     f"{len(gaps)}" + (f" ({', '.join(noise)})." if noise else "."))
        lines.append(f"- Largest matched - mismatched gap before training: {_f(top, 3)} ± {_f(sd, 3)} "
                     f"({gv.upper()} {gk}); the "
                     f"diagnostic's target after training is a gap ≥ {TARGET_GAP}. The paper's 'inherent "
                     f"correlation' figure reports corresponding / non-corresponding regions "
                     f"{paper['spatial']['pos']} / {paper['spatial']['neg']} (spatial) and "
                     f"{paper['temporal']['pos']} / {paper['temporal']['neg']} (temporal): positives and negatives "
                     f"only, with no mismatched-pair control, so it cannot tell face layout from speech.")
    return "\n".join(lines)


def metric_takeaways(losses: pd.DataFrame, controls: pd.DataFrame, target_gap: float) -> str:
    """After training: each loss against chance, each positive beside its control, the gap verdict."""
    lines = []
    for r in losses.itertuples():
        verdict = "below" if r.last < r.chance else "not below"
        lines.append(f"- `{r.term}`: PatchNCE {_f(r.first)} at step {r.first_step} → {_f(r.last)} at step "
                     f"{r.last_step}, chance {_f(r.chance)} ({verdict} chance, ratio {_f(r.ratio)}).")
    after = controls[controls["when"] == "after"]
    for r in after.itertuples():
        paper = (f"; paper {_f(r.paper_pos)} / {_f(r.paper_neg)} (pos / neg)"
                 if math.isfinite(r.paper_pos) else "")
        lines.append(f"- {r.measure} {r.variant.upper()} {r.kind}: matched {_f(r.pos, 3)}, mismatched control "
                     f"{_f(r.pos_mismatched, 3)}, other index {_f(r.neg, 3)}; gap {_f(r.gap, 3)} ± {_f(r.gap_sd, 3)} "
                     f"(target ≥ {target_gap}: {'met' if r.gap >= target_gap else 'not met'}){paper}.")
    if not len(after):
        return "\n".join(lines)
    met = after[after["gap"] >= target_gap]
    off = after[(after["measure"] == "official") & after["paper_pos"].notna()]
    short = [f"{r.variant.upper()} {r.kind} {_f(r.pos)} vs {_f(r.paper_pos)}" for r in off.itertuples()]
    lines.append(f"- **Against the paper**: the official measure's positives after training are "
                 f"{', '.join(short) if short else 'n/a'} (kit vs paper); its other-index similarity reaches "
                 f"{_f(off['neg'].max() if len(off) else float('nan'))} where the paper's logs show about "
                 f"{_f(off['paper_neg'].max() if len(off) else float('nan'))}.")
    if len(met):
        lines.append(f"- **Control**: {len(met)} of {len(after)} (measure, variant, kind) reach the gap target: "
                     + ", ".join(f"{r.measure} {r.variant.upper()} {r.kind}" for r in met.itertuples()) + ".")
    else:
        lines.append(f"- **Control**: none of the {len(after)} (measure, variant, kind) reaches the gap target: "
                     f"every mismatched control stays within {_f(after['gap'].max(), 3)} of its positive, so a "
                     f"high positive (the paper's evidence) does not show that this metric matches speech rather "
                     f"than face layout.")
    return "\n".join(lines)


def spfem_takeaways(table: pd.DataFrame, losses: pd.DataFrame, examples: dict[str, pd.DataFrame] | None = None,
                    identical: str = "x itself", same: str = "same sentence, other emotion",
                    mismatched: str = "other sentence (mismatched)") -> str:
    """SPFEM: what the plug-in loss rewards, each +STCCL variant against the baseline and the copy-input
    reference, and the losses against chance.

    `table`: `figures.eval_table` (one row per variant, `<metric>_mean` / `_std` columns, a "copy" row);
    `losses`: `spfem_loss_table`; `examples`: variant -> `plugin_table` with the candidates named as given.
    """
    t = table.set_index("variant")
    lines = []
    for v, ex in (examples or {}).items():
        tot = ex[ex["term"] == "total (g_stccl)"].set_index("candidate")
        if not {identical, same}.issubset(tot.index):
            continue
        chance, lowest = float(tot["chance"].iloc[0]), tot["PatchNCE"].idxmin()
        mis = (f", the mismatched sentence {_f(tot.loc[mismatched, 'PatchNCE'])}" if mismatched in tot.index else "")
        s_val = float(tot.loc[same, "PatchNCE"])
        verdict = (f"{'below' if s_val < chance else 'not below'} chance"
                   + (f" and {'below' if s_val < tot.loc[mismatched, 'PatchNCE'] else 'not below'} the mismatched "
                      f"sentence on this one window" if mismatched in tot.index else " on this one window"))
        lines.append(f"- **What the {v.upper()} loss rewards** (worked example, chance {_f(chance)}): the input "
                     f"itself {_f(tot.loc[identical, 'PatchNCE'])}, the same sentence in another emotion (a perfect "
                     f"output) {_f(tot.loc[same, 'PatchNCE'])}{mis}; the perfect output is {verdict}. The lowest "
                     f"value is '{lowest}'"
                     + (", so the term pulls the output towards a copy of the input." if lowest == identical else "."))
    if "baseline" in t.index:
        b = t.loc["baseline"]
        if "copy" in t.index:
            c = t.loc["copy"]
            lines.append(f"- Copying the input (perfect speech, no emotion change) scores mouth_l1 "
                         f"{_f(c['mouth_l1_mean'], 4)} and emotion accuracy {_f(c['emotion_acc_mean'])}; the "
                         f"baseline generator {_f(b['mouth_l1_mean'], 4)} and {_f(b['emotion_acc_mean'])}.")
        for v in [v for v in t.index if v not in ("baseline", "copy")]:
            r = t.loc[v]
            change = 100.0 * (r["mouth_l1_mean"] - b["mouth_l1_mean"]) / b["mouth_l1_mean"]
            sd = r.get("mouth_l1_std", float("nan"))
            spread = f"SD over seeds {_f(sd, 4)}" if math.isfinite(sd) else "one seed: no SD"
            name = "Edit-less control (baseline, weaker emotion loss)" if v == "weak_emotion" else f"+STCCL ({v.upper()})"
            lines.append(f"- **{name}**: mouth_l1 {_f(r['mouth_l1_mean'], 4)} ({change:+.1f} % against "
                         f"the baseline; lower is better; {spread}), emotion accuracy "
                         f"{_f(r['emotion_acc_mean'])} (baseline {_f(b['emotion_acc_mean'])}), CSIM "
                         f"{_f(r['csim_mean'], 4)} (baseline {_f(b['csim_mean'], 4)}).")
    for r in losses.itertuples():
        parts = [f"g_cls {_f(r.g_cls)} against chance {_f(r.g_cls_chance)} "
                 f"({'below' if r.g_cls < r.g_cls_chance else 'not below'} chance)"]
        if math.isfinite(r.g_stccl):
            parts.append(f"g_stccl {_f(r.g_stccl)} against chance {_f(r.g_stccl_chance)} "
                         f"({'below' if r.g_stccl < r.g_stccl_chance else 'not below'} chance)")
        lines.append(f"- Run {r.run}, last logged step {r.step}: " + "; ".join(parts) + ".")
    paper = PAPER_MEAD_INTRA.set_index("method")
    ned, vd = paper.loc["NED"], paper.loc["NED + STCCL (VD)"]
    lines.append(f"- The paper's MEAD gains (NED FAD {ned['FAD']} → {vd['FAD']}, CSIM {ned['CSIM']} → {vd['CSIM']} "
                 f"with VD) come from real video and a full-size generator; these runs are short trainings on "
                 f"synthetic faces, so they show that the plug-in trains and is scored like the baseline, not "
                 f"the paper's gains.")
    return "\n".join(lines)


def ablation_takeaways(df: pd.DataFrame, metric: str = "mouth_l1", seed_sd: float | None = None) -> str:
    """Each grid point's change of `metric` against the default point, judged against seed noise."""
    if not len(df) or "default" not in set(df["run"]):
        return "- No default grid point: nothing to compare against."
    base = float(df.loc[df["run"] == "default", metric].iloc[0])
    rows = df[df["run"] != "default"].assign(delta=lambda d: d[metric] - base)
    rows = rows.reindex(rows["delta"].abs().sort_values(ascending=False).index)
    lines = [f"- Default point: {metric} {_f(base, 4)}. Largest changes: "
             + "; ".join(f"{r.factor} = {r.level}: {r.delta:+.4f}" for r in rows.head(3).itertuples()) + "."]
    if seed_sd is not None and math.isfinite(seed_sd):
        above = [f"{r.factor} = {r.level}" for r in rows.itertuples() if abs(r.delta) > 2 * seed_sd]
        lines.append(f"- Seed-to-seed SD of {metric} in the main runs: {_f(seed_sd, 4)}; changes larger than "
                     f"twice that: {', '.join(above) if above else 'none'}. Each grid point is one seed, so "
                     f"smaller differences are not evidence of an effect.")
    else:
        lines.append("- The main runs have one seed, so there is no seed-noise yardstick: with one seed per grid "
                     "point no difference here is evidence of an effect.")
    return "\n".join(lines)
