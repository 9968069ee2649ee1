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
# (neutral window, emotional window) pairs, plots the loss curves from `metrics.jsonl`, and reproduces the
# paper's before/after figure: mean cosine similarity of positive pairs (same index in both renditions) and of
# negative pairs (shuffled index), spatial and temporal, on the held-out identities.

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
from stccl.pipeline.steps import diagnose_before, diagnose_json, train_metric_run

params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
run = train_metric_run(params, paths, force=force)
ckpt = run / "ckpt_last.pt"
print("metric run:", run)

# %% [markdown]
# ## Loss curves (from metrics.jsonl)

# %%
figures.loss_curves(run / "metrics.jsonl", title="metric network: L_SCC + lambda_T L_TCC");

# %% [markdown]
# ## Positive / negative similarity before and after training (the paper's figure)

# %%
before = diagnose_before(params, paths, force=force)   # the network at initialisation (also notebook 02)
after = diagnose_json(ckpt, paths.data_root, paths.run_dir / "diagnose_after.json", split=params.diagnose_split,
                      batches=params.diagnose_batches, force=force)
table = figures.pos_neg_table(before, after)
figures.write_table(table, paths.run_dir / "pos_neg")
table

# %% [markdown]
# ## Every positive beside its control
#
# `pos` (query vs its matched key) alone cannot show that the metric learned speech: two frames of the same face
# share their layout whatever they say. The control is the same query against a **mismatched** pair (same actor
# and emotions, another sentence); `gap = pos - pos_mismatched` is what speech correspondence adds. Both measures
# are shown: the per-query cosine PatchNCE trains, and the official code's per-channel cosine along positions
# (the number behind the paper's 0.96 / 0.98). Error bars: SD over 3 seeds of windows and positions.

# %%
controls = figures.control_table(before, after)
figures.write_table(controls, paths.run_dir / "controls")
figures.control_figure(controls);

# %% [markdown]
# ## The adaptive weight map with the trained network

# %%
snap = correlation_snapshot(params.metric_config, paths.data_root,
                           paths.run_dir / "correlation_snapshot_trained.npz", checkpoint=ckpt,
                           seed=params.seeds[0])
figures.correlation_figures(snap)["weights"];

# %%
record_outputs(paths, "03_train_metric",
               {"checkpoint": ckpt, "metrics": run / "metrics.jsonl", "diagnose_before": paths.run_dir / "diagnose_before.json",
                "diagnose_after": paths.run_dir / "diagnose_after.json", "pos_neg": paths.run_dir / "pos_neg.csv",
                "controls": paths.run_dir / "controls.csv",
                "snapshot_trained": snap},
               {r.variant + "_" + r.measure: {"before": r.before, "after": r.after} for r in table.itertuples()})
