"""Assignment 1 — class-balanced thresholds: a new threshold rule for stage one.

The goal, the rule (stated as mathematics) and the questions are in `nbs/assignments/a1_thresholds.ipynb`. How you
write the rule is up to you (helper functions, loops or vectorised code); then check it with

    python assignments/check.py a1        (or the notebook's "Check your work" cell)

The public check tests the interface and the notebook's worked example only; the grader tests the behaviour.
Keep the registered name, the constructor and `update`'s signature: `tauda train` and the grader use them.
"""
import torch

from tauda.ufl import THRESHOLD_RULES, ThresholdRule


@THRESHOLD_RULES.register("class_balanced")
class ClassBalancedThreshold(ThresholdRule):
    "Class-balanced thresholds: each class keeps its most confident `portion` of pixels (momentum `beta`)."
    def __init__(self, num_classes: int, tau0: float = 0.8, beta: float = 0.9, portion: float = 0.5):
        super().__init__(num_classes, tau0)       # `self.thresholds`: [C] float64 on the CPU, and the state dict
        self.beta, self.portion = beta, portion

    def update(self, probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        "Update `self.thresholds` from `probs` `[B, C, H, W]`; return the bool mask `[B, H, W]` of the pixels kept."
        raise NotImplementedError("ClassBalancedThreshold.update: the rule of the notebook's section 'The rule'")


# Graded analysis (the notebook's section "Graded analysis"): replace each None by your numbers.
ANSWERS = {
    "settle_class_balanced": None,   # 5 numbers: where θ_c settles under the class-balanced rule, classes 0–4
    "settle_adaptive": None,         # 5 numbers: where θ_c settles under the adaptive rule, classes 0–4
    "kept_adaptive": None,           # 5 numbers: the share of each class's pixels the adaptive rule keeps there
}
