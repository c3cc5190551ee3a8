"""Run every benchmark of bench/ in turn, write bench/results.json and print one summary.

    python bench/run_all.py                  # everything (about 12-15 minutes on 2 CPU cores)
    python bench/run_all.py --skip demo notebooks

Each benchmark runs in its own process (its peak memory is its own) and writes its JSON; this script adds
the machine it ran on. Numbers are only comparable between runs on the same machine with nothing else running.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SUITE = {  # name: command (a JSON path is appended with --json, except for the timed commands)
    "cli": [sys.executable, str(BENCH/"bench_cli.py"), "--repeats", "5"],
    "eval": [sys.executable, str(BENCH/"bench_eval.py"), "--n", "10", "--repeats", "2"],
    "data": [sys.executable, str(BENCH/"bench_data.py"), "--n", "6", "--repeats", "2"],
    "ufl": [sys.executable, str(BENCH/"bench_ufl.py"), "--repeats", "15"],
    "steps": [sys.executable, str(BENCH/"bench_steps.py"), "--reps", "4"],
    "models": [sys.executable, str(BENCH/"bench_models.py"), "--size", "128", "256", "--reps", "2"],
}
TIMED = {  # name: (command whose wall time is the result, a JSON file it writes that is kept too, or None)
    "demo": ([sys.executable, "-m", "tauda.cli", "demo", "--out", "{tmp}/demo"], "{tmp}/demo/results.json"),
    "notebooks": ([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   str(ROOT/"tests"/"test_notebooks.py")], None),
}


def machine() -> dict:
    info = Path("/proc/cpuinfo")
    cpu = next((l.split(":", 1)[1].strip() for l in info.read_text().splitlines() if l.startswith("model name")), "") \
        if info.is_file() else platform.processor()
    return dict(cpu=cpu, cores=os.cpu_count(), torch=torch.__version__, python=platform.python_version(),
                date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def run(name, command, tmp) -> dict:
    print(f"== {name}: {' '.join(Path(c).name if c.startswith('/') else c for c in command)}", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = round(time.perf_counter() - t0, 1)
    print(done.stdout[-4000:], flush=True)
    if done.returncode: raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return {"wall_s": seconds}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=[], choices=list(SUITE) + list(TIMED))
    ap.add_argument("--out", default=str(BENCH/"results.json"))
    args = ap.parse_args()
    results, start = {"machine": machine()}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in SUITE.items():
            if name in args.skip: continue
            path = Path(tmp)/f"{name}.json"
            wall = run(name, command + ["--json", str(path)], tmp)
            results[name] = {"results": json.loads(path.read_text()), **wall}
        for name, (command, kept) in TIMED.items():
            if name in args.skip: continue
            results[name] = run(name, [c.format(tmp=tmp) for c in command], tmp)
            if kept: results[name]["results"] = json.loads(Path(kept.format(tmp=tmp)).read_text())
    results["total_s"] = round(time.perf_counter() - start, 1)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out} ({results['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
