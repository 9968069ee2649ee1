"""Batch reproduction: run the notebooks in order with papermill, from one params file.

    stccl reproduce --params params/smoke.yaml [--only 03,04] [--force] [--retrain] [--dry-run]

Each notebook `notebooks/NN_name.py` (jupytext py:percent) is converted in
memory and executed with kernel "python3", cwd = the project root, into
`reports/runs/<params stem>/NN_name.ipynb`. A notebook records the files it
made with `record_outputs`; the runner writes `.status/NN_name.json` after a
successful run. A step whose status is ok, whose executed notebook exists and
whose recorded outputs all exist is skipped unless --force. The first failing
notebook stops the run: its partially executed notebook is kept and the
failing cell is printed. Each executed notebook is also rendered to Markdown with its figures under
`reports/<stem>/notebooks/` (committed, readable on a code host).

The notebooks call the package through `stccl.pipeline.steps` (and
`stccl.pipeline.ablation`), and draw with `stccl.pipeline.figures`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import jupytext
import papermill as pm
from jupyter_client.kernelspec import NoSuchKernel
from papermill.exceptions import PapermillExecutionError

from stccl.checkpoints import RETRAIN_ENV
from stccl.io import StcclError, atomic_write_json, read_json
from stccl.pipeline.params import NOTEBOOKS, Paths, ReproduceParams, load_params

KERNEL = "python3"


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    notebook: str
    source: Path
    output: Path
    action: str       # "run" | "skip" | "force"


def _step_done(status: Path, nb_out: Path, outputs: Sequence[Path]) -> bool:
    if not status.is_file() or not nb_out.is_file():
        return False
    try:
        ok = read_json(status).get("status") == "ok"
    except StcclError:
        return False
    return ok and all(Path(p).exists() for p in outputs)


def _declared_outputs(paths: Paths, notebook: str) -> list[Path] | None:
    rec = paths.outputs_dir / f"{notebook}.json"
    if not rec.is_file():
        return None
    try:
        return [Path(p) for p in read_json(rec).get("files", {}).values()]
    except StcclError:
        return None


def parse_only(only: str | None, path: Path) -> list[str] | None:
    """'03,04' or '03_train_metric' -> notebook names; unknown -> StcclError."""
    if not only:
        return None
    names = []
    for item in (s.strip() for s in only.split(",") if s.strip()):
        hits = [n for n in NOTEBOOKS if n == item or n.split("_", 1)[0] == item]
        if not hits:
            raise StcclError(f"--only {only!r}: unknown notebook {item!r}; use numbers like 03 or names "
                             f"from {list(NOTEBOOKS)}")
        names.extend(hits)
    return names


def plan(params_path: str | os.PathLike, only: str | None = None, force: bool = False) -> tuple[list[Step], Paths]:
    params, paths = load_params(params_path)
    chosen = parse_only(only, paths.params_file)
    names = [n for n in params.notebooks if chosen is None or n in chosen]
    if chosen:
        absent = [n for n in chosen if n not in params.notebooks]
        if absent:
            raise StcclError(f"{paths.params_file}: --only names {absent}, which its 'notebooks' list leaves out")
    steps = []
    for n in names:
        out = paths.run_dir / f"{n}.ipynb"
        declared = _declared_outputs(paths, n)
        done = declared is not None and _step_done(paths.status_dir / f"{n}.json", out, declared)
        action = "force" if force else ("skip" if done else "run")
        steps.append(Step(n, Path("notebooks") / f"{n}.py", out, action))
    return steps, paths


# The parameters each notebook declares and the runner sets (their other knobs keep None: the params file's
# values). papermill only warns about a parameter a notebook does not declare, so tests/test_notebook_cells.py checks
# these lists against the notebooks' `parameters` cells.
NOTEBOOK_PARAMETERS = {
    "01_data_prep": ("params_file", "data_root", "preset", "seeds", "run_name", "force"),
    "02_correlation_analysis": ("params_file", "data_root", "seeds", "run_name", "force"),
    "03_train_metric": ("params_file", "data_root", "device", "seeds", "run_name", "force"),
    "04_train_spfem": ("params_file", "data_root", "device", "seeds", "run_name", "force"),
    "05_ablations": ("params_file", "data_root", "device", "run_name", "force"),
    "06_figures_and_report": ("params_file", "data_root", "run_name"),
}


def notebook_parameters(paths: Paths, params: ReproduceParams, force: bool = False,
                        notebook: str | None = None) -> dict:
    """What papermill injects into the `parameters` cell of `notebook` (None: every parameter)."""
    values = {"params_file": str(paths.params_file), "data_root": str(paths.data_root), "preset": params.preset,
              "device": params.device, "seeds": list(params.seeds), "run_name": paths.stem, "force": bool(force)}
    keep = NOTEBOOK_PARAMETERS.get(notebook, tuple(values))
    return {k: v for k, v in values.items() if k in keep}


def load_notebook(source: Path):
    """The jupytext .py notebook as papermill gets it: kernel "python3", no empty cells.

    jupytext turns a blank line too many (after the YAML header, between cells) into a code cell with
    nothing in it; the executed notebook would then open on an empty `In [1]`. Such cells are dropped.
    """
    if not source.is_file():
        raise StcclError(f"notebook source not found: {source}; run from the project root")
    nb = jupytext.read(source)
    nb.cells = [c for c in nb.cells if c.source.strip()]
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    return nb


def execute_notebook(source: Path, output: Path, parameters: dict, progress: bool = False,
                     cwd: Path | None = None, prepare_only: bool = False) -> tuple[bool, str, float]:
    """Execute a jupytext .py notebook into `output` with papermill. Returns (ok, message, seconds).

    prepare_only: write the parameterised notebook without running it (papermill's own option).
    """
    nb = load_notebook(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(nb, str(output), parameters=parameters, kernel_name=KERNEL,
                            cwd=str(cwd or Path.cwd()), progress_bar=progress, log_output=False,
                            prepare_only=prepare_only)
    except NoSuchKernel:
        raise StcclError(f"no Jupyter kernel named {KERNEL!r}; install it with `make setup` (or "
                         f"`.venv/bin/python -m ipykernel install --sys-prefix --name {KERNEL}`)") from None
    except PapermillExecutionError as exc:
        # cell_index counts every cell of the executed notebook, the injected-parameters cell included
        src = exc.source.strip().splitlines()
        head = src[0] if src else ""
        msg = (f"cell {exc.cell_index} (In [{exc.exec_count}]) of {source} failed with {exc.ename}: "
               f"{exc.evalue}\n  cell starts: {head}")
        return False, msg, time.perf_counter() - t0
    return True, "ok", time.perf_counter() - t0


def render_notebook(executed: Path, out_dir: Path) -> Path:
    """The executed notebook as Markdown with its figures as PNG files beside it, so that it reads on a code
    host without running anything: `out_dir/NN_name.md` and `out_dir/NN_name_files/*.png` (replaced whole)."""
    import nbformat  # imported here: only a finished notebook needs them, not `stccl reproduce --dry-run`
    from nbconvert import MarkdownExporter

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:  # progress bars and kernel warnings are noise on a code host
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    stem = executed.stem
    body, resources = MarkdownExporter().from_notebook_node(nb, resources={"output_files_dir": f"{stem}_files"})
    files = out_dir / f"{stem}_files"
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    for name, data in resources.get("outputs", {}).items():
        (out_dir / name).write_bytes(data)
    md = out_dir / f"{stem}.md"
    md.write_text(f"<!-- executed by `stccl reproduce`: {executed} -->\n\n" + body)
    return md


def _write_status(path: Path, ok: bool, seconds: float, message: str) -> None:
    atomic_write_json(path, {"status": "ok" if ok else "failed", "seconds": round(seconds, 2), "message": message,
                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def reproduce(params_path: str | os.PathLike, only: str | None = None, force: bool = False,
              dry_run: bool = False, progress: bool = True, out=None) -> int:
    """Run the plan; returns 0, or 1 at the first failed notebook."""
    out = out or sys.stdout
    steps, paths = plan(params_path, only, force)
    params, _ = load_params(params_path)
    if dry_run:
        print(f"plan for {paths.params_file} -> {paths.run_dir} (report: {paths.report_dir})", file=out)
        for s in steps:
            print(f"  {s.action:5s} {s.source} -> {s.output}", file=out)
        return 0
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    timings = {}
    for s in steps:
        if s.action == "skip":
            print(f"[skip] {s.notebook} (done: {s.output}; --force to rerun)", file=out, flush=True)
            continue
        print(f"[run ] {s.notebook} -> {s.output}", file=out, flush=True)
        status = paths.status_dir / f"{s.notebook}.json"
        status.unlink(missing_ok=True)
        ok, msg, secs = execute_notebook(s.source, s.output, notebook_parameters(paths, params, force, s.notebook),
                                         progress=progress)
        _write_status(status, ok, secs, msg)
        timings[s.notebook] = round(secs, 1)
        if not ok:
            print(f"[FAIL] {s.notebook}: {msg}\n  executed notebook saved: {s.output}", file=out, flush=True)
            return 1
        md = render_notebook(s.output, paths.report_dir / "notebooks")
        print(f"[ ok ] {s.notebook} in {secs:.1f} s (rendered: {md})", file=out, flush=True)
    total = time.perf_counter() - t_all
    if timings:
        atomic_write_json(paths.run_dir / "timings.json", {"notebooks": timings, "total_s": round(total, 1)})
    print(f"done in {total:.1f} s; report: {paths.report_dir / 'REPORT.md'}", file=out)
    return 0


def _cmd_reproduce(args) -> int:
    if args.retrain:  # the notebooks' kernels inherit the environment (stccl.pipeline.steps reads it)
        os.environ[RETRAIN_ENV] = "1"
    return reproduce(args.params, only=args.only, force=args.force, dry_run=args.dry_run,
                     progress=not args.no_progress)


def add_cli(sub) -> None:
    p = sub.add_parser("reproduce", help="run the notebooks in order with papermill (the whole reproduction)",
                       description="Execute notebooks/01..06 with papermill from one params file into "
                                   "reports/runs/<params stem>/, skipping finished steps.")
    p.add_argument("--params", default="params/smoke.yaml", help="params file (default params/smoke.yaml)")
    p.add_argument("--only", default=None, help="comma-separated notebooks, e.g. 03,04")
    p.add_argument("--force", action="store_true", help="rerun steps (and their runs) even if done")
    p.add_argument("--retrain", action="store_true",
                   help="train runs even where checkpoints/ ships one with the same config and data (runs "
                        "already in the run folder are kept: add --force to redo them)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--no-progress", action="store_true", help="no papermill progress bars")
    p.set_defaults(func=_cmd_reproduce)
