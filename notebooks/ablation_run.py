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
# # Ablation grid point (template)
#
# Executed by notebook 05 with papermill, once per grid YAML (`reports/runs/<stem>/ablations/params/<run>.yaml`):
# retrains the metric network with the run's metric overrides (shared by runs with the same overrides), trains
# SPFEM with it, evaluates, and saves `row.json`.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
run_name = "default"   # the grid point (ablation.runs[].name)
data_root = None       # passed by notebook 05 so that its overrides reach every grid point
run_stem = None
force = False

# %%
from stccl.pipeline.runner import ablation_run, notebook_context

params, paths = notebook_context(params_file, data_root=data_root, run_name=run_stem)
run = {r.name: r for r in params.ablation.runs}[run_name]
run

# %%
row = ablation_run(params, paths, run, force=force)
row
