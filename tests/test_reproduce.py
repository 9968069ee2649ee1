"""The runner: params validation, plan / --dry-run, skip and --force, and stopping at a failing notebook.

A fake notebook folder (tiny py:percent notebooks that only write files) stands in for the real ones, so
these tests exercise papermill and the skip logic in a few seconds.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest
import yaml

from stccl.data.mead import summarise_pairs
from stccl.io import StcclError
from stccl.pipeline import runner as reproduce
from stccl.pipeline.params import NOTEBOOKS, load_params
from stccl.pipeline.steps import parallel_map

NB = '''# %% tags=["parameters"]
params_file = "p.yaml"
data_root = None
preset = None
device = "auto"
seeds = None
run_name = None
force = False

# %%
from pathlib import Path
from stccl.pipeline.params import notebook_context, record_outputs
params, paths = notebook_context(params_file, data_root, preset, device, seeds, run_name)
out = paths.run_dir / "{name}.txt"
n = int(out.read_text()) + 1 if out.exists() else 1
out.write_text(str(n))
{extra}
record_outputs(paths, "{name}", {{"count": out}}, {{"n": n}})
'''


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """A project root with notebooks/01..06 that count their executions; 03 fails when FAIL exists."""
    (tmp_path / "notebooks").mkdir()
    for name in NOTEBOOKS:
        extra = 'if Path("FAIL").exists():\n    raise RuntimeError("planned failure")' if name.startswith("03") else ""
        (tmp_path / "notebooks" / f"{name}.py").write_text(NB.format(name=name, extra=extra))
    params = {"run_dir": "runs/t", "report_dir": "rep/t", "data_root": "data",
              "notebooks": ["01_data_prep", "03_train_metric", "04_train_spfem"]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _count(root: Path, name: str) -> int:
    p = root / "runs" / "t" / f"{name}.txt"
    return int(p.read_text()) if p.exists() else 0


def test_params_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"notebooks": ["01_data_prep", "99_nope"]}))
    with pytest.raises(StcclError, match=r"bad\.yaml.*99_nope"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"tau": 0.1}))
    with pytest.raises(StcclError, match=r"bad\.yaml.*tau"):
        load_params(bad)
    bad.write_text(yaml.safe_dump({"ablation": {"runs": [{"name": "a", "factor": "f", "level": "1"},
                                                         {"name": "a", "factor": "f", "level": "2"}]}}))
    with pytest.raises(StcclError, match="duplicate"):
        load_params(bad)


def test_shipped_params_load():
    root = Path(__file__).resolve().parents[1]
    for name in ("smoke", "default"):
        params, paths = load_params(root / "params" / f"{name}.yaml")
        assert paths.run_dir == Path("reports/runs") / name
        assert paths.report_dir == Path("reports") / name
        assert len(params.ablation.runs) >= 5
        factors = {r.factor for r in params.ablation.runs}
        # the default grid folds correlations and lambda_T into one "metric objective" factor (issue 13)
        terms = {"metric objective"} if name == "default" else {"correlations", "metric lambda_T"}
        assert {"variant", "adaptive weighting", "tau", "metric window T"} | terms <= factors


def test_dry_run_only_and_unknown(project, capsys):
    assert reproduce.reproduce("p.yaml", dry_run=True) == 0
    out = capsys.readouterr().out
    assert "01_data_prep" in out and "04_train_spfem" in out and "02_correlation" not in out
    assert not (project / "runs").exists()  # a dry run writes nothing
    steps, _ = reproduce.plan("p.yaml", only="03,04")
    assert [s.notebook for s in steps] == ["03_train_metric", "04_train_spfem"]
    with pytest.raises(StcclError, match="07"):
        reproduce.plan("p.yaml", only="07")
    with pytest.raises(StcclError, match="02_correlation_analysis"):
        reproduce.plan("p.yaml", only="02")  # known notebook, but not in this params file


def test_run_skip_force_and_failure(project, capsys):
    assert reproduce.reproduce("p.yaml", progress=False) == 0
    assert [_count(project, n) for n in ("01_data_prep", "03_train_metric", "04_train_spfem")] == [1, 1, 1]
    assert (project / "runs/t/03_train_metric.ipynb").is_file()
    assert json.loads((project / "runs/t/.status/03_train_metric.json").read_text())["status"] == "ok"
    # everything done: the plan skips all, a rerun executes nothing
    assert {s.action for s in reproduce.plan("p.yaml")[0]} == {"skip"}
    assert reproduce.reproduce("p.yaml", progress=False) == 0
    assert _count(project, "01_data_prep") == 1
    # a declared output that disappeared makes its step run again
    (project / "runs/t/04_train_spfem.txt").unlink()
    assert [s.action for s in reproduce.plan("p.yaml")[0]] == ["skip", "skip", "run"]
    assert reproduce.reproduce("p.yaml", progress=False) == 0
    assert [_count(project, n) for n in ("01_data_prep", "03_train_metric", "04_train_spfem")] == [1, 1, 1]
    # --force reruns the chosen steps only
    assert reproduce.reproduce("p.yaml", only="01", force=True, progress=False) == 0
    assert _count(project, "01_data_prep") == 2 and _count(project, "03_train_metric") == 1
    # a failing notebook stops the run, names the cell, keeps the executed notebook, later steps do not run
    (project / "FAIL").write_text("")
    capsys.readouterr()
    assert reproduce.reproduce("p.yaml", force=True, progress=False) == 1
    out = capsys.readouterr().out
    assert "[FAIL] 03_train_metric" in out and "RuntimeError: planned failure" in out and "cell " in out
    assert "04_train_spfem" not in out.split("[FAIL]")[1].split("executed notebook saved")[0]
    status = json.loads((project / "runs/t/.status/03_train_metric.json").read_text())
    assert status["status"] == "failed"
    nb = json.loads((project / "runs/t/03_train_metric.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in nb["cells"] for o in c.get("outputs", []))
    assert _count(project, "04_train_spfem") == 1  # not re-executed after the failure
    assert reproduce.plan("p.yaml")[0][1].action == "run"  # the failed step is not skipped next time


def test_cli_exit_codes(project):
    from stccl.cli import main

    assert main(["reproduce", "--params", "p.yaml", "--dry-run"]) == 0
    assert main(["reproduce", "--params", "p.yaml", "--only", "09"]) == 2
    assert main(["reproduce", "--params", "missing.yaml", "--dry-run"]) == 2


REAL_ALIGN = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mead" / "aligned_path36.json"


def _square(x: int) -> int:
    return x * x


def _fail_at_one(x: int, folder: Path) -> int:
    (folder / str(x)).write_text("")  # a file per started call: the calls run in other processes
    if x == 1:
        raise StcclError("run 1 failed")
    time.sleep(2.0)  # long enough for the failure to reach the parent on a loaded machine
    return x


def test_parallel_map_keeps_order_and_raises_the_first_error(tmp_path):
    assert parallel_map(_square, range(6), jobs=2) == [0, 1, 4, 9, 16, 25]
    with pytest.raises(StcclError, match="run 1 failed"):
        parallel_map(functools.partial(_fail_at_one, folder=tmp_path), range(8), jobs=2)
    assert len(list(tmp_path.iterdir())) < 8  # no new call starts after the failure


def test_a_pool_worker_computes_what_the_process_does(tmp_path):
    """A package call gives the same result in a spawned worker as in-process, and its error comes back."""
    here = summarise_pairs(REAL_ALIGN, tmp_path)
    assert here["pairs"] == 648
    there = parallel_map(functools.partial(summarise_pairs, root=tmp_path), [REAL_ALIGN, REAL_ALIGN], jobs=2)
    assert there == [here, here]
    bad = tmp_path / "nope.json"
    with pytest.raises(StcclError, match="nope.json"):
        parallel_map(functools.partial(summarise_pairs, root=tmp_path), [bad, bad], jobs=2)
