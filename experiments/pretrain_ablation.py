"""Scratch vs pretrained backbone for the metric (issue 13): same data, same metric config, same steps.

    python experiments/pretrain_ablation.py --data data/synth_control --minutes-pretrain 3 --minutes-metric 4 \
        --out reports/pretrain_ablation [--metric-config params/metric_control.yaml]

1. `stccl pretrain-backbone` on the training identities of --data (arch and frame size of the metric
   config; --minutes-pretrain of wall time);
2. `stccl train-metric` from scratch for --minutes-metric, then from the pretrained backbone for exactly
   the steps the scratch run reached (the same number of updates; both wall times are recorded);
3. `stccl diagnose --split test` on both trained runs and on their initial weights (--untrained);
4. OUT/table.csv, OUT/table.md, OUT/gaps.png (pos and gap per measure, variant and kind, mean ± SD over
   the diagnose seeds), OUT/summary.json and the four diagnose JSON lines.

Run folders (checkpoints) go to --runs (default reports/runs/pretrain_ablation, not committed). Every number
in the outputs is read from the commands' own JSON output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stccl.core.train_metric import load_metric_config  # noqa: E402
from stccl.io import atomic_write_json, atomic_write_text  # noqa: E402

NAMES = ("pos", "neg", "pos_mismatched", "gap")
ARMS = (("scratch", "untrained"), ("scratch", "trained"), ("pretrained", "untrained"), ("pretrained", "trained"))


def stccl(*args: str) -> dict:
    """Run `python -m stccl ARGS`; return its last stdout line as JSON (stderr passes through)."""
    cmd = [sys.executable, "-m", "stccl", *args]
    print("$ stccl " + " ".join(args), file=sys.stderr, flush=True)
    # the subprocess imports the same stccl as this script (a worktree's, not an installed copy)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"stccl {args[0]} failed with status {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows_of(diag: dict, init: str, weights: str) -> list[dict]:
    rows = []
    for measure in ("per_query", "official"):
        for variant in ("vd", "cm"):
            for kind in ("spatial", "temporal"):
                e = diag[measure][variant][kind]
                rows.append({"init": init, "weights": weights, "step": diag["step"], "measure": measure,
                             "variant": variant, "kind": kind,
                             **{k: e[k] for n in NAMES for k in (n, n + "_sd")}})
    return rows


def markdown(rows: list[dict], facts: dict) -> str:
    pre, sc, pt = facts["pretrain"], facts["metric_scratch"], facts["metric_pretrained"]
    lines = [
        "# Pretrained backbone vs scratch (issue 13)", "",
        f"Data `{facts['data']}`, metric config `{facts['metric_config']}` (net.arch {pre['arch']}, "
        f"frames {pre['size'][0]}x{pre['size'][1]}), held-out actors {', '.join(pre['test_actors'])}.", "",
        f"- pretrain-backbone: {pre['step']} steps in {pre['minutes']} min on identities "
        f"{', '.join(pre['identities'])}; train accuracy {pre['train_acc']:.3f}, held-out-clip accuracy "
        f"{pre['heldout_acc']:.3f} (chance {pre['chance']:.3f})",
        f"- metric from scratch: {sc['step']} steps in {sc['minutes']} min; from pretrained: {pt['step']} steps "
        f"in {pt['minutes']} min",
        f"- `stccl diagnose --split test`: mean ± SD over seeds {facts['seeds']}, {facts['batches']} batches "
        f"each; `untrained` = the run's ckpt_init.pt (for `pretrained`: the pretrained backbone with fresh heads)",
        f"- command: `{facts['command']}`", "",
        "| measure | variant | kind | init | weights | pos | neg | pos_mismatched | gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = {arm: i for i, arm in enumerate(ARMS)}
    for r in sorted(rows, key=lambda r: (r["measure"] != "per_query", r["variant"] != "vd", r["kind"],
                                         order[(r["init"], r["weights"])])):
        cells = [f"{r[n]:.3f} ± {r[n + '_sd']:.3f}" for n in NAMES]
        lines.append(f"| {r['measure']} | {r['variant'].upper()} | {r['kind']} | {r['init']} | {r['weights']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [(v, k) for v in ("vd", "cm") for k in ("spatial", "temporal")]
    colours = {("scratch", "untrained"): "#bbbbbb", ("scratch", "trained"): "#555555",
               ("pretrained", "untrained"): "#9ecae1", ("pretrained", "trained"): "#2171b5"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True)
    x = np.arange(len(groups))
    width = 0.2
    for col, measure in enumerate(("per_query", "official")):
        for row, name in enumerate(("pos", "gap")):
            ax = axes[row, col]
            for i, arm in enumerate(ARMS):
                sel = {(r["variant"], r["kind"]): r for r in rows
                       if r["measure"] == measure and (r["init"], r["weights"]) == arm}
                vals = [sel[g][name] for g in groups]
                sds = [sel[g][name + "_sd"] for g in groups]
                ax.bar(x + (i - 1.5) * width, vals, width, yerr=sds, color=colours[arm], label=" ".join(arm))
            ax.axhline(0, color="black", lw=0.6)
            ax.set_title(f"{measure}: {'matched similarity (pos)' if name == 'pos' else 'gap = pos - pos_mismatched'}",
                         fontsize=10)
            ax.set_xticks(x, [f"{v.upper()} {k}" for v, k in groups])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="data root in the MEAD layout (e.g. made by `stccl synth`)")
    p.add_argument("--minutes-pretrain", type=float, default=3.0)
    p.add_argument("--minutes-metric", type=float, default=4.0, help="wall-time cap of the scratch metric run")
    p.add_argument("--out", default="reports/pretrain_ablation", help="tables, figure and diagnose JSON")
    p.add_argument("--metric-config", default="params/metric_control.yaml")
    p.add_argument("--pretrain-config", default="params/pretrain_default.yaml")
    p.add_argument("--runs", default="reports/runs/pretrain_ablation", help="run folders (checkpoints)")
    p.add_argument("--batches", type=int, default=20, help="diagnose batches per seed")
    p.add_argument("--seeds", default="0,1,2", help="diagnose seeds")
    p.add_argument("--overwrite", action="store_true", help="delete existing run folders under --runs first")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild table and figure from OUT/summary.json and OUT/diagnose_*.json (no training)")
    args = p.parse_args(argv)

    out, runs = Path(args.out), Path(args.runs)
    if args.report_only:
        facts = json.loads((out / "summary.json").read_text())
        rows = [r for init, weights in ARMS for r in rows_of(
            json.loads((out / f"diagnose_{init}_{weights}.json").read_text()), init, weights)]
        return report(rows, facts, out)
    if runs.exists():
        if not args.overwrite:
            sys.exit(f"{runs} exists; pass --overwrite to delete it or choose another --runs")
        shutil.rmtree(runs)
    mcfg = load_metric_config(args.metric_config)
    size = "null" if mcfg.size is None else str(mcfg.size)
    common = ["--no-progress", "--set", f"data_root={args.data}"]
    pre = stccl("pretrain-backbone", "--config", args.pretrain_config, "--out", str(runs / "pretrain"), *common,
                "--set", f"size={size}", "--set", f"arch={mcfg.net.arch}",
                "--set", f"max_minutes={args.minutes_pretrain}", "--set", "max_steps=0", "--set", "epochs=1000")
    print(f"pretrain: identities {pre['identities']} (held out {pre['test_actors']}), train accuracy "
          f"{pre['train_acc']:.3f}, held-out-clip accuracy {pre['heldout_acc']:.3f}, chance {pre['chance']:.3f}, "
          f"{pre['step']} steps", file=sys.stderr, flush=True)
    scratch = stccl("train-metric", "--config", args.metric_config, "--out", str(runs / "metric_scratch"), *common,
                    "--set", "net.init=scratch", "--set", f"max_minutes={args.minutes_metric}")
    pretrained = stccl("train-metric", "--config", args.metric_config, "--out", str(runs / "metric_pretrained"),
                       *common, "--set", f"net.init=pretrained:{runs / 'pretrain' / 'ckpt_last.pt'}",
                       "--set", "max_minutes=0", "--max-steps", str(scratch["step"]))
    command = "python " + " ".join([Path(__file__).resolve().relative_to(ROOT).as_posix(), *(argv or sys.argv[1:])])
    facts = {"data": args.data, "metric_config": args.metric_config, "pretrain_config": args.pretrain_config,
             "seeds": args.seeds, "batches": args.batches, "command": command,
             "pretrain": pre, "metric_scratch": scratch, "metric_pretrained": pretrained}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", facts)
    rows = []
    for init, weights in ARMS:
        run = runs / f"metric_{init}"
        diag = stccl("diagnose", "--checkpoint", str(run / "ckpt_last.pt"), "--data", args.data, "--split", "test",
                     "--batches", str(args.batches), "--seeds", args.seeds, "--no-progress",
                     *(["--untrained"] if weights == "untrained" else []))
        atomic_write_text(out / f"diagnose_{init}_{weights}.json", json.dumps(diag) + "\n")
        rows += rows_of(diag, init, weights)
    return report(rows, facts, out)


def report(rows: list[dict], facts: dict, out: Path) -> int:
    import pandas as pd

    pd.DataFrame(rows).to_csv(out / "table.csv", index=False, float_format="%.6f")
    md = markdown(rows, facts)
    atomic_write_text(out / "table.md", md)
    figure(rows, out / "gaps.png", f"{facts['data']}: scratch vs pretrained backbone "
                                   f"({facts['metric_scratch']['step']} metric steps each; held out "
                                   f"{', '.join(facts['pretrain']['test_actors'])})")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
