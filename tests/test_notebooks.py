"""Runs every chapter (nbs/*.ipynb, nbs/assignments/*.ipynb) in a real Jupyter kernel (nbclient + ipykernel), one test case each.

The cells that run are exactly those `nbdev-test` would run: nbdev's own selection (`nbdev.test.nb_test_cells`) leaves out
cells flagged with the project's `tst_flags` (`#| notest`, `#| slow`), cells with `#| eval: false`, and whole notebooks
with `skip_exec` in their front matter. Each notebook gets a fresh kernel started in its own folder, with `IN_TEST=1`
(as nbdev-test sets it), an isolated IPython profile directory and a kernel spec pinned to this interpreter.
"""
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbdev.config import get_config
from nbdev.test import nb_test_cells

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT/"nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
KERNEL = "tauda-test"


def skip_flags() -> list:
    return get_config(ROOT).tst_flags.split()


def runnable_notebook(path, flags) -> nbformat.NotebookNode:
    "A copy of the notebook at `path` holding only the code cells nbdev-test would run."
    cells = nb_test_cells(path, skip_flags=flags)
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in cells],
                                    metadata={"kernelspec": {"name": KERNEL, "display_name": KERNEL, "language": "python"}})


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    "A kernel spec for this interpreter and an empty IPython profile folder (the reader's profile must not matter)."
    root = tmp_path_factory.mktemp("kernel")
    (root/"kernels"/KERNEL).mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL, "language": "python"}
    (root/"kernels"/KERNEL/"kernel.json").write_text(json.dumps(spec))
    (root/"ipython").mkdir()
    return root


def run_in_kernel(path, kernel_env, monkeypatch, flags, timeout=None) -> nbformat.NotebookNode:
    "Execute the cells nbdev-test would run of the notebook at `path` in a fresh kernel; raises on the first error."
    path = Path(path)
    monkeypatch.setenv("IN_TEST", "1")
    monkeypatch.setenv("IPYTHONDIR", str(kernel_env/"ipython"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = runnable_notebook(path, flags)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_env/"kernels")]))
    timeout = timeout or get_config(ROOT).get("cell_timeout", 600)
    client = NotebookClient(nb, km=km, timeout=int(timeout), allow_errors=False, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    return client.execute()


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8
    assert any(p.parent.name == "assignments" for p in NOTEBOOKS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT/"nbs")))
def test_notebook_runs_in_a_kernel(notebook, kernel_env, monkeypatch):
    run_in_kernel(notebook, kernel_env, monkeypatch, skip_flags())


SKIPPING = [  # (source, should it run?)
    ("import os\nopen('ran.txt', 'a').write('first ')", True),
    ("#| slow\nraise RuntimeError('slow cells are skipped')", False),
    ("#| notest\nraise RuntimeError('notest cells are skipped')", False),
    ("#| eval: false\nraise RuntimeError('eval: false cells are skipped')", False),
    ("assert os.environ['IN_TEST'] == '1'\nopen('ran.txt', 'a').write('second')", True),
]


def test_the_runner_skips_like_nbdev_test(tmp_path, kernel_env, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s, _ in SKIPPING])
    nbformat.write(nb, tmp_path/"flags.ipynb")
    flags = skip_flags()
    assert {"slow", "notest"} <= set(flags)
    executed = run_in_kernel(tmp_path/"flags.ipynb", kernel_env, monkeypatch, flags)
    assert [c.source for c in executed.cells] == [s for s, runs in SKIPPING if runs]
    assert (tmp_path/"ran.txt").read_text() == "first second"   # ran in the notebook's folder, in order
    nb.cells.append(nbformat.v4.new_code_cell("1/0"))
    nbformat.write(nb, tmp_path/"fails.ipynb")
    with pytest.raises(Exception, match="ZeroDivisionError"):
        run_in_kernel(tmp_path/"fails.ipynb", kernel_env, monkeypatch, flags)
