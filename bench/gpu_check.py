"""The GPU check behind bench/gpu_check.sh: the CUDA tests (`pytest -m cuda`), a few paper-size training steps per
model and stage (GTA5 → Cityscapes at 512×1024, CrossCity stage one at 640×1280) with their time and peak GPU
memory, and the device-to-host synchronisations of one training step (`torch.cuda.set_sync_debug_mode`), each
named by the line that asked for it. Writes bench/gpu_check.json; `--table` prints the README table from it.

    bash bench/gpu_check.sh            # refuses without a GPU
    python bench/gpu_check.py --table

The data are rehearsal fixtures at the real resolutions (bench/rehearsal.py), the ImageNet weights random stand-ins:
the steps measure time, memory and synchronisations, not accuracy. Step times exclude data loading (each batch is
read before its step is timed) and include everything else a `Trainer.train_step` does, fp16 autocast,
the gradient scaler and channels_last included (`device=auto` on a GPU).
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from rehearsal import imagenet_stand_in, parent_of, write_data  # noqa: E402
from tauda.config import apply_overrides, get_preset  # noqa: E402
from tauda.loading import RandomStream, train_stream  # noqa: E402
from tauda.train import Trainer  # noqa: E402

RUNS = [f"gta5-{m}-{s}" for m in ("bisenet", "deeplabv2") for s in ("source", "minent", "stage1", "stage2")]
RUNS += ["crosscity-rome-bisenet-source", "crosscity-rome-bisenet-stage1"]


def machine() -> dict:
    p = torch.cuda.get_device_properties(0)
    return dict(gpu=p.name, memory_gb=round(p.total_memory/1024**3, 1), torch=torch.__version__,
                cuda=torch.version.cuda, date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def cuda_tests(timeout: int = 300) -> dict:
    "`pytest -m cuda` on tests/test_cuda.py: the exit status and the summary line."
    done = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                           str(ROOT/"tests"/"test_cuda.py")], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    lines = done.stdout.strip().splitlines()
    return dict(rc=done.returncode, summary=lines[-1] if lines else "", tail="" if done.returncode == 0
                else done.stdout[-3000:] + done.stderr[-2000:])


def count_syncs(step) -> Counter:
    "The synchronising CUDA operations `step()` asks for, by `file:line` of the Python code that asked."
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try: step()
        finally: torch.cuda.set_sync_debug_mode("default")
    return Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message))


def measure(name: str, work: Path, weights: dict, steps: int, warmup: int) -> dict:
    "Warm-up steps, then `steps` timed steps of preset `name`, peak memory, and one step's synchronisations."
    cfg, out = get_preset(name), work/"gpu"/name
    sets = [f"data_root={work/'data'}", "device=cuda", f"schedule.iterations={steps + warmup + 2}",
            "log.tensorboard=false"]
    if cfg.model.weights == "imagenet": sets.append(f"model.weights={weights[cfg.model.name]}")
    if parent_of(name): sets.append(f"init={work/'gpu'/parent_of(name)/'checkpoints'/'last.pt'}")
    trainer = Trainer(apply_overrides(cfg, sets), out, progress=False)
    streams = [train_stream(d, trainer.cfg, s, 0) for d, s in ((trainer.source_train, RandomStream.SOURCE),
                                                               (trainer.target_train, RandomStream.TARGET)) if d]
    batch = lambda: [next(s) for s in streams]
    for _ in range(warmup): trainer.train_step(*batch())
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        b = batch()
        torch.cuda.synchronize(); start = time.perf_counter()
        trainer.train_step(*b)
        torch.cuda.synchronize(); times.append(time.perf_counter() - start)
    b = batch()
    sites = count_syncs(lambda: trainer.train_step(*b))
    trainer.save(trainer.last_checkpoint)  # the next stage starts from it
    for s in streams: s.close()
    return dict(steps=steps, step_ms=round(1000*statistics.median(times), 1), step_ms_max=round(1000*max(times), 1),
                peak_gb=round(torch.cuda.max_memory_allocated()/1024**3, 2), amp=str(trainer.amp),
                crop=list(cfg.data.crop), syncs_per_step=sum(sites.values()), sync_sites=dict(sites))


def table(report: dict) -> str:
    "The README table."
    m = report["machine"]
    lines = [f"{m['gpu']} ({m['memory_gb']} GB), torch {m['torch']}, CUDA {m['cuda']}, {m['date']}; "
             f"`pytest -m cuda`: {report['cuda_tests']['summary']}", "",
             "| preset | crop | step (ms, median) | peak GPU memory (GB) | device-to-host syncs per step |",
             "|---|---|---|---|---|"]
    for name, r in report["runs"].items():
        if "error" in r: lines.append(f"| `{name}` | – | failed: {r['error'][:80]} | – | – |"); continue
        lines.append(f"| `{name}` | {'×'.join(map(str, r['crop']))} | {r['step_ms']} | {r['peak_gb']} | "
                     f"{r['syncs_per_step']} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/tauda-gpu-check", help="fixture data, weights and runs")
    ap.add_argument("--out", default=str(BENCH/"gpu_check.json"))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--table", action="store_true", help="print the README table from --out and stop")
    args = ap.parse_args()
    if args.table: return print(table(json.loads(Path(args.out).read_text())))
    if not torch.cuda.is_available(): raise SystemExit("gpu_check: no CUDA GPU is visible")
    start, work = time.perf_counter(), Path(args.work)
    report = dict(machine=machine(), cuda_tests=cuda_tests(), runs={})
    print(f"pytest -m cuda: {report['cuda_tests']['summary']}", flush=True)
    write_data(work/"data")
    weights = {"deeplabv2": imagenet_stand_in("resnet101", work/"resnet101.pth"),
               "bisenet": imagenet_stand_in("resnet18", work/"resnet18.pth")}
    for name in RUNS:
        try: report["runs"][name] = measure(name, work, weights, args.steps, args.warmup)
        except Exception as e:  # noqa: BLE001 -- a failed run is recorded, the others still run
            report["runs"][name] = dict(error=f"{type(e).__name__}: {e}")
        torch.cuda.empty_cache()
        print(name, report["runs"][name], flush=True)
    report["seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(table(report))
    print(f"wrote {args.out} ({report['seconds']:.0f} s)")
    failed = report["cuda_tests"]["rc"] != 0 or any("error" in r for r in report["runs"].values())
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
