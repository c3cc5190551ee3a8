"""UFL with the adaptive-threshold update vs ADVENT's entropy loss, forward + backward, 19-class 512×1024 logits, CPU.

    python bench/bench_ufl.py [--repeats 5] [--height 512 --width 1024]

Prints milliseconds per call (best of the repeats) and the ratio to the entropy loss. The UFL reads two logit
tensors (weak, strong) where the entropy loss reads one, so about 2× is the floor.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from tauda.entropy import entropy_loss
from tauda.ufl import AdaptiveThreshold, ufl_loss


def best_of(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); fn(); times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = (1, args.classes, args.height, args.width)
    weak = (torch.randn(shape)*3).requires_grad_()
    strong = (torch.randn(shape)*3).requires_grad_()
    valid = torch.ones(shape[0], *shape[2:], dtype=torch.bool)
    rule = AdaptiveThreshold(args.classes)

    def entropy_step():
        entropy_loss(weak).backward()

    def threshold_step():
        return rule.update(weak.detach().softmax(1), valid)

    def ufl_step():
        mask = threshold_step()
        loss = ufl_loss(weak, strong, mask)
        if loss is not None: loss.backward()

    steps = [("entropy fwd+bwd", entropy_step), ("threshold update", threshold_step),
             ("ufl+threshold fwd+bwd", ufl_step)]
    results = {name: 1000*best_of(fn, args.repeats) for name, fn in steps}
    results["ratio ufl/entropy"] = results["ufl+threshold fwd+bwd"]/results["entropy fwd+bwd"]
    print(f"logits {list(shape)}, {torch.get_num_threads()} threads")
    for k, v in results.items(): print(f"{k:>24}: {v:8.1f}" + ("" if k.startswith("ratio") else " ms"))
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))
    if args.json: Path(args.json).write_text(json.dumps({k: round(v, 3) for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
