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
# For one neutral/emotional window pair of the same actor and sentence (aligned by the DTW path), with the
# metric network *before training*:
# - the sampled anchors with their 8 neighbours (spatial) and the temporal positions;
# - VD vectors: projected, normalised disparities f(p) - f(q), and their cosine similarity across the two
#   renditions (positives on the diagonal);
# - CM heatmaps: the spatial correlation matrix of the sampled positions and the T x T temporal one;
# - the correlation-aware adaptive weight over the face;
# - the mean positive / negative similarity before training (`stccl diagnose --untrained`).

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None
preset = None
device = "auto"
seeds = None
run_name = None
force = False

# %%
from stccl.core.snapshot import correlation_snapshot
from stccl.pipeline import figures
from stccl.pipeline.params import notebook_context, record_outputs
from stccl.pipeline.steps import diagnose_before

params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
snap = correlation_snapshot(params.metric_config, paths.data_root, paths.run_dir / "correlation_snapshot.npz",
                           seed=params.seeds[0])
figs = figures.correlation_figures(snap)

# %% [markdown]
# ## Sampled positions

# %%
figs["positions"]

# %% [markdown]
# ## VD: visual disparity vectors

# %%
figs["vd"]

# %% [markdown]
# ## CM: correlation matrices (spatial, and temporal at one position)

# %%
figs["cm"]

# %% [markdown]
# ## Correlation-aware adaptive weighting over the face

# %%
figs["weights"]

# %% [markdown]
# ## Positive / negative similarity before training
# Mean cosine similarity of each query with its positive (same index in the other rendition) and with a
# shuffled index, for the network at initialisation (the same one notebook 03 starts from).

# %%
before = diagnose_before(params, paths, force=force)
{v: before[v] for v in ("vd", "cm")}

# %%
record_outputs(paths, "02_correlation_analysis",
               {"snapshot": snap, "diagnose_before": paths.run_dir / "diagnose_before.json"},
               {"pos_neg_before": {v: before[v] for v in ("vd", "cm")}})
