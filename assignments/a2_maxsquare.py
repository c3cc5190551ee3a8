"""Assignment 2 — starter: the MaxSquare target loss (Chen, Xue, Cai, ICCV 2019) and its image-wise class-balanced
variant, as target losses for `tauda train`, to compare with the unsupervised focal loss.

Read `nbs/assignments/a2_maxsquare.ipynb` for the task. Fill in the three places marked TODO, then check your work:

    TAUDA_SUBMISSION=assignments .venv/bin/python -m pytest tests/test_assignments.py -m autograder -k a2

Do not rename the module, the functions, the classes or the registered names: the autograder and `tauda train` use them.
"""
import torch

from tauda.ufl import TARGET_LOSSES


def maxsquare_map(logits: torch.Tensor) -> torch.Tensor:
    "Per-pixel MaxSquare objective −½ Σ_c p_c² of `logits` `[B, C, H, W]`: `[B, H, W]`."
    # TODO
    raise NotImplementedError("maxsquare_map")


def image_class_weights(pred: torch.Tensor, num_classes: int, alpha: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Image-wise class weights `[B, C]`: w[b, c] = 1 / (N[b, c]^alpha · N[b]^(1 − alpha)), where N[b, c] counts the kept
    pixels of image b predicted as c (`pred` `[B, H, W]`) and N[b] all kept pixels of image b. 0 where N[b, c] = 0."""
    # TODO
    raise NotImplementedError("image_class_weights")


def maxsquare_loss(logits: torch.Tensor, alpha: float = 0.0, mask: torch.Tensor | None = None):
    """MaxSquare loss of `logits` `[B, C, H, W]` over the pixels in `mask` `[B, H, W]` (all if `None`).
    alpha = 0: −½ · mean over kept pixels of Σ_c p_c². alpha > 0 (image-wise weighting): −½ · (1/B) Σ_b Σ_n w[b, ŷ_n] Σ_c p_{n,c}²
    over the kept pixels n of image b, with `image_class_weights`. Returns `None` when no pixel is kept."""
    # TODO (use maxsquare_map and image_class_weights)
    raise NotImplementedError("maxsquare_loss")


@TARGET_LOSSES.register("maxsquare")
class MaxSquareTarget:
    "MaxSquare on the weak view of target images (no strong view, no thresholds)."
    uses_strong_view = False
    alpha = 0.0
    def __init__(self, **options): pass
    def __call__(self, weak_logits, strong_logits=None, mask=None): return maxsquare_loss(weak_logits, self.alpha, mask)


@TARGET_LOSSES.register("iw_maxsquare")
class ImageWiseMaxSquareTarget(MaxSquareTarget):
    "MaxSquare with image-wise class-balanced weights (alpha = 0.2, as in the MaxSquare paper)."
    alpha = 0.2
