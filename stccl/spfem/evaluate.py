"""Evaluate SPFEM outputs against the synthetic ground truth, and compare runs.

    stccl evaluate --run reports/runs/spfem_vd_s0 [--split test]
    stccl evaluate --baseline copy --data data/synth_default --out reports/runs/eval_copy
    stccl compare reports/runs/spfem_*_s* --out reports/spfem_comparison

For every held-out identity, every source clip (neutral by default) and every
other target emotion, the generator's output is scored against the rendered
ground truth `stccl.data.synth.render_target` (the same person saying the same
sentence on the source's timing with the target emotion). Only evaluation
touches the ground truth.

Measures (per clip, then averaged; FAD over all frames):
- speech preservation: mouth-crop L1 and SSIM to the ground truth; mouth
  (viseme) parameter error |R(output) - R(truth)| with the mouth regressor R;
- expression: accuracy of the evaluation emotion classifier (not the one the
  generator was trained against);
- identity: CSIM (cosine of identity embeddings, input vs output) and FAD
  (Frechet distance between embeddings of generated and ground-truth frames),
  with the evaluation identity embedder;
- image quality: whole-frame SSIM / PSNR, and LPIPS when weights are present.

Outputs in the run folder: eval.json (summary) and eval_clips.csv (one row per clip).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from stccl.config import from_dict, parse_sets, to_dict
from stccl.data.mead import EMOTIONS, MeadLayout, frames_to_tensor, resolve_test_actors, split_actors
from stccl.data.synth import render_target
from stccl.io import StcclError, atomic_write_csv, atomic_write_json, atomic_write_text, read_json, to_json
from stccl.spfem.aux_nets import aux_scores, batched, crop_mouth, load_aux_nets, load_frame_table
from stccl.spfem.config import AuxConfig
from stccl.spfem.expression import emotion_mean_shifts, rbf_warp
from stccl.spfem.generator import GeneratorConfig
from stccl.spfem.scores import NOT_COMPUTED, csim, frechet_distance, lpips_distance, ssim_psnr
from stccl.spfem.train import load_generator

EVAL_NETS = ("emotion_eval", "identity_eval", "mouth")
# metric -> True when higher is better (for the comparison table)
SUMMARY_METRICS = {
    "mouth_l1": False, "mouth_ssim": True, "mouth_param_err": False, "emotion_acc": True,
    "csim": True, "fad": False, "ssim": True, "psnr": True,
}

# output_fn(source (N, 3, H, W), target emotion index, reference clip or None) -> output (N, 3, H, W)
OutputFn = Callable[[torch.Tensor, int, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class EvalOptions:
    split: str = "test"                          # "test" (held-out identities) | "val" | "train"
    source_emotion: str = "neutral"
    target_emotions: tuple[str, ...] = tuple(e for e in EMOTIONS if e != "neutral")
    condition: str = "label"                     # "label" | "reference" (a clip of another identity)
    max_clips: int | None = None                 # per actor, for quick checks
    lpips: bool = True


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def score_clip(nets: dict, source: torch.Tensor, output: torch.Tensor, target: torch.Tensor,
               target_emotion: int) -> tuple[dict, dict]:
    """Scores of one output clip; also returns its embeddings (for FAD).

    source, output, target: (N, 3, H, W) in [0, 1]; target is the ground truth.
    """
    if output.shape != target.shape or source.shape != target.shape:
        raise StcclError(f"clip shapes differ: source {tuple(source.shape)}, output {tuple(output.shape)}, "
                         f"target {tuple(target.shape)}")
    box = nets["mouth"].box
    m_out, m_tgt = crop_mouth(output, box), crop_mouth(target, box)  # (N, 3, h, w)
    row = {"mouth_l1": float((m_out - m_tgt).abs().mean())}
    row["mouth_ssim"] = ssim_psnr(_to_hwc(m_out), _to_hwc(m_tgt))[0]
    p_out, p_tgt = batched(nets["mouth"], output), batched(nets["mouth"], target)  # (N, P)
    row["mouth_param_err"] = float((p_out - p_tgt).abs().mean())
    pred = batched(nets["emotion_eval"], output).argmax(1)  # (N,)
    row["emotion_acc"] = float((pred == target_emotion).float().mean())
    e_src, e_out, e_tgt = (batched(nets["identity_eval"], v) for v in (source, output, target))  # (N, D)
    row["csim"] = csim(e_src.numpy(), e_out.numpy())
    row["ssim"], row["psnr"] = ssim_psnr(_to_hwc(output), _to_hwc(target))
    return row, {"output": e_out.numpy(), "target": e_tgt.numpy()}


def load_eval_nets(data_root: str | Path, aux_cfg: AuxConfig = AuxConfig(), device="cpu",
                   progress: bool = True) -> dict:
    """The evaluation aux nets (trained on train identities and cached on first use)."""
    return load_aux_nets(data_root, EVAL_NETS, aux_cfg, device, progress)


def _eval_actors(root: str | Path, split: str, test_actors, val_actors) -> list[str]:
    layout = MeadLayout(root)
    tests = resolve_test_actors(root, test_actors)
    if split == "test":
        return split_actors(layout.actors(), tests, "test", where=str(root))
    if split == "val":
        if not val_actors:
            raise StcclError("--split val needs val_actors in the run's config (train identities held out for tuning)")
        return sorted(val_actors)
    if split == "train":
        return [a for a in split_actors(layout.actors(), tests, "train", where=str(root)) if a not in set(val_actors)]
    raise StcclError(f"unknown split {split!r}; expected test, val or train")


def evaluate_outputs(output_fn: OutputFn, data_root: str | Path, size: int, opts: EvalOptions = EvalOptions(),
                     aux_cfg: AuxConfig = AuxConfig(), test_actors=None, val_actors: Sequence[str] = (),
                     progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """Score `output_fn` on every (actor, source clip, target emotion) of the split."""
    root = Path(data_root)
    layout = MeadLayout(root)
    actors = _eval_actors(root, opts.split, test_actors, val_actors)
    check_renderer_matches(root, actors[0], layout.clips(actors[0], opts.source_emotion)[0], opts.source_emotion)
    nets = load_eval_nets(root, aux_cfg, progress=progress)
    jobs = []
    for actor in actors:
        clips = layout.clips(actor, opts.source_emotion)
        clips = clips[:opts.max_clips] if opts.max_clips else clips
        jobs += [(actor, clip, emo) for clip in clips for emo in opts.target_emotions if emo != opts.source_emotion]
    if not jobs:
        raise StcclError(f"{root}: nothing to evaluate for split {opts.split!r} (actors {actors}, source emotion "
                         f"{opts.source_emotion}, targets {list(opts.target_emotions)})")
    rng = np.random.default_rng(0)
    rows, emb_out, emb_tgt, lp_pairs = [], [], [], []
    t0 = time.perf_counter()
    for actor, clip, emo in tqdm(jobs, desc=f"evaluate ({opts.split})", disable=not progress):
        n = layout.num_frames(actor, opts.source_emotion, clip)
        source = layout.load_frames(actor, opts.source_emotion, clip, np.arange(n), size)  # (N, 3, H, W)
        target = frames_to_tensor(render_target(root, actor, clip, emo, source_emotion=opts.source_emotion), size)
        reference = None
        if opts.condition == "reference":
            reference = _reference_clip(layout, actors, actor, emo, size, rng)
        output = output_fn(source, EMOTIONS.index(emo), reference).clamp(0, 1)
        row, emb = score_clip(nets, source, output, target, EMOTIONS.index(emo))
        rows.append({"actor": actor, "clip": clip, "source_emotion": opts.source_emotion, "target_emotion": emo,
                     "frames": n, **row})
        emb_out.append(emb["output"])
        emb_tgt.append(emb["target"])
        if opts.lpips:
            lp_pairs.append((output, target))
    df = pd.DataFrame(rows)
    summary = {k: float(df[k].mean()) for k in SUMMARY_METRICS if k in df}
    summary["fad"] = frechet_distance(np.concatenate(emb_out), np.concatenate(emb_tgt))
    if opts.lpips:
        lp = lpips_distance(np.concatenate([_to_hwc(o) for o, _ in lp_pairs]),
                            np.concatenate([_to_hwc(t) for _, t in lp_pairs]))
        summary["lpips"] = lp
    else:
        summary["lpips"] = NOT_COMPUTED
    per_emotion = {e: {k: float(g[k].mean()) for k in SUMMARY_METRICS if k in g}
                   for e, g in df.groupby("target_emotion")}
    result = {"summary": summary, "per_target_emotion": per_emotion, "clips": len(df),
              "frames": int(df["frames"].sum()), "actors": actors, "split": opts.split,
              "source_emotion": opts.source_emotion, "condition": opts.condition,
              "aux_scores": aux_scores(root, EVAL_NETS, aux_cfg), "seconds": round(time.perf_counter() - t0, 2)}
    return result, df


RENDER_TOLERANCE = 0.045  # mean |frame - clean re-render| in [0, 1]; noise + JPEG alone give about 0.02


def check_renderer_matches(root: str | Path, actor: str, clip: int, emotion: str) -> float:
    """Re-render one data-set clip with `render_target` and compare it with the frames on disk.

    The ground truth is only valid when the current renderer draws the same
    faces as the one that made the data set; a renderer change after
    rendering silently gives another face (measured: 0.074 mean abs
    difference vs about 0.02 from noise and JPEG alone).
    """
    layout = MeadLayout(root)
    n = layout.num_frames(actor, emotion, clip)
    disk = layout.load_frames_uint8(actor, emotion, clip, np.arange(n)).astype(np.float32)
    again = render_target(root, actor, clip, emotion, source_emotion=emotion).astype(np.float32)
    diff = float(np.abs(disk - again).mean() / 255.0)
    if diff > RENDER_TOLERANCE:
        raise StcclError(f"{root}: render_target does not reproduce the data set's own frames ({actor}/{emotion}/"
                         f"{int(clip):03d}: mean abs difference {diff:.3f} > {RENDER_TOLERANCE}); the data was "
                         f"rendered by another version of the renderer. Re-render it with `stccl synth --out DIR` "
                         f"into a new folder and retrain on it")
    return diff


def _reference_clip(layout: MeadLayout, actors: list[str], actor: str, emotion: str, size: int,
                    rng: np.random.Generator) -> torch.Tensor:
    """A clip of another identity of the split showing `emotion` (B=1, T, 3, H, W)."""
    others = [a for a in actors if a != actor and emotion in layout.emotions(a)] or [actor]
    who = others[int(rng.integers(len(others)))]
    clip = layout.clips(who, emotion)[0]
    n = layout.num_frames(who, emotion, clip)
    return layout.load_frames(who, emotion, clip, np.arange(min(n, 8)), size)[None]


def generator_output_fn(G: torch.nn.Module, device="cpu") -> OutputFn:
    @torch.no_grad()
    def fn(source: torch.Tensor, emotion: int, reference: torch.Tensor | None) -> torch.Tensor:
        clip = source[None].to(device)  # (1, N, 3, H, W)
        if reference is None:
            out = G(clip, emotion=torch.tensor([emotion], device=device))
        else:
            out = G(clip, reference=reference.to(device))
        return out[0].cpu()
    return fn


BASELINES = ("copy", "shuffled", "landmark_shift")


def baseline_output_fn(kind: str, data_root: str | Path, size: int, aux_cfg: AuxConfig = AuxConfig()) -> OutputFn:
    """Reference 'methods' that bracket a generator: 'copy' (output = input), 'shuffled' (frames permuted) and
    'landmark_shift' (the NED-like renderer driven by the statistical manipulator
    `stccl.spfem.expression.emotion_mean_shifts` of the train identities: an edit without learning)."""
    if kind == "landmark_shift":
        net = load_aux_nets(data_root, ["landmarks"], aux_cfg, progress=False)["landmarks"]
        table = load_frame_table(data_root, aux_cfg)
        with torch.no_grad():
            lm = batched(lambda i: net(table.batch(i)), torch.arange(len(table.frames)))
        shifts = emotion_mean_shifts(lm, table.actor_idx, table.emotion_idx, len(EMOTIONS))
        sigma = GeneratorConfig().rbf_sigma

        @torch.no_grad()
        def shifted(source, emotion, reference):
            points = batched(net, source)
            return rbf_warp(source, points, points + shifts[emotion], sigma)
        return shifted
    if kind == "copy":
        return lambda source, emotion, reference: source.clone()
    if kind == "shuffled":
        gen = torch.Generator().manual_seed(0)
        return lambda source, emotion, reference: source[torch.randperm(len(source), generator=gen)]
    raise StcclError(f"unknown --baseline {kind!r}; expected one of {', '.join(BASELINES)}")


def evaluate_run(run_dir: str | Path, opts: EvalOptions = EvalOptions(), device: str = "cpu",
                 progress: bool = True, out_name: str = "eval") -> dict:
    """Evaluate a `stccl train-spfem` run; writes {out_name}.json and {out_name}_clips.csv in the run folder."""
    run_dir = Path(run_dir)
    G, cfg = load_generator(run_dir, device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    result, df = evaluate_outputs(generator_output_fn(G, device), cfg.data_root, cfg.size, opts, cfg.aux,
                                  cfg.test_actors, cfg.val_actors, progress)
    result = {"run": str(run_dir), "name": cfg.name, "seed": cfg.seed, "steps": cfg.steps,
              "stccl": cfg.stccl, "stccl_variant": cfg.stccl_variant if cfg.stccl else None, **result}
    atomic_write_csv(run_dir / f"{out_name}_clips.csv", df)
    atomic_write_json(run_dir / f"{out_name}.json", result)
    return result


def eval_name(opts: EvalOptions) -> str:
    """File stem of an evaluation: `eval` for the held-out test split by label, else eval_<split>_<condition>."""
    return "eval" if opts.split == "test" and opts.condition == "label" else f"eval_{opts.split}_{opts.condition}"


def like_run(run_dir: str | Path, data_root: str | Path | None = None) -> tuple[str, int, AuxConfig]:
    """(data root, size, aux config) of an existing run, so a baseline is scored by the same nets."""
    _, cfg = load_generator(run_dir)
    return str(data_root or cfg.data_root), cfg.size, cfg.aux


def evaluate_baseline(kind: str, data_root: str | Path, size: int, aux_cfg: AuxConfig, out: str | Path,
                      opts: EvalOptions = EvalOptions(), out_name: str = "eval", progress: bool = True) -> dict:
    """Score a reference output (`copy` the input or `shuffled` frames); writes {out_name}.json and _clips.csv."""
    result, df = evaluate_outputs(baseline_output_fn(kind, data_root, size, aux_cfg), data_root, size, opts, aux_cfg,
                                  progress=progress)
    result = {"name": kind, "seed": None, **result}
    out = Path(out)
    atomic_write_csv(out / f"{out_name}_clips.csv", df)
    atomic_write_json(out / f"{out_name}.json", result)
    return result


# ---------------------------------------------------------------------------
# Comparison of runs
# ---------------------------------------------------------------------------

def compare_runs(run_dirs: Sequence[str | Path], eval_name: str = "eval") -> pd.DataFrame:
    """One row per variant (config `name`): mean and std over its runs (seeds) of every summary metric."""
    records = []
    for d in run_dirs:
        path = Path(d) / f"{eval_name}.json"
        res = read_json(path, f"evaluation of {d} (run `stccl evaluate --run {d}` first)")
        rec = {"variant": res.get("name", Path(d).name), "run": str(d), "seed": res.get("seed")}
        rec.update({k: res["summary"].get(k) for k in SUMMARY_METRICS})
        records.append(rec)
    df = pd.DataFrame(records)
    metrics = [k for k in SUMMARY_METRICS if df[k].notna().any()]
    order = list(dict.fromkeys(df["variant"]))
    grouped = df.groupby("variant", sort=False)
    table = pd.DataFrame({"variant": order, "runs": [int(grouped.size()[v]) for v in order]})
    for k in metrics:
        vals = df[k].astype(float)
        table[f"{k}_mean"] = [float(vals[df["variant"] == v].mean()) for v in order]
        table[f"{k}_std"] = [float(vals[df["variant"] == v].std(ddof=1)) if (df["variant"] == v).sum() > 1
                             else float("nan") for v in order]
    base = table[table["variant"] == "baseline"]
    if len(base):
        for k in ("mouth_l1", "mouth_param_err"):
            if f"{k}_mean" in table:
                b = float(base[f"{k}_mean"].iloc[0])
                table[f"{k}_change_vs_baseline_pct"] = 100.0 * (table[f"{k}_mean"] - b) / b
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """Markdown table 'mean ± std' per metric (no tabulate dependency)."""
    metrics = [c[:-5] for c in table.columns if c.endswith("_mean")]
    head = ["variant", "runs"] + metrics + [c for c in table.columns if c.endswith("_pct")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [str(r["variant"]), str(int(r["runs"]))]
        for m in metrics:
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            cells.append(f"{mean:.4f}" + ("" if pd.isna(std) else f" ± {std:.4f}"))
        cells += [f"{r[c]:+.1f}%" for c in table.columns if c.endswith("_pct")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _opts_from_args(args) -> EvalOptions:
    targets = tuple(t for t in args.targets.split(",") if t) if args.targets else EvalOptions.target_emotions
    for t in targets:
        if t not in EMOTIONS:
            raise StcclError(f"--targets: unknown emotion {t!r}; expected names from {list(EMOTIONS)}")
    return EvalOptions(split=args.split, source_emotion=args.source_emotion, target_emotions=targets,
                       condition=args.condition, max_clips=args.max_clips, lpips=not args.no_lpips)


def _cmd_evaluate(args) -> int:
    opts = _opts_from_args(args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    name = args.name or eval_name(opts)
    if args.baseline:
        data, size, aux_cfg = args.data, args.size, AuxConfig()
        if args.like:  # same data, resolution and aux nets as an existing run
            data, size, aux_cfg = like_run(args.like, data)
        if args.aux_set:
            aux_cfg = from_dict(AuxConfig, {**to_dict(aux_cfg), **parse_sets(args.aux_set)}, where="--aux-set")
        if not data or not args.out:
            raise StcclError("--baseline needs --data DATA_ROOT (or --like RUN_DIR) and --out FOLDER")
        result = evaluate_baseline(args.baseline, data, size, aux_cfg, args.out, opts, name,
                                   progress=not args.no_progress)
    else:
        if not args.run:
            raise StcclError("give --run RUN_DIR (a folder written by `stccl train-spfem`) or --baseline copy")
        result = evaluate_run(args.run, opts, progress=not args.no_progress, out_name=name)
    print(to_json({"summary": result["summary"], "clips": result["clips"], "seconds": result["seconds"]}))
    return 0


def _cmd_compare(args) -> int:
    table = compare_runs(args.runs, args.eval_name)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        out = Path(args.out)
        atomic_write_csv(out.with_suffix(".csv"), table)
        atomic_write_text(out.with_suffix(".md"), to_markdown(table))
        print(f"written {out.with_suffix('.csv')} and {out.with_suffix('.md')}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("evaluate", help="score an SPFEM run against the synthetic ground truth",
                       description="Score a train-spfem run on held-out identities against render_target; "
                                   "writes eval.json and eval_clips.csv into the run folder.")
    p.add_argument("--run", default=None, help="run folder of `stccl train-spfem`")
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--source-emotion", dest="source_emotion", default="neutral")
    p.add_argument("--targets", default=None, help="comma-separated target emotions (default: all but the source)")
    p.add_argument("--condition", default="label", choices=["label", "reference"],
                   help="give the target emotion as a label or as a reference clip of another identity")
    p.add_argument("--max-clips", dest="max_clips", type=int, default=None, help="source clips per actor (quick checks)")
    p.add_argument("--baseline", default=None, choices=list(BASELINES),
                   help="score a reference method instead of a run (needs --data, --out, --size)")
    p.add_argument("--data", default=None, help="data root for --baseline")
    p.add_argument("--size", type=int, default=64, help="resolution for --baseline")
    p.add_argument("--out", default=None, help="output folder for --baseline")
    p.add_argument("--like", default=None, help="for --baseline: take data root, size and aux nets from this run")
    p.add_argument("--aux-set", dest="aux_set", action="append", default=[], metavar="KEY=VALUE",
                   help="for --baseline: override an aux-net option (e.g. steps=300)")
    p.add_argument("--name", default=None, help="output file stem (default eval, or eval_<split>_<condition>)")
    p.add_argument("--no-lpips", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: the run's setting / torch default)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    c = sub.add_parser("compare", help="table of evaluated runs: mean and std per variant over seeds",
                       description="Group evaluated runs by their config name (baseline, stccl_vd, ...) and print "
                                   "mean and std of every metric; --out saves CSV and Markdown.")
    c.add_argument("runs", nargs="+", help="run folders holding eval.json")
    c.add_argument("--out", default=None, help="path stem for the CSV and Markdown, e.g. reports/spfem_comparison")
    c.add_argument("--eval-name", dest="eval_name", default="eval", help="which evaluation file (default eval.json)")
    c.set_defaults(func=_cmd_compare)
