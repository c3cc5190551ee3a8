"""Assignment 2 — the MaxSquare target loss and its image-wise class-balanced variant, against the unsupervised focal
loss.

The goal, the losses (stated as mathematics) and the questions are in `nbs/assignments/a2_maxsquare.ipynb`. How you
compute them is up to you (helper functions are welcome); then check your work with

    python assignments/check.py a2        (or the notebook's "Check your work" cell)

The public check tests the interface and the notebook's worked example only; the grader tests the behaviour.
Keep the registered names, the constructors and the call signatures: `tauda train` and the grader use them.
"""
import torch

from tauda.ufl import TARGET_LOSSES


@TARGET_LOSSES.register("maxsquare")
class MaxSquareTarget:
    "MaxSquare on the weak view of target images (no strong view, no thresholds)."
    uses_strong_view = False

    def __init__(self, **options): pass

    def __call__(self, weak_logits, strong_logits=None, mask=None):
        "L_MS of `weak_logits` `[B, C, H, W]` over the pixels of `mask` `[B, H, W]` (all if None); None: none kept."
        raise NotImplementedError("MaxSquareTarget: the loss L_MS of the notebook")


@TARGET_LOSSES.register("iw_maxsquare")
class ImageWiseMaxSquareTarget:
    "MaxSquare with image-wise class-balanced weights (exponent `alpha`, 0.2 as in the MaxSquare paper)."
    uses_strong_view = False

    def __init__(self, alpha: float = 0.2, **options): self.alpha = alpha

    def __call__(self, weak_logits, strong_logits=None, mask=None):
        "L_IW of `weak_logits` `[B, C, H, W]` over the pixels of `mask` `[B, H, W]` (all if None); None: none kept."
        raise NotImplementedError("ImageWiseMaxSquareTarget: the loss L_IW of the notebook")


# Graded analysis (the notebook's section "Graded analysis"): replace each None by your number.
ANSWERS = {
    "peak_entropy": None,     # the confidence p at which |∂E/∂z| is largest (two classes)
    "peak_maxsquare": None,   # the confidence p at which |∂ℓ_MS/∂z| is largest (two classes)
    "peak_ratio": None,       # (largest |∂ℓ_MS/∂z|) / (largest |∂E/∂z|)
    "iw_pixel_ratio": None,   # α = 0.2: the weight of one pole pixel / the weight of one road pixel
    "iw_class_ratio": None,   # α = 0.2: the pole's total weight / the road's total weight
}
