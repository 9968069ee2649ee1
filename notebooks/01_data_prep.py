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
# # 01 — Data preparation
#
# Renders the synthetic paired talking-face data set in the MEAD layout (`stccl synth`), or uses a
# prepared MEAD root given as `data_root`. Shows a contact sheet of identities × emotions, the DTW
# alignment of one neutral/emotional pair drawn over both renditions, and the data set summary.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None     # None: reports/runs/<params stem>/data (rendered here)
preset = None        # None: the params file's synth preset
device = "auto"
seeds = None
run_name = None      # None: the params file's stem
force = False

# %%
from stccl.pipeline import figures
from stccl.pipeline.params import notebook_context, record_outputs
from stccl.pipeline.steps import ensure_data

params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
root = ensure_data(params, paths, force=force)
print("data root:", root)

# %% [markdown]
# ## Contact sheet: identities × emotions

# %%
sheet = root / "contact_sheet.png"
if sheet.is_file():
    figures.image_figure(sheet, "identities (rows) x emotions (columns); test identities marked");

# %% [markdown]
# ## The DTW alignment of one pair
# Top: neutral frames at evenly spaced path steps; middle: the emotional frames the path matches to them.
# Bottom: the path itself and, for synthetic data, the true frame correspondence (same sentence time).

# %%
actor, emotion, pair = figures.first_pair(root, emotion="happy")
figures.alignment_figure(root, actor, emotion, pair, n_show=params.frames_to_show);

# %% [markdown]
# ## Data set summary

# %%
summary = figures.data_summary_table(root)
summary

# %%
files = {"alignment": root / "aligned_path.json"}
if (root / "summary.json").is_file():
    files["summary"] = root / "summary.json"
record_outputs(paths, "01_data_prep", files,
               {"data_root": str(root), "pair_shown": [actor, emotion, pair], "rows": len(summary)})
