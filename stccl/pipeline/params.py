"""The reproduction's params file (one YAML per reproduction) and the paths its outputs go to.

    params, paths = load_params("params/smoke.yaml")          # the runner
    params, paths = notebook_context(params_file, ...)         # a notebook, with its papermill parameters

Every output of one params file lies under `reports/runs/<stem>/` (executed
notebooks, data, runs) and `reports/<stem>/` (the committed report); `Paths`
is the one place that says where.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from stccl.config import from_dict, load_yaml, replace
from stccl.data.synth import PRESETS, SynthConfig, make_config
from stccl.io import StcclError, atomic_write_json, read_json, to_json
from stccl.spfem.evaluate import EvalOptions

NOTEBOOKS = (
    "01_data_prep",
    "02_correlation_analysis",
    "03_train_metric",
    "04_train_spfem",
    "05_ablations",
    "06_figures_and_report",
)
# SPFEM variants of the main comparison. `weak_emotion` is the edit-less control: the baseline (no STCCL) with
# its emotion loss weakened (`ReproduceParams.weak_emotion_cls_factor`), so that its emotion accuracy falls about
# as far as +STCCL's; if +STCCL's mouth gain is only "edit less", this run shows it too.
VARIANTS = ("baseline", "weak_emotion", "vd", "cm")
STCCL_VARIANTS = ("vd", "cm")  # the variants that train with the frozen STCCL loss


@dataclass(frozen=True)
class SynthParams:
    """Overrides of the `stccl synth` preset (None: the preset's value)."""

    identities: int | None = None
    sentences: int | None = None
    size: int | None = None
    workers: int | None = None
    # How coherent the neutral and emotional renditions are (stccl.data.synth.SynthConfig has the meaning)
    emotion_timing: bool | None = None
    emotion_on_mouth: bool | None = None
    shared_motion: bool | None = None
    pose_jitter: float | None = None
    blink_rate: float | None = None
    noise_std: float | None = None
    alignment: str | None = None


COHERENCE_KNOBS = ("emotion_timing", "emotion_on_mouth", "shared_motion", "pose_jitter", "blink_rate",
                   "noise_std", "alignment")


@dataclass(frozen=True)
class AblationRun:
    """One grid point: overrides of the metric config (non-empty -> the metric is retrained) and of SPFEM."""

    name: str
    factor: str                 # the factor varied (row group of the table), e.g. "tau"
    level: str                  # its value as shown in the table, e.g. "0.05"
    metric: dict = field(default_factory=dict)
    spfem: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AblationParams:
    metric_steps: int = 3       # steps of each metric retrain
    spfem_steps: int = 3        # steps of each SPFEM run
    seed: int = 0
    runs: tuple[AblationRun, ...] = ()
    publish_dir: str | None = None   # also write ablations.csv/.md + figure here (default.yaml: reports)


@dataclass(frozen=True)
class ReproduceParams:
    preset: str = "tiny"                       # stccl synth preset
    data_root: str | None = None               # default: reports/runs/<stem>/data (rendered there)
    seeds: tuple[int, ...] = (0,)              # SPFEM seeds of the main comparison
    device: str = "auto"
    threads: int = 0                           # torch CPU threads in the notebooks (0: torch's default)
    jobs: int = 1                              # training runs at once, each its own process (cores / threads)
    synth: SynthParams = field(default_factory=SynthParams)
    shipped_checkpoints: bool = True           # reuse checkpoints/*.pt trained with the same config and data
    metric_config: str = "params/metric_tiny.yaml"
    metric_steps: int | None = None            # override the metric config's steps
    metric_set: dict = field(default_factory=dict)   # more metric config overrides
    spfem_config: str = "params/spfem_tiny.yaml"
    spfem_steps: int | None = None
    spfem_set: dict = field(default_factory=dict)
    variants: tuple[str, ...] = VARIANTS       # baseline, edit-less control, +STCCL (VD), +STCCL (CM)
    weak_emotion_cls_factor: float = 0.75      # the control's lambda_cls = this x the SPFEM config's (params/default.yaml)
    eval: EvalOptions = field(default_factory=EvalOptions)   # how every SPFEM run is evaluated
    diagnose_split: str = "test"
    diagnose_batches: int = 20                 # batches of windows averaged by the diagnostic
    frames_to_show: int = 6                    # frames per row in the side-by-side figure
    ablation: AblationParams = field(default_factory=AblationParams)
    notebooks: tuple[str, ...] = NOTEBOOKS
    report_dir: str | None = None              # default: reports/<stem>
    run_dir: str | None = None                 # default: reports/runs/<stem>


@dataclass(frozen=True)
class Paths:
    """Where every output of one params file goes (all relative to the project root)."""

    stem: str
    params_file: Path
    run_dir: Path          # reports/runs/<stem>: executed notebooks, data, runs (not committed)
    report_dir: Path       # reports/<stem>: REPORT.md, figures, tables (committed)
    data_root: Path
    spfem_suffix: str = ""  # appended to the +STCCL run folders (knob_tag of notebook 04's overrides)

    @property
    def metric_run(self) -> Path:
        return self.run_dir / "metric"

    def spfem_run(self, variant: str, seed: int) -> Path:
        # the baseline has no STCCL term, so STCCL knobs leave it (and its folder) unchanged
        suffix = self.spfem_suffix if variant in STCCL_VARIANTS else ""
        return self.run_dir / f"spfem_{variant}_s{seed}{suffix}"

    @property
    def ablation_dir(self) -> Path:
        return self.run_dir / "ablations"

    @property
    def outputs_dir(self) -> Path:
        return self.run_dir / "outputs"

    @property
    def status_dir(self) -> Path:
        return self.run_dir / ".status"


def load_params(path: str | os.PathLike) -> tuple[ReproduceParams, Paths]:
    """Validated params and the output paths they imply."""
    path = Path(path)
    params = from_dict(ReproduceParams, load_yaml(path), where=str(path))
    allowed = set(NOTEBOOKS)
    unknown = [n for n in params.notebooks if n not in allowed]
    if unknown:
        raise StcclError(f"{path}: key 'notebooks': unknown notebook(s) {unknown}; known: {list(NOTEBOOKS)}")
    bad = [v for v in params.variants if v not in VARIANTS]
    if bad:
        raise StcclError(f"{path}: key 'variants': unknown variant(s) {bad}; known: {list(VARIANTS)}")
    names = [r.name for r in params.ablation.runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise StcclError(f"{path}: key 'ablation.runs': duplicate run name(s) {dup}; give every run its own name")
    if not 0.0 <= params.weak_emotion_cls_factor <= 1.0:
        raise StcclError(f"{path}: key 'weak_emotion_cls_factor': must lie in [0, 1] (a weaker emotion loss), "
                         f"got {params.weak_emotion_cls_factor}")
    if not params.seeds:
        raise StcclError(f"{path}: key 'seeds': give at least one seed")
    if params.jobs < 1:
        raise StcclError(f"{path}: key 'jobs': must be >= 1, got {params.jobs}")
    stem = path.stem
    run_dir = Path(params.run_dir) if params.run_dir else Path("reports/runs") / stem
    report_dir = Path(params.report_dir) if params.report_dir else Path("reports") / stem
    data_root = Path(params.data_root) if params.data_root else run_dir / "data"
    return params, Paths(stem, path, run_dir, report_dir, data_root)


def notebook_context(params_file: str, data_root: str | None = None, preset: str | None = None,
                     device: str | None = None, seeds: Sequence[int] | None = None,
                     run_name: str | None = None) -> tuple[ReproduceParams, Paths]:
    """Params and paths for a notebook, with its papermill parameters applied on top of the params file.

    A `data_root` other than the one the params file implies (e.g. a `data-<hash>` folder notebook 01 rendered
    with other knobs) gets run and report folders of its own (`<run_dir>-<hash>`), so runs trained on one
    data set are never reused for another.
    """
    params, paths = load_params(params_file)
    file_data_root = params.data_root
    changes: dict[str, Any] = {}
    if data_root:
        changes["data_root"] = str(data_root)
    if preset:
        changes["preset"] = preset
    if device:
        changes["device"] = device
    if seeds:
        changes["seeds"] = [int(s) for s in seeds]
    if changes:
        params = replace(params, **changes)
    if run_name and run_name != paths.stem:
        paths = Paths(run_name, paths.params_file,
                      Path(params.run_dir) if params.run_dir else Path("reports/runs") / run_name,
                      Path(params.report_dir) if params.report_dir else Path("reports") / run_name,
                      Path("reports/runs") / run_name / "data")
    own_data = Path(file_data_root) if file_data_root else paths.data_root
    if params.data_root and Path(params.data_root) != own_data:
        tag = knob_tag({"data_root": str(params.data_root)})
        paths = Paths(paths.stem, paths.params_file, Path(f"{paths.run_dir}{tag}"), Path(f"{paths.report_dir}{tag}"),
                      paths.data_root)
    if params.data_root:
        paths = Paths(paths.stem, paths.params_file, paths.run_dir, paths.report_dir, Path(params.data_root))
    if params.threads:
        torch.set_num_threads(params.threads)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    return params, paths


def record_outputs(paths: Paths, notebook: str, files: dict[str, str | os.PathLike],
                   values: dict[str, Any] | None = None) -> Path:
    """Called at the end of a notebook: the files it made (checked by the skip logic) and headline values."""
    missing = [f"{k}: {v}" for k, v in files.items() if not Path(v).exists()]
    if missing:
        raise StcclError(f"notebook {notebook}: declared output(s) missing: {missing}")
    return atomic_write_json(paths.outputs_dir / f"{notebook}.json",
                             {"notebook": notebook, "files": {k: str(v) for k, v in files.items()},
                              "values": values or {}})


def read_outputs(paths: Paths, notebook: str) -> dict:
    return read_json(paths.outputs_dir / f"{notebook}.json", f"recorded outputs of notebook {notebook}")


# ---------------------------------------------------------------------------
# Knobs: notebook parameters that override the params file
# ---------------------------------------------------------------------------

def changed_fields(base: Any, new: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys (e.g. "loss.tau") of the dataclass fields whose values differ between two configs."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(base):
        a, b = getattr(base, f.name), getattr(new, f.name)
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            out.update(changed_fields(a, b, f"{prefix}{f.name}."))
        elif a != b:
            out[f"{prefix}{f.name}"] = b
    return out


def knob_tag(overrides: dict[str, Any]) -> str:
    """'' for no overrides, else '-' + 8 hex digits of their hash: the suffix of the folders they write.

    A run folder is reused when its checkpoint reached the configured steps, whatever else changed, so a
    run with other settings must live in a folder of its own.
    """
    if not overrides:
        return ""
    return "-" + hashlib.sha1(to_json(dict(sorted(overrides.items()))).encode()).hexdigest()[:8]


def synth_config(params: ReproduceParams) -> SynthConfig:
    """The `stccl synth` config the params file asks for (its preset with the `synth` overrides)."""
    s = params.synth
    n_test = min(PRESETS[params.preset].n_test, s.identities - 1) if s.identities else None  # as `stccl synth`
    return make_config(params.preset, size=s.size, workers=s.workers, n_identities=s.identities,
                       n_sentences=s.sentences, n_test=n_test, **{k: getattr(s, k) for k in COHERENCE_KNOBS})


def with_synth_knobs(params: ReproduceParams, paths: Paths, preset: str | None = None,
                     **knobs: Any) -> tuple[ReproduceParams, Paths, dict[str, Any]]:
    """Params and paths with notebook 01's knobs (None: the params file's value) applied.

    `knobs` are `SynthParams` fields. When the rendered data set would differ from the params file's
    (another preset, seed or setting), the data folder gets the `knob_tag` of the differences, so a data
    set rendered with other settings is never reused. Returns the differences too.
    """
    unknown = sorted(set(knobs) - {f.name for f in dataclasses.fields(SynthParams)})
    if unknown:
        raise StcclError(f"notebook 01: unknown synth knob(s) {unknown}; known: "
                         f"{[f.name for f in dataclasses.fields(SynthParams)]}")
    base_params, _ = load_params(paths.params_file)
    new = replace(params, preset=preset or params.preset,
                  synth={**dataclasses.asdict(params.synth), **{k: v for k, v in knobs.items() if v is not None}})
    differences = changed_fields(synth_config(base_params), synth_config(new))
    differences.pop("workers", None)  # how many processes render: the frames are the same
    if new.seeds[0] != base_params.seeds[0]:
        differences["seed"] = new.seeds[0]
    tag = knob_tag(differences)
    if tag:
        root = Path(f"{paths.data_root}{tag}")
        new, paths = replace(new, data_root=str(root)), dataclasses.replace(paths, data_root=root)
    return new, paths, differences
