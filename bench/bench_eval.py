"""Time tauda's label-PNG evaluation against the official cityscapesscripts evaluation on the same files.

Writes N pairs of Cityscapes-size (1024x2048) ground-truth and prediction labelId PNGs, then times
(decoding included) `tauda.metrics.evaluate_label_pngs`, cityscapesscripts' `evaluateImgLists`, and the
bare PNG decoding of the same files (the floor), best of R repeats. Prints the times, the ratios, and
checks that both evaluations give the same mIoU.

    python bench/bench_eval.py [--n 20] [--repeats 3] [--dir DIR]
"""
import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tauda.labels import CITYSCAPES19
from tauda.metrics import evaluate_label_pngs


def write_pairs(root: Path, n: int, size=(1024, 2048), block=32, seed=0):
    "Blocky labelId maps (every labelId 0..33), and predictions with 30% of the blocks wrong plus 2% pixel noise."
    rng, (h, w) = np.random.default_rng(seed), size
    gts, preds = [], []
    for i in range(n):
        grid = rng.integers(0, 34, (h//block, w//block))
        gt = np.kron(grid, np.ones((block, block), dtype=np.int64)).astype(np.uint8)  # [H, W]
        wrong = np.kron(rng.random(grid.shape) < 0.3, np.ones((block, block), dtype=bool))
        pred = np.where(wrong, np.kron(rng.integers(0, 34, grid.shape), np.ones((block, block), dtype=np.int64)), gt)
        noise = rng.random((h, w)) < 0.02
        pred = np.where(noise, rng.integers(0, 34, (h, w)), pred).astype(np.uint8)
        gts.append(root/"gtFine/val/bench"/f"bench_{i:06d}_000019_gtFine_labelIds.png")
        preds.append(root/"pred"/f"bench_{i:06d}_000019_pred.png")
        for path, ids in ((gts[-1], gt), (preds[-1], pred)):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ids, mode="L").save(path)
    return preds, gts


def decode_only(preds, gts):
    return sum(int(np.asarray(Image.open(p)).shape[0]) for pair in zip(preds, gts) for p in pair)


def official(preds, gts):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
    args = copy.copy(cs_eval.args)
    args.evalInstLevelScore, args.evalPixelAccuracy, args.JSONOutput, args.quiet = False, False, False, True
    return cs_eval.evaluateImgLists([str(p) for p in preds], [str(p) for p in gts], args)


def best_time(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter(); result = fn(); times.append(time.perf_counter() - t0)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", help="where to write the files (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench_eval_"))
    preds, gts = write_pairs(root, args.n)
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
    print(f"{args.n} pairs of 1024x2048 labelId PNGs in {root}; cityscapesscripts C extension: {cs_eval.CSUPPORT}")
    t_floor, _ = best_time(lambda: decode_only(preds, gts), args.repeats)
    t_tauda, cm = best_time(lambda: evaluate_label_pngs(preds, gts, CITYSCAPES19), args.repeats)
    t_cs, theirs = best_time(lambda: official(preds, gts), args.repeats)
    assert abs(cm.miou() - theirs["averageScoreClasses"]) < 1e-6, (cm.miou(), theirs["averageScoreClasses"])
    print(f"mIoU: tauda {cm.miou():.6f}, cityscapesscripts {theirs['averageScoreClasses']:.6f} (equal to 1e-6)")
    print(f"{'':28}{'total s':>9}{'ms/image':>10}{'x floor':>9}")
    for name, t in (("PNG decoding only (floor)", t_floor), ("tauda evaluate_label_pngs", t_tauda),
                    ("cityscapesscripts", t_cs)):
        print(f"{name:<28}{t:9.2f}{1000*t/args.n:10.1f}{t/t_floor:9.2f}")
    print(f"cityscapesscripts / tauda: {t_cs/t_tauda:.1f}x")
    results = dict(n=args.n, miou_tauda=cm.miou(), miou_cityscapesscripts=theirs["averageScoreClasses"],
                   decode_only_s=round(t_floor, 3), tauda_s=round(t_tauda, 3), cityscapesscripts_s=round(t_cs, 3),
                   tauda_over_floor=round(t_tauda/t_floor, 2), cityscapesscripts_over_tauda=round(t_cs/t_tauda, 2),
                   cityscapesscripts_c_extension=bool(cs_eval.CSUPPORT))
    if args.json: Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
