"""Each notebook's cells: its parameters cell declares what the runner injects, no cell is empty, and it
ends with a computed "What this shows" section. Reads the jupytext sources only (no kernel)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest

from stccl.pipeline.params import NOTEBOOKS
from stccl.pipeline.runner import NOTEBOOK_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]


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
