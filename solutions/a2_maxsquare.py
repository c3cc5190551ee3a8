"""Assignment 2 — reference solution: the MaxSquare target loss (Chen, Xue, Cai, ICCV 2019) and its image-wise
class-balanced variant, as target losses for `tauda train`.

Instructors only: keep this folder away from students. `TAUDA_SUBMISSION=solutions pytest -m autograder` checks it.
"""
import torch

from tauda.ufl import TARGET_LOSSES


def maxsquare_map(logits: torch.Tensor) -> torch.Tensor:
    "Per-pixel MaxSquare objective −½ Σ_c p_c² of `logits` `[B, C, H, W]`: `[B, H, W]`."
    return -0.5*(logits.softmax(1)**2).sum(1)


def image_class_weights(pred: torch.Tensor, num_classes: int, alpha: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Image-wise class weights `[B, C]`: w[b, c] = 1 / (N[b, c]^alpha · N[b]^(1 − alpha)), where N[b, c] counts the kept
    pixels of image b predicted as c (`pred` `[B, H, W]`) and N[b] all kept pixels of image b. 0 where N[b, c] = 0."""
    B = pred.shape[0]
    keep = torch.ones_like(pred, dtype=torch.bool) if mask is None else mask.bool()
    counts = torch.zeros(B, num_classes, dtype=torch.float64, device=pred.device)
    counts.scatter_add_(1, pred.reshape(B, -1), keep.reshape(B, -1).double())       # [B, C]
    total = counts.sum(1, keepdim=True)                                              # [B, 1]
    w = 1/(counts.clamp(min=1)**alpha*total.clamp(min=1)**(1 - alpha))
    return torch.where(counts > 0, w, torch.zeros_like(w)).float()


def maxsquare_loss(logits: torch.Tensor, alpha: float = 0.0, mask: torch.Tensor | None = None):
    """MaxSquare loss of `logits` `[B, C, H, W]` over the pixels in `mask` `[B, H, W]` (all if `None`).
    alpha = 0: −½ · mean over kept pixels of Σ_c p_c². alpha > 0 (image-wise weighting): −½ · (1/B) Σ_b Σ_n w[b, ŷ_n] Σ_c p_{n,c}²
    over the kept pixels n of image b, with `image_class_weights`. Returns `None` when no pixel is kept."""
    per_pixel = maxsquare_map(logits)                                                 # [B, H, W]
    keep = torch.ones_like(per_pixel, dtype=torch.bool) if mask is None else mask.bool()
    if not keep.any(): return None
    if alpha == 0: return per_pixel[keep].mean()
    pred = logits.detach().argmax(1)                                                  # [B, H, W]
    w = image_class_weights(pred, logits.shape[1], alpha, keep)                        # [B, C]
    pixel_w = torch.gather(w, 1, pred.reshape(len(pred), -1)).view_as(per_pixel)      # [B, H, W]
    return (pixel_w*per_pixel*keep).sum()/len(pred)


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
