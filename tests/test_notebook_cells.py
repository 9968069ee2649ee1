"""Each notebook's cells: its parameters cell declares what the runner injects, no cell is empty (in the
source or as the runner hands it to papermill), and it ends with a computed "What this shows" section.
Fast: nothing is executed.

jupytext reads a blank line too many (after the YAML header) as an empty code cell; the executed notebook
then opened on an empty `In [1]`. The runner drops such cells; the sources should not have them either,
since JupyterLab opens the .py directly.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

from stccl.pipeline import runner
from stccl.pipeline.params import NOTEBOOKS, load_params
from stccl.pipeline.runner import NOTEBOOK_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert len(SOURCES) >= 6


def _parameters(nb) -> dict:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "one cell tagged parameters"
    scope: dict = {}
    exec(cells[0].source, scope)
    return {k: v for k, v in scope.items() if not k.startswith("__")}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_declares_what_the_runner_injects_and_has_no_empty_cell(name):
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    declared = _parameters(nb)
    missing = set(NOTEBOOK_PARAMETERS[name]) - set(declared)
    assert not missing, f"{name}: the runner injects {sorted(missing)}, which its parameters cell lacks"
    assert declared["params_file"] == "params/smoke.yaml"
    assert not [i for i, c in enumerate(nb.cells) if not c.source.strip()], f"{name}: empty cell"
    assert any("What this shows" in c.source for c in nb.cells if c.cell_type == "markdown"), name


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_prepared_notebook_has_no_empty_cells(source, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    params, paths = load_params(ROOT / "params" / "smoke.yaml")
    out = tmp_path / f"{source.stem}.ipynb"
    ok, msg, _ = runner.execute_notebook(source, out, runner.notebook_parameters(paths, params, notebook=source.stem),
                                         cwd=ROOT, prepare_only=True)
    assert ok, msg
    nb = nbformat.read(out, as_version=4)
    empty = [i for i, c in enumerate(nb.cells) if not c.source.strip()]
    assert not empty, f"{source.name}: empty cells at {empty} of the prepared notebook"
    # papermill did inject the parameters, right after the cell tagged `parameters`
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    i = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert "injected-parameters" in tags[i + 1]
    assert nb.metadata["kernelspec"]["name"] == runner.KERNEL


def test_load_notebook_drops_blank_cells(tmp_path):
    src = tmp_path / "nb.py"
    src.write_text("# ---\n# jupyter:\n#   jupytext:\n#     text_representation:\n#       extension: .py\n"
                   "#       format_name: percent\n# ---\n\n\n# %%\nx = 1\n\n# %%\n\n\n# %% [markdown]\n"
                   "#\n\n# %%\ny = 2\n")
    assert any(not c.source.strip() for c in jupytext.read(src).cells)  # the case this guards against
    nb = runner.load_notebook(src)
    assert [c.source for c in nb.cells] == ["x = 1", "y = 2"]


def test_render_notebook_writes_markdown_with_its_figures_beside_it(tmp_path):
    import base64

    png = base64.b64encode(bytes.fromhex("89504e470d0a1a0a") + b"fake").decode()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("plot()", outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="100%|####| progress\n"),
            nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})])])
    executed = tmp_path / "run" / "07_demo.ipynb"
    executed.parent.mkdir()
    nbformat.write(nb, executed)
    (tmp_path / "out" / "07_demo_files").mkdir(parents=True)
    (tmp_path / "out" / "07_demo_files" / "stale.png").write_bytes(b"old")
    md = runner.render_notebook(executed, tmp_path / "out")
    text = md.read_text()
    assert "# Title" in text and "progress" not in text
    links = [line for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 1
    target = tmp_path / "out" / links[0].split("(")[1].rstrip(")")
    assert target.is_file() and target.read_bytes().startswith(bytes.fromhex("89504e47"))
    assert not (tmp_path / "out" / "07_demo_files" / "stale.png").exists()
