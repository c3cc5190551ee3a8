"""The package installs as a library (a wheel, not editable) and `tauda demo` runs from any directory."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path/"dist"),
                    str(ROOT)], check=True)
    wheel, = (tmp_path/"dist").glob("tauda-*.whl")
    venv = tmp_path/"venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv/"bin"/"python"
    # Reuse this interpreter's packages (torch, …) instead of installing them again. A plain path in a .pth file
    # does not process that folder's own .pth files, so an editable tauda there stays invisible.
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "outer-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], check=True)

    where = subprocess.run([python, "-c", "import tauda; print(tauda.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, check=True).stdout.strip()
    assert where.startswith(str(venv)), where
    result = subprocess.run([venv/"bin"/"tauda", "demo", "--iterations", "5", "--out", "out"], capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "PATH": f"{venv/'bin'}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TARGET (camera, val)" in result.stdout and (tmp_path/"out/results.json").is_file()
