"""bench/gpu_check.sh on a machine without a GPU: it refuses politely, and its CUDA tests are skipped cleanly."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: bench/gpu_check.sh runs for real")


def test_gpu_check_refuses_politely_without_a_gpu():
    report = ROOT/"bench"/"gpu_check.json"
    before = report.read_bytes() if report.exists() else None
    done = subprocess.run(["bash", str(ROOT/"bench"/"gpu_check.sh")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    assert done.returncode == 2 and not done.stdout
    assert "no CUDA GPU is visible" in done.stderr and "bash run.sh test" in done.stderr
    assert "Traceback" not in done.stderr
    assert (report.read_bytes() if report.exists() else None) == before  # nothing measured, nothing written


def test_cuda_tests_are_skipped_cleanly_without_a_gpu():
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rs",
                           str(ROOT/"tests"/"test_cuda.py")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "5 skipped" in done.stdout and "needs a CUDA GPU" in done.stdout and "error" not in done.stdout.lower()
