"""How the learned gap depends on how much speech the two renditions share (issue 13, item 3).

For each `coherence` level (the synthetic config's share of speech motion common to every rendition
of a sentence), render a small data set of the chosen preset, measure the premise before learning
(`stccl diagnose --untrained`), train the metric for a fixed number of steps, and measure again on
the held-out identities. Writes table.csv / table.md / coherence_sweep.png into --out; a level whose
results exist is not recomputed (delete its folder to redo it).

    python experiments/coherence_sweep.py --out reports/coherence --steps 300

About 4-5 min per level on one core at the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from stccl.data.synth import SynthConfig, config_of, make_config, synthesize
from stccl.pipeline.figures import markdown

MEASURE = "per_query"
KEYS = [(v, k) for v in ("vd", "cm") for k in ("spatial", "temporal")]


def _run_json(cmd: list[str], log: Path) -> dict:
    """Run a stccl command; its last stdout line is JSON. The full output goes to `log`."""
    proc = subprocess.run([sys.executable, "-m", "stccl", *cmd], capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _same_render(meta_path: Path, cfg: SynthConfig) -> bool:
    """Whether a cached level's data was rendered with `cfg` (the preset's name and worker count aside)."""
    if not meta_path.is_file():
        return False
    old = config_of(json.loads(meta_path.read_text()))
    return dataclasses.replace(old, preset=cfg.preset, workers=cfg.workers) == cfg


def one_level(c: float, args, out: Path) -> list[dict]:
    level = out / f"c{c:.2f}"
    done = level / "rows.json"
    data = level / "data"
    cfg = make_config(args.preset, size=64, n_identities=args.identities, n_test=args.test,
                      n_sentences=args.sentences, coherence=c, workers=1)
    if done.is_file():
        if not _same_render(data / "meta.json", cfg):
            raise SystemExit(f"{level}: cached results were rendered with other settings than preset "
                             f"{args.preset!r} and these options (or {data / 'meta.json'} is gone); "
                             f"delete {level} to redo this level")
        return json.loads(done.read_text())
    level.mkdir(parents=True, exist_ok=True)
    synthesize(data, cfg, seed=0, force=True, progress=False)
    run = level / "metric"
    subprocess.run([sys.executable, "-m", "stccl", "train-metric", "--config", args.config, "--out", str(run),
                    "--set", f"data_root={data}", "--set", "max_minutes=0", "--set", f"max_steps={args.steps}",
                    "--set", "threads=1", "--no-progress"], check=True, capture_output=True)
    common = ["diagnose", "--checkpoint", str(run / "ckpt_last.pt"), "--data", str(data), "--split", "test",
              "--batches", str(args.batches), "--no-progress"]
    rows = []
    for when, extra in (("before", ["--untrained"]), ("after", [])):
        d = _run_json(common + extra, level / f"diagnose_{when}.log")
        for v, k in KEYS:
            r = d[MEASURE][v][k]
            rows.append({"coherence": c, "when": when, "variant": v, "kind": k, "steps": d["step"],
                         **{m: r[m] for m in ("pos", "neg", "pos_mismatched", "gap", "gap_sd")}})
    done.write_text(json.dumps(rows))
    return rows


def figure(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharey=True)
    for ax, (v, k) in zip(axes, KEYS):
        for when, style in (("before", "o--"), ("after", "o-")):
            sub = df[(df.variant == v) & (df.kind == k) & (df.when == when)].sort_values("coherence")
            ax.errorbar(sub.coherence, sub.gap, yerr=2 * sub.gap_sd, fmt=style, capsize=3,
                        label=f"{when} learning")
        ax.axhline(0.3, color="grey", lw=0.8, ls=":", label="issue target (gap 0.3)")
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_title(f"{v.upper()} {k}")
        ax.set_xlabel("coherence (shared speech)")
    axes[0].set_ylabel("gap = matched - mismatched\n(held-out, per query, ±2 SD over seeds)")
    axes[-1].legend(fontsize=8)
    steps = int(df[df.when == "after"].steps.max())
    fig.suptitle(f"Learned gap vs coherence ({steps} metric steps per level)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="reports/coherence")
    p.add_argument("--levels", default="0,0.25,0.5,0.75,1")
    p.add_argument("--preset", default="default")
    p.add_argument("--config", default="params/metric_default.yaml")
    p.add_argument("--identities", type=int, default=8)
    p.add_argument("--test", type=int, default=2)
    p.add_argument("--sentences", type=int, default=4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batches", type=int, default=10)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in (float(x) for x in args.levels.split(",")):
        rows += one_level(c, args, out)
        print(f"coherence {c:.2f} done", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(out / "table.csv", index=False)
    wide = df.pivot_table(index=["coherence", "when"], columns=["variant", "kind"], values="gap").round(3)
    wide.columns = [f"{v.upper()} {k} gap" for v, k in wide.columns]
    (out / "table.md").write_text(
        f"Held-out gap (matched minus mismatched, {MEASURE}) per coherence level, before and after "
        f"{int(df[df.when == 'after'].steps.max())} metric steps ({args.config}, preset {args.preset} at 64 px, "
        f"{args.identities} identities, {args.test} held out, {args.sentences} sentences; {args.batches} batches x 3 "
        f"seeds per diagnosis). Command: `python experiments/coherence_sweep.py {' '.join(sys.argv[1:])}`\n\n" + markdown(wide.reset_index(), '.3f') + "\n")
    figure(df, out / "coherence_sweep.png")
    print((out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
