"""Assignment 1 — reference solution: class-balanced thresholds (CBST, Zou et al., ECCV 2018), a threshold rule for
stage one.

Instructors only: the student hand-out (`python solutions/handout.py OUT`) leaves this folder out.
"""
import math

import torch

from tauda.ufl import THRESHOLD_RULES, ThresholdRule


def class_quantile(conf: torch.Tensor, cls: torch.Tensor, num_classes: int, portion: float):
    "ψ_c = the k_c-th largest of the confidences `conf` `[N]` predicted as c (`cls` `[N]`), k_c = max(1, ⌈π n_c⌉)."
    psi = torch.zeros(num_classes, dtype=torch.float64)
    present = torch.zeros(num_classes, dtype=torch.bool)
    for c in range(num_classes):
        values = conf[cls == c].double()
        if len(values) == 0: continue
        k = max(1, math.ceil(portion*len(values)))                     # 1-based rank from the top
        psi[c] = torch.topk(values, k).values[-1]
        present[c] = True
    return psi, present


@THRESHOLD_RULES.register("class_balanced")
class ClassBalancedThreshold(ThresholdRule):
    "Class-balanced thresholds: each class keeps its most confident `portion` of pixels (momentum `beta`)."
    def __init__(self, num_classes: int, tau0: float = 0.8, beta: float = 0.9, portion: float = 0.5):
        super().__init__(num_classes, tau0)       # `self.thresholds`: [C] float64 on the CPU, and the state dict
        self.beta, self.portion = beta, portion

    def update(self, probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        "Update `self.thresholds` from `probs` `[B, C, H, W]`; return the bool mask `[B, H, W]` of the pixels kept."
        conf, cls = probs.detach().max(1)                                       # [B, H, W]
        sel = torch.ones_like(conf, dtype=torch.bool) if valid is None else valid.bool()
        psi, present = class_quantile(conf[sel], cls[sel], self.num_classes, self.portion)
        theta = torch.where(present, self.beta*self.thresholds + (1 - self.beta)*psi, self.thresholds)
        self.thresholds = theta.clamp(max=0.999)
        return (conf.double() >= self.thresholds.to(conf.device)[cls]) & sel


# Graded analysis (the notebook's section "Graded analysis"): classes 0–4 of the synthetic stream.
ANSWERS = {
    "settle_class_balanced": [0.9551, 0.9336, 0.8727, 0.7657, 0.6000],
    "settle_adaptive": [0.9507, 0.9376, 0.9105, 0.8778, 0.8405],
    "kept_adaptive": [0.5339, 0.4778, 0.3779, 0.2821, 0.1993],
}
