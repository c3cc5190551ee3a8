"""Time `tauda --help` and every `tauda COMMAND --help` as a user starts them: whole processes, start-up included.

The command line declares its sub-commands without importing torch, so its help must answer in well under a
second (DESIGN.md's budget: < 1 s on an idle 2-core machine). For scale, the same process importing torch and
torchvision, and a bare Python start. Each is started R times after one warm-up run; the median is reported.

    python bench/bench_cli.py [--repeats 7] [--json FILE]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = ["demo", "train", "pipeline", "eval", "pseudo-label", "check-data", "study", "presets"]
REFERENCES = {"python -c pass": [sys.executable, "-c", "pass"],
              "python -c 'import torch, torchvision'": [sys.executable, "-c", "import torch, torchvision"]}


def wall(command: list, repeats: int) -> dict:
    "Median, min and max wall seconds of `command` over `repeats` runs (after one warm-up run)."
    times = []
    for k in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        if k: times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
            "max_s": round(max(times), 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    tauda = [sys.executable, "-m", "tauda.cli"]
    results = {"tauda --help": wall([*tauda, "--help"], args.repeats)}
    for name in COMMANDS: results[f"tauda {name} --help"] = wall([*tauda, name, "--help"], args.repeats)
    for name, command in REFERENCES.items(): results[name] = wall(command, args.repeats)
    width = max(map(len, results))
    for name, r in results.items():
        print(f"{name:<{width}}  median {r['median_s']:.3f} s  (min {r['min_s']:.3f}, max {r['max_s']:.3f})")
    slowest = max(r["median_s"] for n, r in results.items() if n.startswith("tauda"))
    print(f"slowest help: {slowest:.3f} s (budget: 1 s)")
    if args.json:
        with open(args.json, "w") as f: json.dump({"repeats": args.repeats, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
