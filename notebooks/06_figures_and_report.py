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
# # 06 — Figures and report
#
# Builds every figure and table of `reports/<params stem>/` and its REPORT.md only from saved run outputs
# (metrics.jsonl, eval.json, the CSV and .npz files the earlier notebooks wrote), never from in-memory state.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None
preset = None
device = "auto"
seeds = None
run_name = None
force = False

# %%
from IPython.display import Markdown, display

from stccl.pipeline import report
from stccl.pipeline.params import notebook_context, record_outputs

params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
report_md = report.build_report(params, paths)
print("written", report_md)

# %%
display(Markdown(report_md.read_text().replace("](figures/", f"]({paths.report_dir}/figures/")))

# %%
record_outputs(paths, "06_figures_and_report", {"report": report_md})
