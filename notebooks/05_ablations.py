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
# one call of `stccl.pipeline.ablation.ablation_run` in its own process (`params.jobs` at a time); metric-side
# factors retrain the metric network (`ablation.metric_steps` steps), every point trains SPFEM
# (`ablation.spfem_steps`) and is evaluated.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None
preset = None
device = "auto"
seeds = None
run_name = None
force = False

# %%
from stccl.pipeline import figures
from stccl.pipeline.ablation import run_ablation_batch
from stccl.pipeline.params import notebook_context, record_outputs

params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
print(f"{len(params.ablation.runs)} grid points; metric steps {params.ablation.metric_steps}, "
      f"SPFEM steps {params.ablation.spfem_steps}")

# %%
rows = run_ablation_batch(params, paths, force=force)
df = figures.ablation_frame(rows)
figures.write_table(df, paths.run_dir / "ablations")
print(figures.ablation_markdown(df))

# %%
if len(df):
    figures.ablation_figure(df);

# %%
record_outputs(paths, "05_ablations", {"ablations": paths.run_dir / "ablations.csv"}, {"runs": len(df)})
