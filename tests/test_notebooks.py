"""Runs every notebook as `nbdev-test` does (cells flagged `notest` or `slow` skipped), one test case each."""
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook  # renamed so that pytest does not collect it

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT/"nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT/"nbs")))
def test_notebook_runs(notebook):
    flags = get_config(ROOT).tst_flags.split()
    ok, seconds = run_notebook(notebook, skip_flags=flags, basepath=ROOT)
    assert ok, f"{notebook.name} failed (see the traceback above)"
