"""Assignment 1 — starter: class-balanced thresholds, a new threshold rule for stage one.

Read `nbs/assignments/a1_thresholds.ipynb` for the task. Fill in the two places marked TODO, then check your work:

    TAUDA_SUBMISSION=assignments .venv/bin/python -m pytest tests/test_assignments.py -m autograder -k a1

Do not rename the module, the functions, the class or the registered name: the autograder and `tauda train` use them.
"""
import math

import torch

from tauda.ufl import THRESHOLD_RULES, ThresholdRule


def class_quantile(conf: torch.Tensor, cls: torch.Tensor, num_classes: int, portion: float):
    """For every class c, the ⌈portion · n_c⌉-th largest (1-based) of the confidences `conf` `[N]` of the n_c pixels
    predicted as c (`cls` `[N]`). Returns `(psi, present)`: `psi` `[C]` float64 (any value where absent), `present`
    `[C]` bool (n_c > 0)."""
    # TODO: one value per class; classes without pixels are marked absent. (Hint: torch.topk, or sort once.)
    raise NotImplementedError("class_quantile: the class-wise quantile of the confidences")


@THRESHOLD_RULES.register("class_balanced")
class ClassBalancedThreshold(ThresholdRule):
    """Class-balanced thresholds: for each class, the confidence above which its top `portion` of pixels lie
    (Zou et al., CBST, ECCV 2018), smoothed over steps with momentum `beta`, capped below 1."""
    def __init__(self, num_classes: int, tau0: float = 0.8, beta: float = 0.9, portion: float = 0.5):
        super().__init__(num_classes, tau0)       # the interface: `thresholds` [C] float64 and their state dict
        self.beta, self.portion = beta, portion

    def update(self, probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Update the thresholds from `probs` `[B, C, H, W]`; return the mask `[B, H, W]` of pixels to keep.

        Confidence = max_c p_c, predicted class ŷ = argmax_c p_c, of each pixel; only pixels with `valid` (all if `None`)
        count. With ψ_c = `class_quantile(...)` of this step's valid pixels, θ_c ← β θ_c + (1 − β) ψ_c for classes present
        this step (the others keep θ_c); then θ_c is capped at 0.999. Keep a valid pixel iff its confidence ≥ θ_ŷ (the
        updated θ)."""
        # TODO: update self.thresholds (a float64 tensor [C] on the CPU) and return a bool mask [B, H, W].
        raise NotImplementedError("ClassBalancedThreshold.update")
