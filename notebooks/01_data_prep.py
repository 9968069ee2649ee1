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
# STCCL never sees a paired target (person P saying sentence S with the target emotion). What it learns from
# is a **pair of renditions**: P says S neutrally and P says S with emotion e. This notebook renders such pairs
# as a synthetic talking-face data set in the MEAD layout (`stccl synth`), or uses a prepared MEAD root given
# as `data_root`, and shows how the two renditions are put in correspondence.
#
# **Layout** (read unchanged from the reference code): `{root}/{actor}/align_img/{emotion}/{clip:03d}/{frame:06d}.jpg`,
# and `aligned_path.json`: for every actor, emotion and pair `NNN_MMM` (neutral clip NNN, emotional clip MMM of
# the same sentence) two equal-length lists of frame indices.
#
# **Alignment.** The two renditions are spoken at different tempi. With mouth-region features
# $x_1..x_N$ (neutral) and $y_1..y_M$ (emotional), dynamic time warping finds the monotone path
# $P = ((i_1, j_1), \dots, (i_L, j_L))$ from $(1, 1)$ to $(N, M)$ that minimises
#
# $$\sum_{l=1}^{L} \lVert x_{i_l} - y_{j_l} \rVert .$$
#
# **A training sample** is a window of $T$ consecutive path steps, $s .. s+T-1$, taken from both renditions:
# the neutral frames $i_s..i_{s+T-1}$ and the emotional frames $j_s..j_{s+T-1}$. A pair of path length $L$ gives
# $L - T + 1$ windows. Frame $t$ of one window and frame $t$ of the other say the same thing (the **positive**
# pair of every later loss). The diagnostic's **control** (notebooks 02, 03) is a *mismatched* pair: a neutral
# window of the same actor saying another sentence: the same face, not the same speech.

# %% tags=["parameters"]
params_file = "params/smoke.yaml"
data_root = None     # None: reports/runs/<run_name>/data (rendered here)
preset = None        # None: the params file's synth preset (tiny, default or control)
seeds = None         # None: the params file's seeds; the first one seeds the renderer
run_name = None      # None: the params file's stem
force = False
# Synthetic-data knobs (None: the params file's `synth` value, else the preset's). A setting that changes the
# data renders into a folder of its own (data-<hash>), so a data set rendered with other settings is not reused.
identities = None
sentences = None          # two or more give every window a mismatched sentence (the control)
size = None               # frame side in pixels
emotion_timing = None     # False: every emotion of a sentence uses one phoneme timing (frame-aligned renditions)
emotion_on_mouth = None   # False: emotions move brows, lids, cheeks and nose only, never mouth, jaw or head pitch
shared_motion = None      # True: head pose and blinks follow the sentence timeline in every emotion
pose_jitter = None        # scale of per-take head motion
blink_rate = None         # blinks per second
noise_std = None          # sensor noise
alignment = None          # "dtw" (as on real data) or "truth" (the path from the known sentence times)

# %%
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from stccl.core.train_metric import load_metric_config
from stccl.data.mead import PairedWindowDataset, load_alignment, parse_pair, summarise_pairs, window_count
from stccl.data.synth import load_ground_truth, true_frame_map
from stccl.io import read_json
from stccl.pipeline import figures, teach
from stccl.pipeline.params import knob_tag, notebook_context, record_outputs, synth_config, with_synth_knobs
from stccl.pipeline.steps import ensure_data

params, paths = notebook_context(params_file, data_root, seeds=seeds, run_name=run_name)
params, paths, changed = with_synth_knobs(
    params, paths, preset=preset, identities=identities, sentences=sentences, size=size,
    emotion_timing=emotion_timing, emotion_on_mouth=emotion_on_mouth, shared_motion=shared_motion,
    pose_jitter=pose_jitter, blink_rate=blink_rate, noise_std=noise_std, alignment=alignment)
settings = dataclasses.asdict(synth_config(params))
print("settings changed from the params file:", changed or "none")
root = ensure_data(params, paths, force=force)
print("data root:", root)

# %% [markdown]
# ## Contact sheet: identities × emotions

# %%
sheet = root / "contact_sheet.png"
if sheet.is_file():
    figures.image_figure(sheet, "identities (rows) x emotions (columns); test identities marked");

# %% [markdown]
# ## Worked example: one pair, one window
#
# The first training pair with emotion *happy*: its path, one window of $T$ steps, and (synthetic data only)
# the emotional frame that truly says what each neutral frame says, from the renderer's sentence times.

# %%
T = load_metric_config(params.metric_config).T   # the metric network's window length
actor, emotion, pair = figures.first_pair(root, emotion="happy")
idx_n, idx_e = (np.asarray(x) for x in load_alignment(root / "aligned_path.json")[actor][emotion][pair])
c_n, c_e = parse_pair(pair)
n_windows = window_count(len(idx_n), T)
print(f"{actor} neutral clip {c_n:03d} vs {emotion} clip {c_e:03d}: path of L = {len(idx_n)} steps "
      f"-> L - T + 1 = {n_windows} windows of T = {T}")
s = min(len(idx_n) // 2, n_windows - 1)   # a window from the middle of the sentence
window = pd.DataFrame({"path step": np.arange(s, s + T), "neutral frame i": idx_n[s:s + T],
                       "emotional frame j": idx_e[s:s + T]})
if (root / "ground_truth.parquet").is_file():
    gt = load_ground_truth(root)
    sel = lambda e, c: gt[(gt["actor"] == actor) & (gt["emotion"] == e) & (gt["clip"] == c)].sort_values("frame")
    truth = true_frame_map(sel("neutral", c_n)["sentence_time"].to_numpy(),
                           sel(emotion, c_e)["sentence_time"].to_numpy())
    window["true emotional frame"] = np.round(truth[window["neutral frame i"]], 1)
window

# %% [markdown]
# The same window's **mismatched partner**, as the diagnostic draws it: a neutral window of the same actor and
# emotion pair that says another sentence (or, with one sentence per actor, a window at least 1 s away).

# %%
ds = PairedWindowDataset(root, root / "aligned_path.json", T=T, split="train")
i = next(k for k in range(len(ds)) if ds.window(k)[1] == s
         and (ds.window(k)[0]["actor"], ds.window(k)[0]["emotion"], ds.window(k)[0]["pair"]) == (actor, emotion, pair))
partner = ds.mismatched_neutral(i, np.random.default_rng(0))
print("no mismatched partner (one short sentence per actor)" if partner is None else
      f"mismatched partner ({partner[2]}): neutral frames {partner[1].tolist()}, tensor {tuple(partner[0].shape)} "
      f"= (T, 3, H, W)")

# %% [markdown]
# ## The DTW alignment of one pair
# Top: neutral frames at evenly spaced path steps; middle: the emotional frames the path matches to them.
# Bottom: the path itself and, for synthetic data, the true frame correspondence (same sentence time).

# %%
figures.alignment_figure(root, actor, emotion, pair, n_show=params.frames_to_show);

# %% [markdown]
# ## Data set summary

# %%
summary = figures.data_summary_table(root)
summary

# %% [markdown]
# ## What this shows

# %%
facts = read_json(root / "summary.json", "data summary") if (root / "summary.json").is_file() else {}
mead_file = Path("../shared/data/mead/aligned_path36.json")   # the real MEAD alignment (SPEC section 5)
pairs = summarise_pairs(root / "aligned_path.json", root, T=T)
mead_pairs = summarise_pairs(mead_file, T=T) if mead_file.is_file() else None
display(Markdown(teach.data_takeaways(facts, settings, str(root), pairs, mead_pairs) if facts else
                 f"- A prepared data root (`{root}`): {pairs['pairs']} pairs, "
                 f"{pairs['splits']['train']['windows']} training windows of T = {T}."))

# %%
files = {"alignment": root / "aligned_path.json"}
if (root / "summary.json").is_file():
    files["summary"] = root / "summary.json"
record_outputs(paths, "01_data_prep" + knob_tag(changed), files,   # knobs: a record of their own
               {"data_root": str(root), "pair_shown": [actor, emotion, pair], "rows": len(summary),
                "settings_changed": changed})
