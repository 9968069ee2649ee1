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
# (metrics.jsonl, eval.json, the CSV and .npz files the earlier notebooks wrote), never from in-memory state, and
# checks them against the kit's targets:
#
# - metric diagnostic on held-out identities after training: $\text{pos} \ge$ `TARGET_POS` and
#   $\lvert\text{neg}\rvert \le$ `TARGET_NEG` (the paper's kind of evidence), and, beside it, the control
#   $\text{gap} = \text{pos} - \text{pos}_{\text{mismatched}} \ge$ `TARGET_GAP`;
# - SPFEM +STCCL against the baseline: `mouth_l1` at least `TARGET_MOUTH_DROP_PCT` % lower, emotion accuracy within
#   `TARGET_EMOTION_POINTS` and CSIM not lower.
#
# (The values of these constants of `stccl.pipeline.report` are printed below.)

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None     # None: reports/runs/<run_name>/data
run_name = None      # None: the params file's stem

# %%
import json

import pandas as pd
from IPython.display import Markdown, display

from stccl.io import read_json
from stccl.pipeline import report
from stccl.pipeline.params import NOTEBOOKS, notebook_context, record_outputs

params, paths = notebook_context(params_file, data_root, run_name=run_name)
print({k: getattr(report, k) for k in ("TARGET_POS", "TARGET_NEG", "TARGET_GAP", "TARGET_MOUTH_DROP_PCT",
                                       "TARGET_EMOTION_POINTS")})

# %% [markdown]
# ## Worked example: where the report's inputs come from
#
# Each notebook records the files it made (`record_outputs`); the report reads only those. The table lists them.

# %%
inputs = []
for nb in NOTEBOOKS:
    rec = paths.outputs_dir / f"{nb}.json"
    if nb != "06_figures_and_report" and rec.is_file():
        for key, f in read_json(rec, "recorded outputs")["files"].items():
            inputs.append({"notebook": nb, "output": key, "file": f})
pd.DataFrame(inputs)

# %% [markdown]
# ## Build the report

# %%
report_md = report.build_report(params, paths)
print("written", report_md)

# %% [markdown]
# One number traced back: the VD spatial positive before training, from `pos_neg.csv` (notebook 03) to the report.

# %%
pos_neg_csv = paths.run_dir / "pos_neg.csv"
if pos_neg_csv.is_file():
    pn = pd.read_csv(pos_neg_csv)
    row = pn[(pn.variant == "vd") & (pn.measure == "spatial_pos")].iloc[0]
    lines = [l for l in report_md.read_text().splitlines() if f"{row.before:.3f}" in l]
    print(f"pos_neg.csv: vd spatial_pos before = {row.before}")
    print("REPORT.md:", lines[0][:300] if lines else "(not quoted)")

# %%
display(Markdown(report_md.read_text().replace("](figures/", f"]({paths.report_dir}/figures/")))

# %% [markdown]
# ## What this shows

# %%
digest = []
controls_csv = paths.run_dir / "controls.csv"
if pos_neg_csv.is_file():
    digest.append("- " + report.pos_neg_verdict(pd.read_csv(pos_neg_csv)))
if controls_csv.is_file():
    digest.append("- " + report.control_verdict(pd.read_csv(controls_csv)))
comparison_csv = paths.run_dir / "spfem_comparison.csv"
if comparison_csv.is_file():
    comparison = pd.read_csv(comparison_csv)
    digest += [report.spfem_verdict(comparison, v) for v in ("vd", "cm") if v in set(comparison["variant"])]
status = {nb: json.loads((paths.status_dir / f"{nb}.json").read_text()) for nb in NOTEBOOKS
          if (paths.status_dir / f"{nb}.json").is_file()}
if status:
    digest.append(f"- Last execution time of each notebook (a reused run takes seconds): "
                  + ", ".join(f"{nb[:2]} {s['seconds']:.0f} s" for nb, s in status.items())
                  + f" (total {sum(s['seconds'] for s in status.values()):.0f} s).")
display(Markdown("\n".join(digest) if digest else "- No run outputs yet: run notebooks 01-05 first."))

# %%
record_outputs(paths, "06_figures_and_report", {"report": report_md})
