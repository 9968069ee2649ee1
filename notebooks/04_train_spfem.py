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
# The metric network of notebook 03 is frozen and plugged into a speech-preserving facial expression manipulation
# (SPFEM) generator as an extra loss. The generator $G$ turns a source clip $x$ (emotion $e_{src}$) into
# $G(x, e_{tgt})$ without any paired target, trained with
# $$L_G = \lambda_{adv} L_{adv} + \lambda_{cls} \mathrm{CE}(C(G(x, e_{tgt})), e_{tgt})
#   + \lambda_{rec} \lVert G(x, e_{src}) - x \rVert_1 + \lambda_{cyc} \lVert G(G(x, e_{tgt}), e_{src}) - x \rVert_1
#   + \lambda_{id} (1 - \cos(E(G(x, e_{tgt})), E(x))) + \lambda_{STCCL} L_{STCCL},$$
# $$L_{STCCL} = \lambda_S L_{SCC}(x, G(x, e_{tgt})) + \lambda_T L_{TCC}(x, G(x, e_{tgt})),$$
# the input clip giving the keys and the generated clip the queries (gradients reach the generator only). The
# input and the generated clip share speech but differ in emotion, the relation the metric was trained on. The
# baseline is the same generator with $\lambda_{STCCL} = 0$.
#
# **The generator** of the default params is NED-like (`generator.output: expression`): a frozen regressor
# estimates 16 face landmarks $\hat l(x)$ per frame (the stand-in for NED's 3-D face fitter), a manipulator MLP
# shifts them along the 8 main modes of landmark motion of the train identities (a 3DMM-like expression basis in
# which speech and emotion mix), and the frame is warped so that $\hat l(x)$ moves to the shifted landmarks. Its
# emotion loss reads the shifted landmarks with a landmark emotion classifier (`cls_on: landmarks`) instead of the
# pixels; the other terms are as above, and STCCL's gradient reaches the manipulator through the warp.
#
# **Evaluation** (held-out identities, against the synthetic ground truth: the same person saying the same sentence
# on the source's timing with the target emotion): speech: mouth-crop L1 (`mouth_l1`, lower is better) and mouth
# parameter error; expression: accuracy of an evaluation emotion classifier; identity: CSIM and FAD; image: SSIM,
# PSNR. The *copy* row copies the input: perfect speech, no emotion change.
#
# Two losses have a chance level: $\mathrm{CE}$ of the emotion classifier, $\log 7$ for 7 emotions, and the STCCL
# term, $\lambda_S \sum_l \log Q^{S}_l + \lambda_T \sum_l \log Q^{T}_l$; the adversarial, L1 and identity terms have
# none.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None     # None: reports/runs/<run_name>/data
device = "auto"
seeds = None         # None: the params file's seeds (one SPFEM run per variant and seed)
run_name = None      # None: the params file's stem
force = False        # retrain and re-evaluate
# SPFEM knobs (None: the params file's). A changed STCCL weight trains the +STCCL runs in folders of their own
# (spfem_<variant>_s<seed>-<hash>) and writes the comparison files with the same suffix.
lambda_stccl = None  # the weight of L_STCCL in L_G
variants = None      # e.g. ["baseline", "vd"]: which of baseline, vd, cm to train

# %%
import dataclasses

import numpy as np
from IPython.display import Markdown, display

from stccl.config import replace
from stccl.core.losses import STCCLLoss
from stccl.data.mead import EMOTIONS, PairedWindowDataset
from stccl.io import read_json
from stccl.pipeline import figures, teach
from stccl.pipeline.params import changed_fields, knob_tag, notebook_context, record_outputs
from stccl.pipeline.steps import evaluate_copy_baseline, spfem_config, train_and_evaluate
from stccl.spfem.side_by_side import save_side_by_side

params, paths = notebook_context(params_file, data_root, device=device, seeds=seeds, run_name=run_name)
knobs = {"lambda_stccl": lambda_stccl} if lambda_stccl is not None else {}
base = spfem_config(params, paths, "vd", params.seeds[0])
params = replace(params, spfem_set={**params.spfem_set, **knobs}, variants=list(variants or params.variants))
cfg = spfem_config(params, paths, "vd", params.seeds[0])
changed = changed_fields(base, cfg)
tag = knob_tag(changed)
paths = dataclasses.replace(paths, spfem_suffix=tag)
metric_ckpt = paths.metric_run / "ckpt_last.pt"
assert metric_ckpt.is_file() or params.variants == ("baseline",), f"run notebook 03 first ({metric_ckpt} missing)"
print("SPFEM config changed from the params file:", changed or "none")
print(f"variants {list(params.variants)}, seeds {list(params.seeds)}, steps {cfg.steps}, "
      f"clip_frames {cfg.clip_frames}, lambda_stccl {cfg.lambda_stccl} "
      f"(lambda_S {cfg.stccl_lambda_S}, lambda_T {cfg.stccl_lambda_T})")

# %% [markdown]
# ## Worked example: what the plug-in loss rewards
#
# One held-out neutral clip $x$ of `clip_frames` frames, and four candidates for "the generated clip": $x$ itself,
# the aligned *emotional* rendition of the same sentence (what a perfect generator would produce), a neutral
# window of the same actor saying *another* sentence (the mismatched control), and $x$ played backwards. The frozen
# metric scores each against $x$; the chance level is the value of a metric that cannot tell its positives apart.

# %%
if metric_ckpt.is_file():
    plug = STCCLLoss.from_checkpoint(metric_ckpt, variant="vd", lambda_S=cfg.stccl_lambda_S,
                                     lambda_T=cfg.stccl_lambda_T)
    ds = PairedWindowDataset(paths.data_root, paths.data_root / "aligned_path.json", T=cfg.clip_frames, split="test",
                             size=cfg.size)
    i = next((k for k in range(len(ds)) if not ds.repeats_index(k)), 0)
    item, partner = ds[i], ds.mismatched_neutral(i, np.random.default_rng(0))
    x = item["neutral"]   # (T, 3, H, W)
    candidates = {"x itself": x, "same sentence, other emotion": item["emotional"], "x backwards": x.flip(0)}
    if partner is not None:
        candidates["other sentence (mismatched)"] = partner[0]
    print(f"{item['actor']} pair {item['pair']} (neutral vs {item['emotion']}), path steps around {item['step']}; "
          f"clip {tuple(x.shape)} = (T, 3, H, W); mismatched partner: {partner[2] if partner else 'none'}")
    examples = {}
    for v in ("vd", "cm"):
        plug.options = dataclasses.replace(plug.options, variant=v)
        examples[v] = teach.plugin_table(plug, x, candidates, seed=params.seeds[0])
        display(examples[v].pivot(index="candidate", columns="term", values="PatchNCE").round(3)
                .assign(chance=examples[v]["chance"].iloc[-1]).rename_axis(f"{v.upper()}: PatchNCE", axis=1))
else:
    examples = {}
    print("no metric checkpoint: baseline only")
stccl_chance = {v: float(ex["chance"].iloc[-1]) for v, ex in examples.items()}   # the total row's chance

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
# ## Evaluation table (mean ± std over seeds)

# %%
table = figures.eval_table(list(runs.values()) + [paths.run_dir / "eval_copy"])
figures.write_eval_table(table, paths.run_dir / f"spfem_comparison{tag}")
print(figures.eval_markdown(table))

# %% [markdown]
# ## Training curves, and the losses that have a chance level

# %%
for (variant, seed), run in runs.items():
    figures.loss_curves(run / "metrics.jsonl", title=f"SPFEM {variant} seed {seed}");

# %%
losses = teach.spfem_loss_table(runs, stccl_chance, len(EMOTIONS))
losses.round(3)

# %% [markdown]
# ## Side by side: source, ground truth and each variant (first seed)

# %%
first = params.seeds[0]
npz = save_side_by_side(paths.data_root, {v: runs[(v, first)] for v in params.variants},
                        paths.run_dir / f"side_by_side{tag}.npz", n_frames=params.frames_to_show)
figures.side_by_side_figure(npz);

# %% [markdown]
# ## What this shows

# %%
display(Markdown(teach.spfem_takeaways(table, losses, examples)))

# %%
record_outputs(paths, "04_train_spfem" + tag,   # knobs: a record of their own, the runner's stays
               {**{f"eval_{v}_s{s}": r / "eval.json" for (v, s), r in runs.items()},
                "eval_copy": paths.run_dir / "eval_copy" / "eval.json",
                "comparison": paths.run_dir / f"spfem_comparison{tag}.csv", "side_by_side": npz},
               {f"{v}_s{s}": figures.flat_eval(r / "eval.json") for (v, s), r in runs.items()})
