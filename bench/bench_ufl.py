"""UFL with the adaptive-threshold update vs ADVENT's entropy loss, forward + backward, on CPU, by share of kept pixels.

    python bench/bench_ufl.py [--kept 0.2 0.5 0.9] [--batch 1 --height 256 --width 512] [--repeats 9] [--fresh-pages] [--json F]

What is measured, per case (milliseconds, the best of `--repeats` rounds; in each round the three steps run one
after the other, so all three see the same machine load, and the ratio is taken of the best times):

* `entropy fwd+bwd`: `entropy_loss(weak).backward()` — the mean normalised entropy over *all* pixels of the weak
  logits `[B, 19, H, W]` and its gradient;
* `threshold update`: what the trainer does once per step before the loss, `confidence_mask(rule, weak, valid)`
  with the adaptive rule: one pass over the weak logits (`weak_pass`: max, exp, sum, top class), then the rule's
  `select` (every pixel valid), always from the same starting thresholds (τ0 = 0.8, restored before each call, so
  every call does the same work);
* `ufl+threshold fwd+bwd`: that threshold update, then `ufl_loss(weak, strong, mask, weak_pass=…).backward()` —
  the UFL on the weak + strong pair, reusing the update's pass (default options: no class weights, `adaptive`
  focal factor with its gradient, γ = 2), and the gradients of both views;
* `ratio ufl/entropy`: the third time over the first (the UFL reads two logit tensors where the entropy loss
  reads one, but computes only the kept pixels when few pass).

The logits of a case are unsure predictions (normal draws, σ = 2: about 6 % of the pixels pass) of which a share
is made confident, as late in training (one random class raised by 6 to 16: confidences from about 0.6 to
1 − 1e-6, a third of them above 0.9997); that share is found by bisection so that the share of pixels the
threshold update keeps (`kept share`, measured and reported) is the requested `--kept` fraction. The strong view
is the weak logits plus normal noise (σ = 1). `--clock cpu` times this thread's CPU time instead of wall time.

Memory: each step allocates tensors of about 10 MB, which glibc maps fresh from the kernel and gives back on
free, so every step also pays the page faults of its fresh pages — a cost that swung the entropy loss's best time
from 12 to 56 ms between identical runs. On Linux the script therefore re-runs itself with glibc told to keep
freed memory (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`), as a long training process effectively does;
`--fresh-pages` measures with the page faults.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from tauda.entropy import entropy_loss
from tauda.ufl import AdaptiveThreshold, confidence_mask, ufl_loss


def kept_share(logits, valid, rule, start) -> float:
    "Share of the pixels of `logits` that one update from thresholds `start` keeps."
    rule.load_state_dict(start)
    return confidence_mask(rule, logits, valid)[0].double().mean().item()


def logits_keeping(share, shape, valid, rule, start, steps=20):
    "Logits `[B, C, H, W]`: unsure ones (normal, σ = 2) with a confident part, sized so that about `share` pass."
    B, C, H, W = shape
    base = 2*torch.randn(shape)                                               # alone: few pixels pass
    top = torch.randint(C, (B, 1, H, W))
    margin = torch.zeros(shape).scatter_(1, top, 6 + 10*torch.rand(B, 1, H, W))  # +6 .. +16 on one class
    draw = torch.rand(B, 1, H, W)
    lo, hi = 0.0, 1.0                                                         # share of confident pixels
    for _ in range(steps):
        mid = (lo + hi)/2
        if kept_share(base + margin*(draw < mid), valid, rule, start) < share: lo = mid
        else: hi = mid
    return base + margin*(draw < (lo + hi)/2)


def case(share, args) -> dict:
    "Times (ms) of the three steps and their ratio on logits of which about `share` of the pixels pass."
    torch.manual_seed(0)
    shape = (args.batch, args.classes, args.height, args.width)
    valid = torch.ones(shape[0], *shape[2:], dtype=torch.bool)
    rule = AdaptiveThreshold(args.classes)
    start = rule.state_dict()
    logits = logits_keeping(share, shape, valid, rule, start)
    weak = logits.clone().requires_grad_()
    strong = (logits + torch.randn(shape)).requires_grad_()

    def entropy_step():
        entropy_loss(weak).backward()

    def threshold_step():
        rule.load_state_dict(start)
        return confidence_mask(rule, weak, valid)

    def ufl_step():
        mask, shared = threshold_step()
        loss = ufl_loss(weak, strong, mask, weak_pass=shared)
        if loss is not None: loss.backward()

    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    steps = {"entropy fwd+bwd": entropy_step, "threshold update": threshold_step, "ufl+threshold fwd+bwd": ufl_step}
    for fn in steps.values(): fn()                                            # warm-up
    times = {name: [] for name in steps}
    for _ in range(args.repeats):                                             # interleaved: the same load for all
        for name, fn in steps.items():
            weak.grad = strong.grad = None
            start_t = clock(); fn(); times[name].append(clock() - start_t)
    result = {"kept": share, "kept share": round(kept_share(weak.detach(), valid, rule, start), 4)}
    result.update({name: round(1000*min(t), 3) for name, t in times.items()})
    result["ratio ufl/entropy"] = round(result["ufl+threshold fwd+bwd"]/result["entropy fwd+bwd"], 3)
    return result


KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**34)}


def keep_freed_memory():
    "Re-run this script with glibc keeping freed memory (no fresh page faults per step), unless it already does."
    if sys.platform.startswith("linux") and any(k not in os.environ for k in KEEP_FREED_MEMORY):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **KEEP_FREED_MEMORY})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kept", type=float, nargs="+", default=[0.2, 0.5, 0.9], help="shares of kept pixels")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this thread's CPU time (steadier on a shared machine)")
    parser.add_argument("--fresh-pages", action="store_true",
                        help="let glibc return freed memory, so each step also pays fresh page faults")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not args.fresh_pages: keep_freed_memory()
    shape = [args.batch, args.classes, args.height, args.width]
    header = dict(logits=shape, threads=torch.get_num_threads(), torch=torch.__version__,
                  cpu_capability=torch.backends.cpu.get_cpu_capability(), repeats=args.repeats, clock=args.clock,
                  freed_memory="returned" if args.fresh_pages else "kept")
    print(", ".join(f"{k} {v}" for k, v in header.items()))
    cases = []
    for share in args.kept:
        cases.append(case(share, args))
        print("  ".join(f"{k}: {v}" + (" ms" if k.endswith("bwd") or k.endswith("update") else "")
                        for k, v in cases[-1].items()), flush=True)
    if args.json: Path(args.json).write_text(json.dumps({**header, "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
