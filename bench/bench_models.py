"""Benchmark of the tauda models on CPU: parameters, FLOPs per image at paper size, and measured
forward/backward time and peak memory at a reduced size.

    python bench/bench_models.py                     # all models, 256×512, batch 1
    python bench/bench_models.py --size 128 256 --models tiny bisenet --threads 1 --json out.json

FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` on the meta device (no memory, no
compute; a multiply-add counts as 2 FLOPs). Each timed model runs in its own subprocess, so that the
peak resident memory (`ru_maxrss`) belongs to that model alone.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from tauda.models import build_model

MODELS = ("tiny", "bisenet", "deeplabv2")
PAPER_SIZE = (512, 1024)      # DeepLabV2 and BiSeNet training crop; Cityscapes evaluation at 1024×512 (W×H)
TINY_SIZE = (64, 128)         # the tiny net's own crop on the mini benchmark


def maxrss_mib() -> float:
    "Peak resident memory of this process so far, MiB (Linux reports KiB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_flops(name: str, size, num_classes: int = 19) -> dict:
    "GFLOPs per image: eval forward (main head), training forward (all heads) and training forward+backward."
    with torch.device("meta"):
        model = build_model(name, num_classes)
        x = torch.empty(1, 3, *size)
        with FlopCounterMode(display=False) as eval_count, torch.no_grad():
            model.eval()(x)
        with FlopCounterMode(display=False) as fwd_count:
            outs = model.train()(x)
        with FlopCounterMode(display=False) as bwd_count:
            sum(o.mean() for o in outs).backward()
    g = lambda c: c.get_total_flops() / 1e9
    return dict(flops_size=list(size), gflops_eval=g(eval_count), gflops_train_fwd=g(fwd_count),
                gflops_train_fwd_bwd=g(fwd_count) + g(bwd_count))


def time_one(name: str, size, batch: int, reps: int) -> dict:
    "Wall time of a training step's forward and backward and of an eval forward, and peak memory, on CPU."
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_model(name, 19)
    build_s = time.perf_counter() - t0
    rss_built = maxrss_mib()
    x = torch.rand(batch, 3, *size)
    fwd, bwd, evl = [], [], []
    for i in range(reps + 1):                  # the first iteration warms up and is not counted
        model.train()
        t0 = time.perf_counter(); outs = model(x); t1 = time.perf_counter()
        sum(o.mean() for o in outs).backward(); t2 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            t3 = time.perf_counter(); model(x); t4 = time.perf_counter()
        if i: fwd.append(t1 - t0); bwd.append(t2 - t1); evl.append(t4 - t3)
    med = lambda v: sorted(v)[len(v)//2]
    return dict(size=list(size), batch=batch, threads=torch.get_num_threads(), build_s=build_s,
                train_fwd_s=med(fwd), train_bwd_s=med(bwd), eval_fwd_s=med(evl),
                peak_rss_mib=maxrss_mib(), rss_after_build_mib=rss_built)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--size", nargs=2, type=int, default=(256, 512), metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the timed runs (default: torch's choice)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--one", help=argparse.SUPPRESS)    # internal: time one model in this process
    args = ap.parse_args()
    if args.one:
        if args.threads: torch.set_num_threads(args.threads)
        print(json.dumps(time_one(args.one, args.size, args.batch, args.reps)))
        return
    results = {}
    for name in args.models:
        with torch.device("meta"): params = sum(p.numel() for p in build_model(name, 19).parameters())
        flops = count_flops(name, TINY_SIZE if name == "tiny" else PAPER_SIZE)
        run = subprocess.run([sys.executable, __file__, "--one", name, "--size", *map(str, args.size),
                              "--batch", str(args.batch), "--reps", str(args.reps), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        results[name] = dict(params=params, **flops, **json.loads(run.stdout.strip().splitlines()[-1]))
        r = results[name]
        print(f"{name:10s} {r['params']/1e6:7.2f} M params | {r['gflops_eval']:7.1f} GFLOPs eval, "
              f"{r['gflops_train_fwd_bwd']:7.1f} train fwd+bwd at {r['flops_size'][0]}×{r['flops_size'][1]} | "
              f"CPU {r['size'][0]}×{r['size'][1]}, batch {r['batch']}, {r['threads']} threads: "
              f"train fwd {r['train_fwd_s']:.2f} s, "
              f"bwd {r['train_bwd_s']:.2f} s, eval fwd {r['eval_fwd_s']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB "
              f"({r['rss_after_build_mib']:.0f} after build)", flush=True)
    if args.json:
        with open(args.json, "w") as f: json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
