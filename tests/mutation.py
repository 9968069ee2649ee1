"""Mutation check: put named bugs into a temporary copy of the kit, one at a time, and see whether the tests notice.

    python tests/mutation.py                 # every bug (about 15 minutes on 2 cores)
    python tests/mutation.py --only emotion_acc_inverted,ddp_missing
    python tests/mutation.py --list
    python tests/mutation.py --clean         # first run each bug's tests on the unmutated copy (must pass)
    make mutation                            # the same as the first line

Each bug is a literal text replacement in one file; its pattern must occur exactly once (else the script
stops: the code moved and the bug list needs updating). The copy holds the tracked and untracked
(not ignored) files of this checkout; its tests run with PYTHONPATH pointing at the copy, so the mutated
`stccl` is the one imported, also by subprocesses and torchrun workers. A bug is *caught* when its tests
fail. Prints a table and exits 1 when a bug survived. Not part of `make test` (this file is not named
test_*.py, so pytest does not collect it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bug:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]      # pytest arguments (files, -k expressions)
    why: str


BUGS = (
    # ---- evaluation
    Bug("emotion_acc_inverted", "stccl/spfem/evaluate.py",
        "float((pred == target_emotion).float().mean())", "float((pred != target_emotion).float().mean())",
        ("tests/test_evaluate.py", "-k", "emotion_accuracy"), "score_clip counts wrong predictions"),
    Bug("psnr_wrong_range", "stccl/spfem/scores.py",
        "peak_signal_noise_ratio(x, y, data_range=1.0)", "peak_signal_noise_ratio(x, y, data_range=255.0)",
        ("tests/test_known_answers.py",), "PSNR for 8-bit images on [0, 1] data"),
    Bug("ssim_of_itself", "stccl/spfem/scores.py",
        "structural_similarity(x, y, channel_axis", "structural_similarity(x, x, channel_axis",
        ("tests/test_known_answers.py",), "SSIM compares the output with itself (always 1)"),
    Bug("lpips_never_computed", "stccl/spfem/scores.py",
        "    if weights is None:\n        return NOT_COMPUTED", "    if True:\n        return NOT_COMPUTED",
        ("tests/test_known_answers.py",), "LPIPS reported 'not computed' even with weights"),
    Bug("lpips_linear_ignored", "stccl/spfem/scores.py",
        "d = (d * self.lins[l]).sum(1) if self.lins is not None else d.sum(1)", "d = d.sum(1)",
        ("tests/test_known_answers.py",), "the LPIPS linear layers are loaded but not applied"),
    Bug("lpips_no_input_scaling", "stccl/spfem/scores.py",
        "h = (x - self.shift) / self.scale", "h = x",
        ("tests/test_known_answers.py",), "LPIPS skips its input scaling layer"),
    # ---- ablations
    Bug("ablation_metric_overrides_dropped", "stccl/pipeline/ablation.py",
        "run=metric_dir, extra=dict(run.metric)", "run=metric_dir, extra={}",
        ("tests/test_ablation_configs.py",), "a grid point's metric settings never reach its metric run"),
    Bug("ablation_metric_runs_shared", "stccl/pipeline/ablation.py",
        "key = to_json(dict(sorted(overrides.items())))", "key = to_json({})",
        ("tests/test_ablation_configs.py",), "every grid point reuses one metric retrain"),
    Bug("ablation_variant_ignored", "stccl/pipeline/steps.py",
        'ov["stccl_variant"] = variant', 'ov["stccl_variant"] = "vd"',
        ("tests/test_ablation_configs.py",), "the CM grid point trains VD"),
    # ---- report
    Bug("pct_change_sign", "stccl/pipeline/report.py",
        "100.0 * (new - base) / abs(base)", "100.0 * (base - new) / abs(base)",
        ("tests/test_report_verdicts.py",), "percent change with the wrong sign"),
    Bug("direction_ignores_higher_better", "stccl/pipeline/report.py",
        "better = (new > base) == higher_better", "better = new > base",
        ("tests/test_report_verdicts.py",), "'better' for a rise of an error measure"),
    Bug("verdict_emotion_sign", "stccl/pipeline/report.py",
        "d_acc >= -TARGET_EMOTION_POINTS", "abs(d_acc) >= -TARGET_EMOTION_POINTS",
        ("tests/test_report_verdicts.py",), "an emotion-accuracy loss of any size passes the target"),
    Bug("verdict_neg_one_sided", "stccl/pipeline/report.py",
        "pos >= TARGET_POS and abs(neg) <= TARGET_NEG", "pos >= TARGET_POS and neg <= TARGET_NEG",
        ("tests/test_report_verdicts.py",), "a strongly negative 'negative' similarity passes the target"),
    Bug("smoke_prints_verdicts", "stccl/pipeline/report.py",
        "else is_pipeline_check(params.preset)", "else False",
        ("tests/test_report_tables.py", "-k", "build_report"), "a smoke run's report prints target verdicts"),
    Bug("rvp_smoke_verdicts", "stccl/pipeline/report.py",
        '    if check_only:\n        df["verdict"] = PIPELINE_CHECK_NOTE',
        '    if False:\n        df["verdict"] = PIPELINE_CHECK_NOTE',
        ("tests/test_report_tables.py", "-k", "pipeline_check"), "the smoke results table carries verdicts"),
    Bug("tie_not_a_tie", "stccl/pipeline/report.py",
        "if fmt(new, nd) == fmt(base, nd):", "if new == base:",
        ("tests/test_report_verdicts.py",), "0.3333 vs 0.3333 worded as a change"),
    Bug("signed_percent_lower", "stccl/pipeline/report.py",
        'mouth_words = change_words(row["mouth_l1_mean"], base["mouth_l1_mean"])',
        'mouth_words = f"{fmt(drop, 1)} % lower"',
        ("tests/test_report_verdicts.py",), "a mouth-error rise worded '-15.5 % lower'"),
    Bug("saturation_ignored", "stccl/pipeline/figures.py",
        "return bool(vals) and all(abs(v - bound) <= margin for v in vals)", "return False",
        ("tests/test_report_verdicts.py", "tests/test_report_tables.py"),
        "CSIM 0.99 / FAD 0.005 changes quoted as gains"),
    Bug("yardstick_ignored", "stccl/pipeline/report.py",
        "if abs(n - b) <= YARDSTICK_K * se:", "if False:",
        ("tests/test_report_verdicts.py",), "a difference inside 2 SE is called better or worse"),
    Bug("ablation_best_within_noise", "stccl/pipeline/report.py",
        "beyond = others[(others[m] - r).abs() > k * sd]", "beyond = others",
        ("tests/test_report_verdicts.py",), "a grid point inside the 2 SD band is named as an effect"),
    # ---- multi-process training
    Bug("ddp_missing", "stccl/core/train_metric.py",
        "        if info.enabled:\n            model = nn.parallel.DistributedDataParallel(",
        "        if False:\n            model = nn.parallel.DistributedDataParallel(",
        ("tests/test_multiprocess_equivalence.py", "-k", "metric_ranks or two_ranks"),
        "metric ranks train on their own gradients"),
    Bug("same_shard_on_every_rank", "stccl/distributed.py",
        "indices[info.rank:usable:info.world_size]", "indices[0:usable:info.world_size]",
        ("tests/test_multiprocess_equivalence.py", "-k", "two_ranks"),
        "every rank trains on rank 0's windows"),
    Bug("spfem_grads_summed", "stccl/spfem/train.py",
        "p.grad /= dist_info.world_size", "p.grad *= 1",
        ("tests/test_multiprocess_equivalence.py", "-k", "spfem"), "SPFEM gradients summed, not averaged"),
    Bug("spfem_discriminator_not_synced", "stccl/spfem/train.py",
        "_sync_grads(D, dist_info)", "pass",
        ("tests/test_multiprocess_equivalence.py", "-k", "spfem"), "the discriminators of the ranks drift apart"),
    Bug("spfem_no_initial_broadcast", "stccl/spfem/train.py",
        "broadcast(t, src=0)", "t.add_(0)",
        ("tests/test_multiprocess_equivalence.py", "-k", "spfem"), "each rank starts from its own random weights"),
    # ---- insightface loader
    Bug("iresnet_block_skips_bn1", "stccl/core/backbone.py",
        "self.conv1(self.bn1(x))", "self.conv1(x)",
        ("tests/test_insightface_reference.py",), "the block's first BatchNorm is skipped"),
    Bug("iresnet_no_input_normalisation", "stccl/core/backbone.py",
        "self.conv1((x - 0.5) / 0.5)", "self.conv1(x)",
        ("tests/test_insightface_reference.py",), "[0, 1] input fed to a network trained on [-1, 1]"),
    # ---- precise exception types
    Bug("generator_raises_valueerror", "stccl/spfem/generator.py",
        'raise StcclError("Generator: give exactly one', 'raise ValueError("Generator: give exactly one',
        ("tests/test_spfem.py", "-k", "condition_changes"), "a plain ValueError instead of the kit's one-line error"),
    # ---- diagnostic controls and correlation values (issue 12)
    Bug("optimiser_never_steps", "stccl/core/train_metric.py",
        "scaler.step(optimizer)", "None  # the optimiser step is skipped",
        ("tests/test_learning.py", "-k", "spatial_terms"), "metric training computes gradients but never updates"),
    Bug("temporal_groups_mix_clips", "stccl/core/correlation.py",
        "seq_a = fa[:, s.temporal].unflatten(0, (-1, T))",
        "seq_a = fa[:, s.temporal].unflatten(0, (T, -1)).transpose(0, 1)",
        ("tests/test_correlation_values.py",), "a temporal group takes every B-th frame, i.e. frames of several clips"),
    Bug("cm_rows_not_centred", "stccl/core/correlation.py",
        "F.normalize(rows - rows.mean(-1, keepdim=True), dim=-1)", "F.normalize(rows, dim=-1)",
        ("tests/test_correlation_values.py",), "CM correlation rows keep their common offset"),
    Bug("negative_can_be_itself", "stccl/core/diagnose.py",
        "torch.randint(1, Q, (G, Q)", "torch.randint(0, Q, (G, Q)",
        ("tests/test_correlation_values.py",), "the diagnostic's 'negative' key is sometimes the positive one"),
    Bug("keys_from_queries_clip", "stccl/core/correlation.py",
        "k, _ = fn(fb, head, s)", "k, _ = fn(fa, head, s)",
        ("tests/test_correlation_values.py",), "spatial keys computed from the query clip (pos is always 1)"),
    # ---- renderer calibration statistics (stccl/real/calibration.py)
    Bug("calib_amp_full_range", "stccl/real/calibration.py", "np.percentile(x, [5, 95])", "np.percentile(x, [0, 100])",
        ("tests/test_calibration.py",), "amplitude is the full range, not p95 - p5"),
    Bug("calib_vel_median", "stccl/real/calibration.py", "float(d.mean() * fps)", "float(np.median(d) * fps)",
        ("tests/test_calibration.py",), "velocity is the median step (0 for a slow whole-pixel drift)"),
    Bug("calib_vel_per_frame", "stccl/real/calibration.py", "float(d.mean() * fps)", "float(d.mean())",
        ("tests/test_calibration.py",), "velocity per frame, not per second"),
    Bug("calib_open_per_width", "stccl/real/calibration.py", '"mouth_open": dist(62, 66) / safe',
        '"mouth_open": dist(62, 66) / dist(54, 48)', ("tests/test_calibration.py",), "mouth opening over mouth width, not IOD"),
    Bug("calib_blink_no_hysteresis", "stccl/real/calibration.py", "        elif not armed and ear[t] > high * med:",
        "        elif not armed and ear[t] >= low * med:", ("tests/test_calibration.py",), "jitter around one threshold counts as several blinks"),
    Bug("calib_blink_median_not_pooled", "stccl/real/calibration.py",
        '    med["blink_rate"] = float(per_clip["blinks"].sum()) / secs if secs > 0 else float("nan")\n', "",
        ("tests/test_calibration.py",), "blink rate is the median of per-clip rates, not pooled"),
    Bug("calib_roll_sign_free", "stccl/real/calibration.py", '"head_roll": np.degrees(np.arctan2(u[:, 1], u[:, 0]))',
        '"head_roll": np.degrees(np.arctan2(np.abs(u[:, 1]), u[:, 0])) * 0.5', ("tests/test_calibration.py",), "roll in half degrees"),
)


def copy_tree(dest: Path) -> None:
    """The checkout's tracked and untracked, not ignored files."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def check(bug: Bug, tree: Path) -> None:
    n = (tree / bug.file).read_text().count(bug.old)
    if n != 1:
        raise SystemExit(f"mutation {bug.name}: pattern found {n} times in {bug.file} (expected once); "
                         f"update tests/mutation.py:\n{bug.old}")


def apply(bug: Bug, tree: Path) -> None:
    check(bug, tree)
    path = tree / bug.file
    path.write_text(path.read_text().replace(bug.old, bug.new))


def run_tests(tree: Path, args: tuple[str, ...], timeout: float) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args],
                              cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = proc.returncode, (proc.stdout + proc.stderr).strip().splitlines()[-1:]
    except subprocess.TimeoutExpired:
        rc, tail = -1, ["timeout"]
    return rc, time.perf_counter() - t0, tail[0] if tail else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="comma-separated bug names")
    p.add_argument("--list", action="store_true", help="list the bugs and exit")
    p.add_argument("--clean", action="store_true", help="also run each bug's tests unmutated (they must pass)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per pytest run")
    args = p.parse_args(argv)
    bugs = BUGS
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {b.name for b in BUGS})
        if unknown:
            p.error(f"unknown bug(s) {unknown}; see --list")
        bugs = tuple(b for b in BUGS if b.name in names)
    if args.list:
        for b in bugs:
            print(f"{b.name:34s} {b.file:28s} {b.why}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="stccl_mutation_") as tmp:
        clean = Path(tmp) / "clean"
        copy_tree(clean)
        for b in bugs:  # every pattern is checked before anything runs
            check(b, clean)
        for b in bugs:
            if args.clean:
                rc, secs, tail = run_tests(clean, b.tests, args.timeout)
                if rc != 0:
                    rows.append((b.name, "tests fail unmutated", secs, tail))
                    print(f"{b.name}: the unmutated tests fail ({tail})", flush=True)
                    continue
            tree = Path(tmp) / "mutant"
            shutil.copytree(clean, tree)
            apply(b, tree)
            rc, secs, tail = run_tests(tree, b.tests, args.timeout)
            shutil.rmtree(tree)
            verdict = "caught" if rc == 1 else ("SURVIVED" if rc == 0 else f"error (pytest exit {rc})")
            rows.append((b.name, verdict, secs, tail))
            print(f"{b.name}: {verdict} in {secs:.0f} s ({tail})", flush=True)
    print("\n| bug | file | tests | result | s |\n|---|---|---|---|---|")
    for (name, verdict, secs, _), b in zip(rows, bugs):
        print(f"| {name} | {b.file} | {' '.join(b.tests)} | {verdict} | {secs:.0f} |")
    survived = [r for r in rows if r[1] != "caught"]
    print(f"\n{len(rows) - len(survived)} of {len(rows)} caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
