"""Full-size rehearsal of every paper preset on the CPU: 1-2 iterations each, at its real crop, through `tauda train`
and `tauda eval`, on fixture datasets written at the real resolutions. Writes bench/rehearsal.json.

    python bench/rehearsal.py                      # every paper preset (about 1.5 h on 2 CPU cores, 1 thread)
    python bench/rehearsal.py --only gta5-bisenet  # the presets whose names start with a prefix
    python bench/rehearsal.py --table              # the README table from bench/rehearsal.json

Fixtures (random pixels, every label id in every label): GTA5 1914×1052 (2 images), SYNTHIA 1280×760 (2),
Cityscapes 2048×1024 (train 2, val 1), NTHU CrossCity 2048×1024 (each city: Train 1, Test 1). ImageNet weights are
stood in for by torchvision-format ResNets with random weights whose BatchNorm statistics were measured on random
images (frozen BatchNorm of a random ResNet-101 would let its activations overflow). Each run is a child process:
its wall time and peak resident memory (`ru_maxrss`, which includes its data-loading workers) are its own. The
step time comes from the run's `log.jsonl` (`images_per_s` at each iteration): DeepLabV2 runs one iteration,
BiSeNet two (the second, warm step is reported). FLOPs per step are counted by `torch.utils.flop_counter` on the
`meta` device (the model's forward and backward over the step's images, and the frozen teacher in stage two);
the projection to a GPU is `--gpu-peak` × `--utilisation` for compute, bounded below by data loading at the
per-worker rates of bench/results.json (4 workers per domain), see `project`.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from run_all import machine  # noqa: E402
from tauda.config import PRESETS, get_preset  # noqa: E402
from tauda.crosscity import CITIES  # noqa: E402
from tauda.data import write_fixture  # noqa: E402
from tauda.labels import get_protocol  # noqa: E402
from tauda.models import build_model  # noqa: E402

STAGES = ("source", "minent", "stage1", "stage2")
PARTS = {"source": 1, "minent": 2, "stage1": 3, "stage2": 4}  # images per source image in one forward pass
SIZES = {"gta5": (1052, 1914), "synthia": (760, 1280), "cityscapes": (1024, 2048), "crosscity": (1024, 2048)}
EVAL_IMAGES = {"cityscapes": 500, "crosscity": 100}   # Cityscapes val; each NTHU city's Test split
GB = 1024**2  # ru_maxrss is in KiB: KiB → GiB


def paper_presets() -> list:
    "Every paper preset, chains in order (a stage after the run it starts from), BiSeNet first (fast)."
    names = [n for n in PRESETS if not n.startswith("mini-")]
    return sorted(names, key=lambda n: ("deeplabv2" in n, n.rsplit("-", 1)[0], STAGES.index(n.rsplit("-", 1)[1])))


def parent_of(name: str) -> str | None:
    "The preset whose checkpoint `name` starts from (`init`), or None."
    chain, stage = name.rsplit("-", 1)
    return {"stage1": f"{chain}-source", "stage2": f"{chain}-stage1"}.get(stage)


def write_data(root: Path):
    "Fixture datasets at the real resolutions, 1-2 images per split."
    if (root/".complete").is_file(): return
    write_fixture("gta5", root/"gta5", n=2, size=SIZES["gta5"])
    write_fixture("synthia", root/"synthia", n=2, size=SIZES["synthia"])
    write_fixture("cityscapes", root/"cityscapes", n=2, size=SIZES["cityscapes"], split="train", seed=1)
    write_fixture("cityscapes", root/"cityscapes", n=1, size=SIZES["cityscapes"], split="val", seed=2)
    for k, city in enumerate(CITIES):
        for split in ("train", "test"):
            write_fixture("crosscity", root/"crosscity", n=1, size=SIZES["crosscity"], split=split, city=city, seed=k)
    (root/".complete").touch()


def imagenet_stand_in(arch: str, path: Path) -> Path:
    "A torchvision-format `arch` with random weights and BatchNorm statistics measured on random normalised images."
    if path.is_file(): return path
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.get_model(arch)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d): m.momentum = None  # a plain average over the batches
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    with torch.no_grad():
        for _ in range(2): net.train()((torch.rand(4, 3, 224, 224) - mean)/std)
    torch.save(net.state_dict(), path)
    return path


def run_child(argv: list, log: Path, threads: int) -> dict:
    "Run `argv` as a child (first in line for the out-of-memory killer); exit status, wall time, peak memory."
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    available = _mem_available_gb()
    start = time.perf_counter()
    with open(log, "w") as out:
        child = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env,
                                 preexec_fn=_first_to_go)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = rc = os.waitstatus_to_exitcode(status)
    return dict(rc=rc, wall_s=round(time.perf_counter() - start, 1), peak_rss_gb=round(usage.ru_maxrss/GB, 2),
                mem_available_before_gb=available, tail=log.read_text()[-1500:] if rc else "")


def _first_to_go():
    try: Path("/proc/self/oom_score_adj").write_text("1000")  # under memory pressure, this run goes, no one else's
    except OSError: pass


def _mem_available_gb():
    info = Path("/proc/meminfo")
    if not info.is_file(): return None
    kb = int(re.search(r"MemAvailable:\s+(\d+)", info.read_text())[1])
    return round(kb/GB, 1)


def step_seconds(run: Path) -> float | None:
    "The duration of the last logged step, from `log.jsonl`'s cumulative `images_per_s` (batch 1, one process)."
    lines = [json.loads(l) for l in (run/"log.jsonl").read_text().splitlines() if "images_per_s" in l]
    ends = [l["iteration"]/l["images_per_s"] for l in lines]  # seconds since the loop started, at each logged step
    return round(ends[-1] - (ends[-2] if len(ends) > 1 else 0.0), 2) if ends else None


def rehearse(name: str, work: Path, weights: dict, threads: int, done: dict) -> dict:
    "Train `name` for 1-2 iterations (its chain's parent first), then evaluate its checkpoint."
    cfg, run = get_preset(name), work/"runs"/name
    iterations = 1 if cfg.model.name == "deeplabv2" else 2
    # a learning rate of 1e-9: a real step on random stand-in weights can blow a weight up (DeepLabV2's stage one
    # moved one to 204) so that the next stage's forward overflows; the step's time and memory do not depend on it
    sets = [f"schedule.iterations={iterations}", "schedule.log_every=1", "optim.lr=1e-9"]
    if cfg.model.weights == "imagenet": sets.append(f"model.weights={weights[cfg.model.name]}")
    parent = parent_of(name)
    if parent:
        if not done.get(parent, {}).get("ran"): return dict(ran=False, reason=f"{parent} did not run")
        sets.append(f"init={work/'runs'/parent/'checkpoints'/'last.pt'}")
    argv = [sys.executable, "-m", "tauda.cli", "train", name, "--data-root", str(work/"data"), "--out", str(run),
            "--quiet"] + [a for s in sets for a in ("--set", s)]
    shutil.rmtree(run, ignore_errors=True)  # the rehearsal's own earlier run of this preset: trained afresh
    run.mkdir(parents=True)
    train = run_child(argv, work/f"{name}.train.log", threads)
    record = dict(ran=train["rc"] == 0, iterations=iterations, train=train)
    if not record["ran"]: return record
    record["step_s"] = step_seconds(run)
    evaluation = run_child([sys.executable, "-m", "tauda.cli", "eval", str(run/"checkpoints"/"last.pt"), "--out",
                            str(run/"eval")], work/f"{name}.eval.log", threads)
    record["eval"] = evaluation
    if evaluation["rc"] == 0:
        report = json.loads((run/"eval"/"eval.json").read_text())["target"]
        record["eval"]["miou_random_weights"] = report["miou"]
        record["eval"]["label_size"] = list(SIZES[cfg.data.target][::-1])  # (w, h): the full resolution
    record["ran"] = record["ran"] and evaluation["rc"] == 0
    return record


def count_flops(name: str) -> dict:
    "FLOPs of one training step and of evaluating one test image of preset `name`, counted on the meta device."
    from torch.utils.flop_counter import FlopCounterMode
    cfg, method = get_preset(name), get_preset(name).method.name
    options = {k: v for k, v in vars(cfg.model).items() if k not in ("name", "weights")}
    with torch.device("meta"):
        model = build_model(cfg.model.name, get_protocol(cfg.data.protocol).num_classes, **options)
    b, (h, w) = cfg.data.batch_size, cfg.data.crop
    with FlopCounterMode(display=False) as step:
        out = model.train()(torch.empty(PARTS[method]*b, 3, h, w, device="meta"))
        sum(o.float().sum() for o in out).backward()
        if method == "stage2":  # the frozen stage-one model labels the target images
            with torch.no_grad(): model.eval()(torch.empty(b, 3, h, w, device="meta"))
    size = cfg.data.target_size or SIZES[cfg.data.target]  # the input of the evaluation
    with FlopCounterMode(display=False) as evaluation, torch.no_grad():
        model.eval()(torch.empty(1, 3, *size, device="meta"))
    return dict(step_tflop=round(step.get_total_flops()/1e12, 3),
                eval_tflop=round(evaluation.get_total_flops()/1e12, 4),
                images_per_step=PARTS[method]*b, eval_input=list(size))


def loading_rates() -> dict:
    "Images per second per data-loading worker, by layout, from bench/results.json (bench_data.py)."
    results = json.loads((BENCH/"results.json").read_text())["data"]["results"]
    rates = {r["layout"]: r["tauda_images_per_s"] for r in results}
    rates["crosscity"] = rates["cityscapes"]  # 2048×1024 PNGs as Cityscapes (not measured on their own)
    return rates


def project(name: str, flops: dict, rates: dict, peak: float, utilisation: float, workers: int = 4) -> dict:
    "GPU time of the preset's whole schedule: per step max(compute, loading) plus stage two's long-tail reads."
    cfg = get_preset(name)
    d, b = cfg.data, cfg.data.batch_size
    compute = flops["step_tflop"]*1e12/(peak*utilisation)
    loading = b/(workers*rates[d.source])
    if cfg.method.name != "source": loading = max(loading, b/(workers*rates[d.target]))
    long_tail = 0.0
    if cfg.method.name == "stage2":  # pasted classes come from source images read in the main process
        low, high = cfg.method.mixing.long_tail_classes
        long_tail = cfg.method.mixing.long_tail_p*(low + high)/2*b/rates[d.source]
    step = max(compute, loading) + long_tail
    evaluation = EVAL_IMAGES[d.target]*(flops["eval_tflop"]*1e12/(peak*utilisation) + 1/rates[d.target])
    hours = (cfg.schedule.iterations*step + evaluation)/3600
    return dict(step_ms=round(1000*step, 1), bound="compute" if compute >= loading else "data loading",
                iterations=cfg.schedule.iterations, eval_images=EVAL_IMAGES[d.target], hours=round(hours, 2))


def table(results: dict) -> str:
    "The README table: per preset, the rehearsal on the CPU and the projection to one GPU."
    head = ("| preset | crop | CPU: step (s) | CPU: peak memory (GB) | CPU: full-resolution evaluation (s, GB) | "
            "TFLOP per step | GPU: projected step (ms), bound | GPU: projected total (h) |")
    lines = [head, "|" + "---|"*8]
    for name, r in results["presets"].items():
        cfg, f, p = get_preset(name), r["flops"], r["projection"]
        crop = "×".join(map(str, cfg.data.crop))
        if r.get("ran"):
            cpu = f"{r['step_s']} | {r['train']['peak_rss_gb']} | {r['eval']['wall_s']}, {r['eval']['peak_rss_gb']}"
        else: cpu = "did not run | – | –"
        lines.append(f"| `{name}` | {crop} | {cpu} | {f['step_tflop']} | {p['step_ms']}, {p['bound']} | "
                     f"{p['hours']} ({p['iterations']:,} it.) |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(Path(os.environ.get("TMPDIR", "/tmp"))/"tauda-rehearsal"),
                    help="fixture data, runs and logs (kept; written once)")
    ap.add_argument("--out", default=str(BENCH/"rehearsal.json"))
    ap.add_argument("--only", nargs="*", default=[], help="presets whose names start with one of these")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run (default 1)")
    ap.add_argument("--gpu-peak", type=float, default=989e12, help="dense fp16 FLOP/s of the GPU (H200: 989e12)")
    ap.add_argument("--utilisation", type=float, default=0.2, help="share of the peak a step achieves (0.2)")
    ap.add_argument("--table", action="store_true", help="print the README table from --out and stop")
    args = ap.parse_args()
    out = Path(args.out)
    if args.table: return print(table(json.loads(out.read_text())))
    work = Path(args.work)
    (work/"runs").mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.update(machine=dict(machine(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                                threads=args.threads),
                   assumptions=dict(gpu_peak_flops=args.gpu_peak, utilisation=args.utilisation,
                                    loading_images_per_s_per_worker=loading_rates(), workers_per_domain=4,
                                    eval_images=EVAL_IMAGES),
                   fixtures={k: list(v[::-1]) for k, v in SIZES.items()})
    presets = results.setdefault("presets", {})
    t0 = time.perf_counter()
    write_data(work/"data")
    weights = {"deeplabv2": imagenet_stand_in("resnet101", work/"resnet101.pth"),
               "bisenet": imagenet_stand_in("resnet18", work/"resnet18.pth")}
    print(f"fixtures and weights in {work} ({time.perf_counter() - t0:.0f} s)", flush=True)
    for name in paper_presets():
        if args.only and not name.startswith(tuple(args.only)): continue
        record = rehearse(name, work, weights, args.threads, presets)
        record["flops"] = count_flops(name)
        record["projection"] = project(name, record["flops"], loading_rates(), args.gpu_peak, args.utilisation)
        presets[name] = record
        results["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        out.write_text(json.dumps(results, indent=1))
        print(f"{name}: {'ran' if record['ran'] else 'FAILED'}, step {record.get('step_s')} s, "
              f"peak {record.get('train', {}).get('peak_rss_gb')} GB", flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
