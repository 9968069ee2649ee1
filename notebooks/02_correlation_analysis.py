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
# # 02 — What spatial and temporal coherent correlations are
#
# STCCL compares two clips that share speech but not emotion: clip **A** (queries: the emotional window, later
# the generated clip) and clip **B** (keys: the aligned neutral window, later the input clip). It does not
# compare their pixels or features directly (the emotion changes them) but the *correlations* between features:
# how a region relates to its neighbours in one frame (spatial), and how a region changes between frames
# (temporal). This notebook defines them, runs one window pair through the untrained metric network, and
# measures how alike the correlations of matched and of mismatched pairs already are before any training.
#
# **Features.** An IResNet backbone gives four stage maps $f_l \in \mathbb{R}^{C_l \times H_l \times W_l}$. Each
# stage has a projection head $g_l$ = Linear($C_l, C_l$) – ReLU – Linear($C_l, C_l/4$); $\hat z = g_l(x) / \lVert
# g_l(x) \rVert$. At each stage $S_l$ anchors $p$ are drawn inside the central square (side $\approx 0.95\,H_l$),
# at least one cell from the border so that all 8 neighbours $q \in \mathcal{N}(p)$ exist; the same positions
# are used for A and B and for every frame.
#
# **Spatial VD** (visual disparity): for every anchor and neighbour,
# $$z_{pq} = \frac{g_l(d_{pq})}{\lVert g_l(d_{pq}) \rVert}, \qquad d_{pq} = f(p) - f(q),$$
# $8 S_l$ vectors per frame. **Spatial CM** (correlation matrix): with $U$ the $P$ distinct anchors and
# neighbours, the row of anchor $p$ is $c_p = (\hat z(p)^\top \hat z(u))_{u \in U}$; rows are centred and
# normalised, $r_p = (c_p - \bar c_p) / \lVert c_p - \bar c_p \rVert$, so they compare by their pattern.
#
# **Temporal VD**: at $N_l$ positions $p$ and for every frame pair $i < j$ of the $T$-frame window,
# $d_{ij}(p) = f_i(p) - f_j(p)$, projected and normalised: $\tfrac{T(T-1)}{2} N_l$ vectors per clip.
# **Temporal CM**: at each position the $T \times T$ matrix $M_{ij} = \hat z_i(p)^\top \hat z_j(p)$; each row
# (centred, normalised) is one vector: $N_l T$ per clip.
#
# **PatchNCE** with temperature $\tau$ (0.07): query $a_i$ from A, keys $b_1..b_Q$ from B (detached) of the
# same group (a frame for spatial, a clip for temporal); key $i$ is the positive, the $Q-1$ others negatives:
# $$\ell_i = -\log \frac{\exp(a_i^\top b_i / \tau)}{\sum_{j=1}^{Q} \exp(a_i^\top b_j / \tau)} .$$
# A metric that cannot tell the positive from the negatives gives every candidate the same logit, so
# $\ell_i = \log Q$: the **chance level** every PatchNCE value below is shown beside.
#
# **Correlation-aware adaptive weight**: from the raw (unprojected) disparity of a query,
# $h_i = \frac{1}{C}\sum_c \sigma(\lvert d_{i,c} \rvert)$ and $w_i = 1$ if $h_i \le \theta$ (0.8), else
# $2 h_i^2$. Since $\sigma(\lvert d \rvert) \ge 0.5$, $h \in [0.5, 1)$ and a weighted query counts
# $2\theta^2 = 1.28$ to 2 times. The loss of a term at a stage is $\frac{1}{n}\sum_i \tilde w_i \ell_i$ with the
# weights scaled to mean 1 per group (so the value stays comparable with $\log Q$); a CM row takes the mean $h$
# of the disparities behind it. $L_{SCC}$ and $L_{TCC}$ sum this over the four stages.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None     # None: reports/runs/<run_name>/data
seeds = None         # None: the params file's seeds; the first one draws the example's positions
run_name = None      # None: the params file's stem
force = False        # recompute the before-training diagnostic
emotion = "happy"    # emotion of the example window pair
example_stage = 2    # stage (1..4) whose VD vectors of one anchor are shown

# %%
import pandas as pd
import torch
from IPython.display import Markdown, display

from stccl.core.correlation import sample_positions
from stccl.core.diagnose import diagnostic_rows
from stccl.core.losses import adaptive_weight
from stccl.core.metric_net import MetricNet
from stccl.core.snapshot import correlation_snapshot
from stccl.io import seed_everything
from stccl.pipeline import figures, teach
from stccl.pipeline.params import notebook_context, record_outputs
from stccl.pipeline.steps import diagnose_before, metric_config

params, paths = notebook_context(params_file, data_root, seeds=seeds, run_name=run_name)
cfg = metric_config(params, paths)
seed_everything(cfg.seed)
net = MetricNet(cfg.net)   # the network at initialisation, as notebook 03 starts from it

# %% [markdown]
# ## Worked example: one window pair through the backbone

# %%
item = teach.window_pair(cfg, emotion)
print(f"{item['actor']} neutral vs {item['emotion']}, pair {item['pair']}, centre path step {item['step']}")
print("clip A (emotional):", tuple(item["emotional"].shape), " clip B (neutral):", tuple(item["neutral"].shape),
      " = (T, 3, H, W)")
feats_a, feats_b = teach.stage_features(net, item)
samples = sample_positions([tuple(f.shape[-2:]) for f in feats_a], cfg.loss.spatial_samples,
                           cfg.loss.temporal_factor, cfg.loss.central,
                           generator=torch.Generator().manual_seed(params.seeds[0]))
teach.stage_shapes(feats_a, samples, cfg.T, cfg.net.head_ratio).set_index("stage").T

# %% [markdown]
# The 8 spatial VD vectors of one anchor (frame 0 of the window): the raw disparity, its adaptive weight, and how
# its projected vector compares with its positive in clip B and with the best of the other keys of the frame.

# %%
anchor = teach.anchor_vd(net, cfg.loss, feats_a, feats_b, samples, stage=example_stage - 1)
print(f"stage {example_stage}, anchor at flat index {int(samples[example_stage - 1].anchors[0])}")
anchor

# %% [markdown]
# PatchNCE of every term, variant and stage on this pair, beside its chance level $\log Q$ (untrained network):

# %%
example = teach.patchnce_table(net, cfg.loss, feats_a, feats_b, samples, cfg.T)
example

# %%
h = torch.tensor([0.55, 0.7, 0.8, 0.85, 0.95])
print(f"adaptive weight, theta = {cfg.loss.theta}: h = {[round(x, 2) for x in h.tolist()]} -> w = "
      f"{[round(float(x), 3) for x in adaptive_weight(h, cfg.loss.theta)]}")

# %% [markdown]
# ## The full picture for one pair (saved for the report)
#
# `correlation_snapshot` saves the same quantities for a window of the first *happy* pair at stage 2: the sampled
# positions, the VD vectors of both renditions, the CM heatmaps and the adaptive weight over the face.

# %%
snap = correlation_snapshot(params.metric_config, paths.data_root, paths.run_dir / "correlation_snapshot.npz",
                            seed=params.seeds[0])
figs = figures.correlation_figures(snap)

# %% [markdown]
# ### Sampled positions

# %%
figs["positions"]

# %% [markdown]
# ### VD: visual disparity vectors

# %%
figs["vd"]

# %% [markdown]
# ### CM: correlation matrices (spatial, and temporal at one position)

# %%
figs["cm"]

# %% [markdown]
# ### Correlation-aware adaptive weighting over the face

# %%
figs["weights"]

# %% [markdown]
# ## Matched against mismatched pairs before training
#
# On held-out identities, for the network at initialisation: **pos** is the mean cosine of each query $a_i$ with
# its positive $b_i$ (same index, aligned neutral window); **pos_mismatched** the same query against the key at the
# same index of a *mismatched* neutral window (same actor and emotion pair, another sentence): the control every
# positive needs; **gap** = pos − pos_mismatched, what speech correspondence adds; **neg** the query against a key
# of another index. `per_query` is the cosine PatchNCE trains; `official` the official code's measure (defined in
# notebook 03). Mean ± SD over 3 seeds of windows and positions.

# %%
before = diagnose_before(params, paths, force=force)
rows = diagnostic_rows(before)
cols = ["measure", "variant", "kind", "pos", "pos_mismatched", "gap", "gap_sd", "neg"]
before_table = pd.DataFrame(rows)[cols]
before_table

# %% [markdown]
# ## What this shows

# %%
display(Markdown(teach.correlation_takeaways(example, before)))

# %%
sums = example.groupby(["term", "variant"])[["PatchNCE", "chance log Q"]].sum()   # over stages
record_outputs(paths, "02_correlation_analysis",
               {"snapshot": snap, "diagnose_before": paths.run_dir / "diagnose_before.json"},
               {"pos_neg_before": {v: before[v] for v in ("vd", "cm")},
                "example_patchnce": {f"{t}_{v}": {"ce": float(r["PatchNCE"]), "chance": float(r["chance log Q"])}
                                     for (t, v), r in sums.iterrows()}})
