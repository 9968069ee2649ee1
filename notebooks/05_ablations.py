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
# # 05 — Ablations
#
# One-factor-at-a-time grid around the default setting (params file, `ablation.runs`): VD vs CM; spatial only /
# temporal only / both; adaptive weighting on/off; tau; window T; lambda_T; and no STCCL. Each grid point is
# one YAML and one papermill execution of `notebooks/ablation_run.py`; metric-side factors retrain the metric
# network (`ablation.metric_steps` steps), every point trains SPFEM (`ablation.spfem_steps`) and is evaluated.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None
preset = None
device = "auto"
seeds = None
run_name = None
force = False

# %%
from stccl.pipeline import report
from stccl.io import atomic_write_text
from stccl.pipeline.runner import notebook_context, record_outputs, run_ablation_batch

params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
print(f"{len(params.ablation.runs)} grid points; metric steps {params.ablation.metric_steps}, "
      f"SPFEM steps {params.ablation.spfem_steps}")

# %%
rows = run_ablation_batch(params, paths, force=force, progress=False)
df = report.ablation_frame(rows)
report.write_table(df, paths.run_dir / "ablations")
print(report.ablation_markdown(df))

# %%
if len(df):
    report.ablation_figure(df);

# %%
record_outputs(paths, "05_ablations", {"ablations": paths.run_dir / "ablations.csv"}, {"runs": len(df)})
