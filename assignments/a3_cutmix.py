"""Assignment 3 — box mixing (CutMix) against cross-domain class mixing (CIM) in stage two.

The goal, the mixing rule (stated as mathematics) and the questions are in `nbs/assignments/a3_cutmix.ipynb`. How you
write the mixer is up to you (helper functions are welcome); then check your work with

    python assignments/check.py a3        (or the notebook's "Check your work" cell)

The public check tests the interface and the notebook's worked example only; the grader tests the behaviour.
Keep the registered name, the constructor and the call signature: `tauda train` and the grader use them.
"""
import torch

from tauda.cim import MIXERS, MixedBatch
from tauda.views import StrongView, photometric


@MIXERS.register("cutmix")
class CutMixMixer:
    "Source → target box mixing: one random box of each source crop pasted into its target image."
    def __init__(self, source_dataset=None, index=None, area: float = 0.5, pseudo_conf: float = 0.968,
                 views: StrongView = StrongView()):
        self.area, self.pseudo_conf, self.views = area, pseudo_conf, views

    def __call__(self, xs, ys, xt, pseudo, confidence, thresholds, seeds) -> MixedBatch:
        "Mix source `(xs, ys)` into target `xt` labelled `pseudo` (`confidence` `[B, H, W]`); sample k uses `seeds[k]`."
        raise NotImplementedError("CutMixMixer: the mixing rule of the notebook")


# Graded analysis (the notebook's section "Graded analysis"): replace each None by your numbers.
ANSWERS = {
    "coverage": None,              # 3 numbers: P(pixel pasted) at (0, 0), (32, 64) and (10, 100)
    "pasted_share": None,          # the share of the image inside the box
    "paste_probabilities": None,   # 10 numbers: CIM's long-tail paste probability of each class
    "paste_ratio": None,           # the most likely class's probability / the least likely class's
    "temperature": None,           # T of softmax(1/(T·θ)) at which that ratio is 2
}
