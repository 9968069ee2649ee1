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
# # 04 — SPFEM: baseline vs +STCCL (VD, CM)
#
# Trains the compact SPFEM generator without paired targets, once without STCCL (baseline) and once with the
# frozen metric network of notebook 03 as an extra loss (VD and CM variants), for every seed; evaluates each
# run against the synthetic ground truth (`stccl evaluate`), and shows frames side by side.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None
preset = None
device = "auto"
seeds = None
run_name = None
force = False

# %%
from stccl.io import read_json
from stccl.pipeline import figures
from stccl.pipeline.params import notebook_context, record_outputs
from stccl.pipeline.steps import evaluate_copy_baseline, train_and_evaluate
from stccl.spfem.side_by_side import save_side_by_side

params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
metric_ckpt = paths.metric_run / "ckpt_last.pt"
assert metric_ckpt.is_file() or params.variants == ("baseline",), f"run notebook 03 first ({metric_ckpt} missing)"

# %% [markdown]
# ## Train and evaluate every variant and seed
#
# `jobs` in the params file sets how many runs train at once (each in its own process).

# %%
runs = train_and_evaluate(params, paths, force=force)   # params.jobs runs at a time
for (variant, seed), run in runs.items():
    ev = read_json(run / "eval.json", "evaluation file")
    print(f"{variant:8s} seed {seed}: " + ", ".join(f"{k}={v:.4f}" for k, v in ev["summary"].items()
                                                    if isinstance(v, float)))
copy_eval = evaluate_copy_baseline(params, paths, runs[(params.variants[0], params.seeds[0])], force=force)

# %% [markdown]
# ## Evaluation table (mean ± std over seeds; the 'copy' row copies the input: perfect speech, no emotion change)

# %%
table = figures.eval_table(list(runs.values()) + [paths.run_dir / "eval_copy"])
figures.write_eval_table(table, paths.run_dir / "spfem_comparison")
print(figures.eval_markdown(table))

# %% [markdown]
# ## Training curves

# %%
for (variant, seed), run in runs.items():
    figures.loss_curves(run / "metrics.jsonl", title=f"SPFEM {variant} seed {seed}");

# %% [markdown]
# ## Side by side: source, ground truth and each variant (first seed)

# %%
first = params.seeds[0]
npz = save_side_by_side(paths.data_root, {v: runs[(v, first)] for v in params.variants}, paths.run_dir / "side_by_side.npz",
                        n_frames=params.frames_to_show)
figures.side_by_side_figure(npz);

# %%
record_outputs(paths, "04_train_spfem",
               {**{f"eval_{v}_s{s}": r / "eval.json" for (v, s), r in runs.items()},
                "eval_copy": paths.run_dir / "eval_copy" / "eval.json",
                "comparison": paths.run_dir / "spfem_comparison.csv", "side_by_side": npz},
               {f"{v}_s{s}": figures.flat_eval(r / "eval.json") for (v, s), r in runs.items()})
