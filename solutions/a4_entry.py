"""Assignment 4 — an example entry: FixMatch-style hard pseudo-labels instead of the unsupervised focal loss.

Instructors only (the hand-out leaves solutions/ out): it shows a complete entry and lets the tests run the leaderboard
and its grader end to end. It is not a solution of the open problem: any honest entry is.
"""
import torch
import torch.nn.functional as F

from tauda.ufl import TARGET_LOSSES


@TARGET_LOSSES.register("fixmatch")
class FixMatchTarget:
    "Cross-entropy from the weak view's argmax to the strong view, on the pixels the threshold rule keeps."
    uses_strong_view = True

    def __init__(self, class_weights=None, num_classes: int = 10, **options):
        self.class_weights = class_weights

    def __call__(self, weak_logits, strong_logits=None, mask=None):
        if mask is None or not mask.any(): return None
        pseudo = weak_logits.detach().argmax(1)                                        # [B, H, W]
        ce = F.cross_entropy(strong_logits, pseudo, weight=self.class_weights, reduction="none")   # [B, H, W]
        return ce[mask].mean()
