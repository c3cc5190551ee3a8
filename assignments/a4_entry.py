"""Assignment 4 — your entry: beat the unsupervised focal loss on minicity.

Read `nbs/assignments/a4_open.ipynb` first: the goal, the rules of the leaderboard and how it is graded. Register at
least one target loss, threshold rule or mixer in this module (the template below is a target loss; the notebook shows
the contract of each kind), then

    python assignments/check.py a4                      # the public check: your entries build and run on a small batch
    PYTHONPATH=assignments tauda leaderboard my-entry --import a4_entry --set method.target.loss=my_loss

Hand in this module together with the `record.json` the leaderboard writes (`runs/leaderboard/my-entry/record.json`).
"""
import torch
import torch.nn.functional as F

from tauda.ufl import TARGET_LOSSES


@TARGET_LOSSES.register("my_loss")
class MyTargetLoss:
    "Your target loss (rename it, and say in one line what it does)."
    uses_strong_view = True    # True: called with (weak_logits, strong_logits, mask), the mask from the threshold rule

    def __init__(self, class_weights=None, num_classes: int = 10, **options):
        self.class_weights = class_weights      # [C] on the training device, or None (method.class_weights)

    def __call__(self, weak_logits, strong_logits=None, mask=None):
        "A scalar loss from `weak_logits` (and `strong_logits`, `mask` `[B, H, W]`), or None to skip this step."
        raise NotImplementedError("MyTargetLoss: your target loss")
