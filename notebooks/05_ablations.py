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
# Which parts of STCCL matter? A one-factor-at-a-time grid around the default setting (params file,
# `ablation.runs`): VD vs CM; spatial only / temporal only / both ($L = L_{SCC}$, $\lambda_T L_{TCC}$, or both);
# adaptive weighting on/off ($w_i = 1$ everywhere when off); the PatchNCE temperature $\tau$; the metric's window
# $T$; the metric's $\lambda_T$; and no STCCL at all. Each grid point changes one setting of the default:
#
# - metric-side factors retrain the metric network (`ablation.metric_steps` steps; grid points with the same
#   metric settings share one retrain, in a folder named by the hash of those settings);
# - every point trains SPFEM (`ablation.spfem_steps`) with its metric plugged in, and is evaluated like
#   notebook 04 (`mouth_l1`: speech kept, lower is better; `emotion_acc`: target emotion shown).
#
# Each point is one seed. A difference between two points means something only if it exceeds the seed-to-seed
# spread of the same setting, which notebook 04 measures when the params file gives several seeds.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None     # None: reports/runs/<run_name>/data
device = "auto"
run_name = None      # None: the params file's stem
force = False        # clear the grid's folder and start it over

# %%
import pandas as pd
from IPython.display import Markdown, display

from stccl.pipeline import figures, teach
from stccl.pipeline.ablation import ablation_metric_dir, run_ablation_batch
from stccl.pipeline.params import changed_fields, notebook_context, record_outputs
from stccl.pipeline.steps import metric_config, spfem_config

params, paths = notebook_context(params_file, data_root, device=device, run_name=run_name)
a = params.ablation
print(f"{len(a.runs)} grid points; metric steps {a.metric_steps}, SPFEM steps {a.spfem_steps}, seed {a.seed}")

# %% [markdown]
# ## Worked example: from a grid point to the configs it trains
#
# Each row below is one grid point: the settings it changes in the resolved metric and SPFEM configs (against the
# default point), and the metric retrain folder it uses. Points with the same metric settings share the folder.

# %%
metric0 = metric_config(params, paths, steps=a.metric_steps)
spfem0 = spfem_config(params, paths, "vd", a.seed, steps=a.spfem_steps)
plan = []
for r in a.runs:
    spfem_extra = {k: v for k, v in r.spfem.items() if k != "variant"}
    variant = r.spfem.get("variant", "vd")
    plan.append({"run": r.name, "factor": r.factor, "SPFEM variant": variant,
                 "metric changes": changed_fields(metric0, metric_config(params, paths, dict(r.metric),
                                                                         a.metric_steps)),
                 "SPFEM changes": changed_fields(spfem0, spfem_config(params, paths, variant, a.seed, extra=spfem_extra,
                                                                      steps=a.spfem_steps)),
                 "metric folder": ablation_metric_dir(paths, dict(r.metric)).name if variant != "baseline" else "-"})
pd.DataFrame(plan).set_index("run")

# %% [markdown]
# ## Run the grid

# %%
rows = run_ablation_batch(params, paths, force=force)
df = figures.ablation_frame(rows)
figures.write_table(df, paths.run_dir / "ablations")
print(figures.ablation_markdown(df))

# %%
if len(df):
    figures.ablation_figure(df);

# %% [markdown]
# ## Each retrained metric's loss against its chance level
#
# Last logged PatchNCE of every term divided by its chance level $\sum_l \log Q_l$: below 1, the retrained metric
# tells positives from negatives better than chance; at or above 1, the grid point's SPFEM run gets a metric that
# does not.

# %%
grid_losses = teach.grid_loss_table(df)
grid_losses.round(3)

# %% [markdown]
# ## What this shows

# %%
comparison = paths.run_dir / "spfem_comparison.csv"   # notebook 04's table: seed-to-seed SD of the main runs
seed_sd = None
if comparison.is_file():
    main = pd.read_csv(comparison)
    spread = main[(main["runs"] > 1) & main["variant"].isin(["baseline", "vd", "cm"])]["mouth_l1_std"]
    seed_sd = float(spread.mean()) if len(spread) else None
text = teach.ablation_takeaways(df, "mouth_l1", seed_sd)
if len(grid_losses):
    worst = grid_losses.max(axis=1)
    text += (f"\n- Retrained metrics below chance on every term: {int((worst < 1).sum())} of {len(worst)} grid points "
             f"(largest loss / chance ratio {worst.max():.2f}, at {worst.idxmax()}); each retrain takes "
             f"{a.metric_steps} steps against {metric_config(params, paths).max_steps} for the main metric of "
             f"notebook 03.")
display(Markdown(text))

# %%
record_outputs(paths, "05_ablations", {"ablations": paths.run_dir / "ablations.csv"}, {"runs": len(df)})
