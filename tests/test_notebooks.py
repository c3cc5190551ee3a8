"""Runs every chapter (nbs/*.ipynb, the API appendix nbs/api/*.ipynb, nbs/assignments/*.ipynb) in a real Jupyter kernel
(nbclient + ipykernel), one test case each.

The cells that run are exactly those `nbdev-test` would run: nbdev's own selection (`nbdev.test.nb_test_cells`) leaves
out cells flagged with the project's `tst_flags` (`#| notest`, `#| slow`), cells with `#| eval: false`, and whole
notebooks with `skip_exec` in their front matter. Each notebook gets a fresh kernel working in the notebook's own folder
(as nbdev-test runs it: a chapter of nbs/api/ reaches the repository as `../../`), with `IN_TEST=1` (as nbdev-test sets
it), an isolated IPython profile directory and a kernel spec pinned to this interpreter.
To keep CI time down, the next kernel starts while the current notebook runs and imports torch, matplotlib and tauda
(silently, binding no name: a notebook that forgets an import still fails).
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
    spec = {"name": KERNEL, "display_name": KERNEL, "language": "python"}
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in cells],
                                    metadata={"kernelspec": spec})


WARM = "__import__('torch'); __import__('matplotlib.pyplot'); __import__('tauda.train')"   # binds no name


class KernelPool:
    """Fresh kernels, one per notebook. The next kernel is started, and imports torch, matplotlib and tauda (silently,
    binding no name), while the current notebook runs, so a notebook does not wait for those imports."""
    def __init__(self, root: Path):
        (root/"kernels"/KERNEL).mkdir(parents=True)
        spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": KERNEL, "language": "python"}
        (root/"kernels"/KERNEL/"kernel.json").write_text(json.dumps(spec))
        (root/"ipython").mkdir()
        self.specs = KernelSpecManager(kernel_dirs=[str(root/"kernels")])
        self.env = {**os.environ, "IN_TEST": "1", "IPYTHONDIR": str(root/"ipython"),  # as nbdev-test; no user profile
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.next = None

    def _start(self, warm: bool):
        km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=self.specs)
        km.start_kernel(cwd=str(ROOT/"nbs"), env=self.env)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)                 # the kernel process is up (about a second); the imports run on
        return km, kc, kc.execute(WARM, silent=True) if warm else None

    def take(self, folder: Path, warm_next: bool = True) -> KernelManager:
        "A fresh kernel whose working directory is `folder`; the next one starts warming up."
        km, kc, warming = self.next or self._start(warm=False)
        self.next = None
        try:
            for msg_id in filter(None, [warming, kc.execute(f"__import__('os').chdir({str(folder)!r})", silent=True)]):
                reply = kc.get_shell_msg(timeout=300)
                while reply["parent_header"].get("msg_id") != msg_id: reply = kc.get_shell_msg(timeout=300)
                assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            kc.stop_channels()
        if warm_next: self.next = self._start(warm=True)
        return km

    def close(self):
        if self.next: self.next[1].stop_channels(); self.next[0].shutdown_kernel(now=True)


@pytest.fixture(scope="session")
def kernels(tmp_path_factory):
    pool = KernelPool(tmp_path_factory.mktemp("kernels"))
    yield pool
    pool.close()


def run_in_kernel(path, kernels: KernelPool, flags, timeout=None, warm_next=True) -> nbformat.NotebookNode:
    "Execute the cells nbdev-test would run of the notebook at `path` in a fresh kernel; raises on the first error."
    path = Path(path)
    nb = runnable_notebook(path, flags)
    km = kernels.take(path.parent, warm_next)
    timeout = timeout or get_config(ROOT).get("cell_timeout", 600)
    client = NotebookClient(nb, km=km, timeout=int(timeout), allow_errors=False, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    try: return client.execute()
    finally: km.shutdown_kernel(now=True)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 8
    assert {"assignments", "api"} <= {p.parent.name for p in NOTEBOOKS}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT/"nbs")))
def test_notebook_runs_in_a_kernel(notebook, kernels):
    run_in_kernel(notebook, kernels, skip_flags(), warm_next=notebook != NOTEBOOKS[-1])


SKIPPING = [  # (source, should it run?)
    ("import os\nopen('ran.txt', 'a').write('first ')", True),
    ("#| slow\nraise RuntimeError('slow cells are skipped')", False),
    ("#| notest\nraise RuntimeError('notest cells are skipped')", False),
    ("#| eval: false\nraise RuntimeError('eval: false cells are skipped')", False),
    ("assert os.environ['IN_TEST'] == '1' and 'torch' not in dir()\nopen('ran.txt', 'a').write('second')", True),
]


def test_the_runner_skips_like_nbdev_test(tmp_path, kernels):
    kernels.next = kernels.next or kernels._start(warm=True)      # a warmed-up kernel, as the chapters get
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s, _ in SKIPPING])
    nbformat.write(nb, tmp_path/"flags.ipynb")
    flags = skip_flags()
    assert {"slow", "notest"} <= set(flags)
    executed = run_in_kernel(tmp_path/"flags.ipynb", kernels, flags)
    assert [c.source for c in executed.cells] == [s for s, runs in SKIPPING if runs]
    assert (tmp_path/"ran.txt").read_text() == "first second"   # ran in the notebook's folder, in order
    nb.cells.append(nbformat.v4.new_code_cell("1/0"))
    nbformat.write(nb, tmp_path/"fails.ipynb")
    with pytest.raises(Exception, match="ZeroDivisionError"):
        run_in_kernel(tmp_path/"fails.ipynb", kernels, flags)
