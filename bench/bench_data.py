"""Data loading speed per worker for each real layout at its protocol size, against a plain PIL baseline.

Writes N fixture samples at each dataset's native size in its exact on-disk layout (GTA5 1914×1052 with
palette labels, SYNTHIA 1280×760 with 16-bit labels, Cityscapes 2048×1024 with labelId PNGs), then times,
in this one process (= one DataLoader worker):

* tauda: `build_dataset(...)[i]` + the training `JointTransform` (decode image and label, resize to the
  protocol size, random scale, crop 512×1024, flip, to tensors, label ids → train ids);
* baseline: `PIL.Image.open(...).convert("RGB").resize(size)` for the image and a nearest resize of the
  label, then `torch.from_numpy` — no scale, crop or id mapping.

The fixture images are random noise, the worst case for PNG decoding; both sides read the same files.

    python bench/bench_data.py [--n 8] [--repeats 2] [--json out.json]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tauda.config import DataConfig
from tauda.data import build_dataset, write_fixture
from tauda.labels import get_protocol
from tauda.loading import JointTransform, Seeded

LAYOUTS = {  # layout: (native size (H, W), protocol, protocol size (H, W), split)
    "gta5": ((1052, 1914), "cityscapes19", (720, 1280), "train"),
    "synthia": ((760, 1280), "synthia16", (760, 1280), "train"),
    "cityscapes": ((1024, 2048), "cityscapes19", (512, 1024), "train"),
}


def tauda_items(dataset, transform, n):
    seeded = Seeded(dataset, transform)
    for i in range(n): seeded[(i, i)]


def baseline_items(dataset, size, n):
    h, w = size
    for image, label in zip(dataset.images[:n], dataset.labels[:n]):
        x = torch.from_numpy(np.array(Image.open(image).convert("RGB").resize((w, h), Image.BILINEAR))).permute(2, 0, 1)
        y = torch.from_numpy(np.asarray(Image.open(label).resize((w, h), Image.NEAREST)).astype(np.int64))


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # one DataLoader worker
    d = DataConfig()
    transform = JointTransform(d.crop, d.scales, d.flip)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout, (native, protocol, size, split) in LAYOUTS.items():
            root = Path(tmp)/layout
            write_fixture(layout, root, n=args.n, size=native, split=split)
            dataset = build_dataset(layout, root, split, get_protocol(protocol), size)
            t_tauda = best_time(lambda: tauda_items(dataset, transform, args.n), args.repeats)
            t_base = best_time(lambda: baseline_items(dataset, size, args.n), args.repeats)
            results.append(dict(layout=layout, native=list(native), size=list(size), n=args.n,
                                tauda_images_per_s=round(args.n/t_tauda, 2),
                                baseline_images_per_s=round(args.n/t_base, 2),
                                tauda_over_baseline_time=round(t_tauda/t_base, 2)))
    print(f"{'layout':<12}{'native':>11}{'→ size':>11}{'tauda img/s':>13}{'PIL img/s':>11}{'time ×':>8}")
    for r in results:
        print(f"{r['layout']:<12}{'×'.join(map(str, r['native'])):>11}{'×'.join(map(str, r['size'])):>11}"
              f"{r['tauda_images_per_s']:>13.1f}{r['baseline_images_per_s']:>11.1f}"
              f"{r['tauda_over_baseline_time']:>8.2f}")
    if args.json: Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
