"""The package installs as a library (a wheel, not editable) and `tauda demo` runs from any directory, with the
recipe the README gives for installing tauda into a new environment that reuses an existing environment's torch:
build the wheel, make a venv, put a `.pth` file naming the existing environment's site-packages into the new one,
and `pip install --no-deps` the wheel. (`python -m venv --system-site-packages`, run from inside a virtual
environment, exposes the *base* interpreter's packages, not that environment's: it is not the recipe.)"""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_gives_this_recipe():
    readme = " ".join((ROOT/"README.md").read_text().split())
    for step in ("pip wheel --no-deps -w dist .", "python -m venv", ".pth", "pip install --no-deps dist/tauda-"):
        assert step in readme, step


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path/"dist"),
                    str(ROOT)], check=True)
    wheel, = (tmp_path/"dist").glob("tauda-*.whl")
    venv = tmp_path/"venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv/"bin"/"python"
    # the existing environment's packages (torch, …): a .pth line naming its site-packages. A plain path in a .pth
    # file does not process that folder's own .pth files, so an editable tauda installed there stays invisible.
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "outer-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], check=True)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wheel's tauda, not a checkout's
    where = subprocess.run([python, "-c", "import tauda; print(tauda.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, check=True, env=env).stdout.strip()
    assert where.startswith(str(venv)), where
    result = subprocess.run([venv/"bin"/"tauda", "demo", "--iterations", "5", "--out", "out"], capture_output=True,
                            text=True, cwd=tmp_path, env={**env, "PATH": f"{venv/'bin'}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "target domain (minicity-camera), split val" in result.stdout and (tmp_path/"out/results.json").is_file()
