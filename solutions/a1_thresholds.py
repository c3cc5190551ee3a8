"""Assignment 1 — reference solution: class-balanced thresholds (CBST-style), a threshold rule for stage one.

Instructors only: keep this folder away from students. `TAUDA_SUBMISSION=solutions pytest -m autograder` checks it.
"""
import math

import torch

from tauda.ufl import THRESHOLD_RULES, ThresholdRule


def class_quantile(conf: torch.Tensor, cls: torch.Tensor, num_classes: int, portion: float):
    """For every class c, the ⌈portion · n_c⌉-th largest (1-based) of the confidences `conf` `[N]` of the n_c pixels
    predicted as c (`cls` `[N]`). Returns `(psi, present)`: `psi` `[C]` float64 (any value where absent), `present`
    `[C]` bool (n_c > 0)."""
    conf, cls = conf.reshape(-1).double(), cls.reshape(-1).long()
    psi = torch.zeros(num_classes, dtype=torch.float64)
    present = torch.zeros(num_classes, dtype=torch.bool)
    for c in range(num_classes):
        values = conf[cls == c]
        if len(values) == 0: continue
        k = min(max(math.ceil(portion*len(values)), 1), len(values))      # 1-based rank from the top
        psi[c] = torch.topk(values, k).values[-1].cpu()
        present[c] = True
    return psi, present


@THRESHOLD_RULES.register("class_balanced")
class ClassBalancedThreshold(ThresholdRule):
    """Class-balanced thresholds: for each class, the confidence above which its top `portion` of pixels lie
    (Zou et al., CBST, ECCV 2018), smoothed over steps with momentum `beta`, capped below 1."""
    def __init__(self, num_classes: int, tau0: float = 0.8, beta: float = 0.9, portion: float = 0.5):
        super().__init__(num_classes, tau0)       # the interface: `thresholds` [C] float64 and their state dict
        self.beta, self.portion = beta, portion

    def update(self, probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        "Update the thresholds from `probs` `[B, C, H, W]`; return the mask `[B, H, W]` of pixels to keep."
        conf, cls = probs.detach().max(1)                                       # [B, H, W]
        sel = valid.bool() if valid is not None else torch.ones_like(conf, dtype=torch.bool)
        psi, present = class_quantile(conf[sel], cls[sel], self.num_classes, self.portion)
        new = self.beta*self.thresholds + (1 - self.beta)*psi
        theta = torch.where(present, new, self.thresholds)
        self.thresholds = theta.clamp(max=0.999)
        return (conf.double() >= self.thresholds.to(conf.device)[cls]) & sel
