# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 — Train the metric network
#
# Trains (or loads, when the run folder already holds the finished checkpoint) the STCCL metric network on
# (emotional window, neutral window) pairs of the same actor and sentence, and asks whether it learned what it
# should: that correlations of the two renditions match *because they say the same thing*.
#
# **Objective** (the terms of notebook 02; emotional window = queries, aligned neutral window = keys):
# $$L = \sum_{v} L_{SCC}^{v} + \lambda_T \sum_{v} L_{TCC}^{v}, \qquad
#   L_{SCC}^{v} = \sum_{l=1}^{4} \frac{1}{n_l}\sum_i \tilde w_i\, \ell_i \;(\text{likewise } L_{TCC}^{v}),$$
# over the variants $v \in$ {VD, CM} the config trains (`loss.variant`), with PatchNCE $\ell_i$ at temperature
# $\tau$, adaptive weights $\tilde w_i$ (threshold $\theta$, normalised to mean 1 per group) and
# $\lambda_T$ = 5 as in the reference. Each logged term also carries its unweighted cross-entropy and its chance
# level $\sum_l \log Q_l$, the value of a metric that cannot tell its positive from its negatives.
#
# **The diagnostic.** For held-out (emotional, neutral) window pairs, query vectors $a_i$ (emotional window) are
# compared with three sets of keys: $b_i$ of the aligned neutral window (**matched**), $b^{m}_i$ at the same
# positions of a **mismatched** neutral window (same actor and emotion pair, another sentence: the same face, not
# the same speech), and $b_{\pi(i)}$, another index of the matched window (**other index**). Two measures:
#
# - `per_query` (what PatchNCE trains): $\text{pos} = \overline{a_i^\top b_i}$,
#   $\text{pos}_{\text{mismatched}} = \overline{a_i^\top b^{m}_i}$, $\text{neg} = \overline{a_i^\top b_{\pi(i)}}$
#   with $\pi(i) \ne i$, means over queries;
# - `official` (the official code's logged similarity, behind the paper's 0.96 / 0.98): lay a group's vectors out
#   as (positions $i$, channels $c$) and take the cosine *along positions* per channel,
#   $$s_c = \frac{\sum_i a_{ic} b_{ic}}{\lVert a_{\cdot c} \rVert\, \lVert b_{\cdot c} \rVert},$$
#   averaged over channels and groups; neg uses $b$ with its positions cyclically shifted.
#
# Both are averaged over stages and given as mean ± SD over 3 seeds of windows and positions. The **gap**
# $= \text{pos} - \text{pos}_{\text{mismatched}}$ is what speech correspondence adds to the face layout; the kit
# asks for a gap of at least 0.3 after training. The paper reports positives (and near-zero negatives), never a
# mismatched control.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None     # None: reports/runs/<run_name>/data
device = "auto"
seeds = None         # None: the params file's seeds; the first one draws the snapshot's positions
run_name = None      # None: the params file's stem
force = False        # retrain and re-diagnose
# Metric knobs (None: the params file's metric config). Any change trains in a folder of its own
# (metric-<hash>) and writes its diagnostic files with the same suffix.
variant = None       # loss.variant: "vd", "cm" or "both"
tau = None           # loss.tau, the PatchNCE temperature
lambda_T = None      # loss.lambda_T, the weight of the temporal terms
adaptive = None      # loss.adaptive, the correlation-aware weighting on or off
theta = None         # loss.theta, the weighting threshold
T = None             # window length in path steps
steps = None         # training steps (max_steps)
minutes = None       # also stop after this many minutes (max_minutes)

# %%
from IPython.display import Markdown, display

from stccl.core.snapshot import correlation_snapshot
from stccl.core.train_metric import INIT_CKPT_NAME
from stccl.io import read_jsonl
from stccl.pipeline import figures, teach
from stccl.pipeline.params import changed_fields, knob_tag, notebook_context, record_outputs
from stccl.pipeline.report import TARGET_GAP
from stccl.pipeline.steps import diagnose_before, diagnose_json, metric_config, train_metric_run

params, paths = notebook_context(params_file, data_root, device=device, seeds=seeds, run_name=run_name)
knobs = {"loss.variant": variant, "loss.tau": tau, "loss.lambda_T": lambda_T, "loss.adaptive": adaptive,
         "loss.theta": theta, "T": T, "max_minutes": minutes}
extra = {k: v for k, v in knobs.items() if v is not None}
cfg = metric_config(params, paths, extra, steps)
changed = changed_fields(metric_config(params, paths), cfg)
tag = knob_tag(changed)
print("metric config changed from the params file:", changed or "none")
print(f"variant {cfg.loss.variant}, tau {cfg.loss.tau}, lambda_T {cfg.loss.lambda_T}, adaptive {cfg.loss.adaptive} "
      f"(theta {cfg.loss.theta}), T {cfg.T}, steps {cfg.max_steps}, minutes {cfg.max_minutes or 'no limit'}")

# %% [markdown]
# ## Worked example: what the two measures can and cannot see
#
# A toy with a known answer (`teach.layout_toy`): every vector is *layout* × $a_i$ + *speech* × $s_i$ + noise,
# where $a_i$ depends only on where position $i$ lies on the face (the same in every frame of that face) and
# $s_i$ on what is said (shared by the query and its matched key, drawn anew for the mismatched key). With
# layout only, a perfect-looking positive and a near-zero negative appear although nothing about speech matches;
# only the mismatched control (the gap) tells the cases apart, in both measures.

# %%
toy = teach.toy_measures({"layout only": (1.0, 0.0), "speech only": (0.0, 1.0), "layout + speech": (1.0, 1.0)})
toy.round(3)

# %% [markdown]
# ## Train (or reuse) the run

# %%
run = train_metric_run(params, paths, run=paths.metric_run.with_name(paths.metric_run.name + tag), extra=extra,
                       steps=steps, force=force)
ckpt = run / "ckpt_last.pt"
print("metric run:", run)

# %% [markdown]
# ## Loss curves (from metrics.jsonl), and each term against its chance level

# %%
figures.loss_curves(run / "metrics.jsonl", title="metric network: L_SCC + lambda_T L_TCC");

# %%
losses = teach.loss_vs_chance(read_jsonl(run / "metrics.jsonl"))
losses.round(3)

# %% [markdown]
# ## Positive / negative similarity before and after training (the paper's figure)

# %%
if tag:   # the run's own starting weights (ckpt_init.pt); the default run shares notebook 02's file
    before = diagnose_json(run / INIT_CKPT_NAME, paths.data_root, paths.run_dir / f"diagnose_before{tag}.json",
                           split=params.diagnose_split, batches=params.diagnose_batches, force=force)
else:
    before = diagnose_before(params, paths, force=force)   # the network at initialisation (also notebook 02)
after = diagnose_json(ckpt, paths.data_root, paths.run_dir / f"diagnose_after{tag}.json", split=params.diagnose_split,
                      batches=params.diagnose_batches, force=force)
table = figures.pos_neg_table(before, after)
figures.write_table(table, paths.run_dir / f"pos_neg{tag}")
table

# %% [markdown]
# ## Every positive beside its control
#
# `pos` (query vs its matched key) alone cannot show that the metric learned speech: two frames of the same face
# share their layout whatever they say (the toy above). The control is the same query against the **mismatched**
# pair; `gap = pos - pos_mismatched`. Both measures, before and after training; error bars: SD over 3 seeds.

# %%
controls = figures.control_table(before, after)
figures.write_table(controls, paths.run_dir / f"controls{tag}")
figures.control_figure(controls);

# %% [markdown]
# ## The adaptive weight map with the trained network

# %%
snap = correlation_snapshot(params.metric_config, paths.data_root,
                            paths.run_dir / f"correlation_snapshot_trained{tag}.npz", checkpoint=ckpt,
                            seed=params.seeds[0])
figures.correlation_figures(snap)["weights"];

# %% [markdown]
# ## What this shows

# %%
display(Markdown(teach.metric_takeaways(losses, controls, TARGET_GAP)))

# %%
record_outputs(paths, "03_train_metric" + tag,   # knobs: a record of their own, the runner's stays
               {"checkpoint": ckpt, "metrics": run / "metrics.jsonl",
                "diagnose_before": paths.run_dir / (f"diagnose_before{tag}.json" if tag else "diagnose_before.json"),
                "diagnose_after": paths.run_dir / f"diagnose_after{tag}.json",
                "pos_neg": paths.run_dir / f"pos_neg{tag}.csv", "controls": paths.run_dir / f"controls{tag}.csv",
                "snapshot_trained": snap},
               {r.variant + "_" + r.measure: {"before": r.before, "after": r.after} for r in table.itertuples()})
