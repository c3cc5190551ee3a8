"""Benchmark of one training step per method on CPU: MinEnt, stage one and stage two for each model at a
reduced size, on the same minicity batches (resized to the benchmark size), with the share of the step
spent in the strong view, the logit warp, the threshold update, the target loss, the teacher and the mixing.

    python bench/bench_steps.py                                  # tiny 64×128 ×8, BiSeNet and DeepLabV2 128×256 ×1
    python bench/bench_steps.py --models tiny --reps 10 --json out.json

The UFL needs one extra forward (and backward) of the strong view, so a stage-one step should cost about
1.5× a MinEnt step (three images per source image instead of two); stage two adds the frozen teacher's
forward of the target batch and the mixed images. The shares come from `torch.profiler` and the
`record_function` labels of `tauda.train` (forward-side CPU time of each labelled block; the backward of
the losses is counted in the step, not in the labels). Each model runs in its own subprocess so that the
peak resident memory (`ru_maxrss`) is that model's alone.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from tauda.config import apply_overrides, get_preset
from tauda.loading import RandomStream, train_stream
from tauda.methods import build_method
from tauda.train import Trainer

SETTINGS = {  # model: (size (H, W), batch per domain)
    "tiny": ((64, 128), 8),
    "bisenet": ((128, 256), 1),
    "deeplabv2": ((128, 256), 1),
}
LABELS = ("tauda.strong_view", "tauda.warp", "tauda.threshold", "tauda.target_loss", "tauda.teacher", "tauda.mix")
METHODS = ("minent", "stage1", "stage2")


def trainer_for(model: str, out: Path) -> Trainer:
    (h, w), batch = SETTINGS[model]
    sets = [f"model.name={model}", "model.weights=", f"data.source_size=[{h},{w}]", f"data.target_size=[{h},{w}]",
            f"data.crop=[{h},{w}]", f"data.batch_size={batch}", "log.tensorboard=false", "device=cpu"]
    if model == "deeplabv2": sets.append("model.freeze_bn=false")  # random weights: see tests/test_training.py
    return Trainer(apply_overrides(get_preset("mini-minent"), sets), out, progress=False)


def methods_for(trainer: Trainer, out: Path) -> dict:
    "MinEnt, stage one and stage two sharing the trainer's model (stage two's teacher: a copy of it)."
    trainer.save(out/"init.pt")
    found = {}
    for name in METHODS:
        cfg = apply_overrides(get_preset(f"mini-{name}") if name != "minent" else get_preset("mini-minent"), [])
        cfg.data, cfg.model, cfg.init = trainer.cfg.data, trainer.cfg.model, str(out/"init.pt")
        found[name] = build_method(cfg, trainer.protocol, trainer.device, trainer.source_train)
        found[name].on_start(trainer.model)
    return found


def time_steps(trainer, method, batches, reps: int) -> list:
    trainer.method = method
    times = []
    for i in range(reps + 1):                     # the first step warms up
        t0 = time.perf_counter(); trainer.train_step(*batches); times.append(time.perf_counter() - t0)
    return times[1:]


def shares(trainer, method, batches) -> dict:
    "Forward-side CPU time of each labelled block, as a share of one profiled step."
    trainer.method = method
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter(); trainer.train_step(*batches); step = time.perf_counter() - t0
    totals = {e.key: e.cpu_time_total/1e6 for e in prof.key_averages() if e.key in LABELS}
    return {k.split(".", 1)[1]: round(v/step, 4) for k, v in totals.items()}


def run_model(model: str, reps: int) -> dict:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = trainer_for(model, Path(tmp))
        methods = methods_for(trainer, Path(tmp))
        source = next(train_stream(trainer.source_train, trainer.cfg, RandomStream.SOURCE, 0))
        target = next(train_stream(trainer.target_train, trainer.cfg, RandomStream.TARGET, 0))
        # stage one's thresholds start at τ0 = 0.8; an untrained model passes few pixels, which would make the
        # loss cheap: lower them (below 1/C) so that the UFL works on every pixel, an upper bound of its cost
        for name in ("stage1", "stage2"): methods[name].rule.thresholds.fill_(0.05)
        medians, detail = {}, {}
        for name, method in methods.items():
            t = time_steps(trainer, method, (source, target), reps)
            medians[name] = sorted(t)[len(t)//2]
            detail[name] = shares(trainer, method, (source, target))
    (h, w), batch = SETTINGS[model]
    return dict(model=model, size=[h, w], batch=batch, threads=torch.get_num_threads(),
                step_s={k: round(v, 4) for k, v in medians.items()},
                ratio_to_minent={k: round(v/medians["minent"], 3) for k, v in medians.items()},
                shares=detail, peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, 1))


def print_table(results: list):
    print(f"{'model':<10}{'size':>10}{'batch':>6}  " + "".join(f"{m + ' s':>10}" for m in METHODS)
          + f"{'s1/ment':>9}{'s2/ment':>9}{'UFL+θ+warp (s1)':>17}{'peak MiB':>10}")
    for r in results:
        s = r["shares"]["stage1"]
        overhead = sum(s.get(k, 0) for k in ("warp", "threshold", "target_loss"))
        print(f"{r['model']:<10}{'×'.join(map(str, r['size'])):>10}{r['batch']:>6}  "
              + "".join(f"{r['step_s'][m]:>10.3f}" for m in METHODS)
              + f"{r['ratio_to_minent']['stage1']:>9.2f}{r['ratio_to_minent']['stage2']:>9.2f}{100*overhead:>16.1f}%"
              + f"{r['peak_rss_mib']:>10.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # run a single model in this process (used by the subprocesses)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_model(args.one, args.reps)))
        return
    results = []
    for model in args.models:
        done = subprocess.run([sys.executable, __file__, "--one", model, "--reps", str(args.reps)], capture_output=True,
                              text=True)
        if done.returncode: sys.exit(f"{model}: {done.stderr[-2000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print_table(results)
    for r in results: print(r["model"], "shares of the step:", {m: s for m, s in r["shares"].items()})
    if args.json: Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
