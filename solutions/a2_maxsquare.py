"""Assignment 2 — reference solution: the MaxSquare target loss (Chen, Xue, Cai, ICCV 2019) and its image-wise
class-balanced variant, as target losses for `tauda train`.

Instructors only: the student hand-out (`python solutions/handout.py OUT`) leaves this folder out.
"""
import torch

from tauda.ufl import TARGET_LOSSES


def maxsquare_map(logits: torch.Tensor) -> torch.Tensor:
    "ℓ(p) = −½ Σ_c p_c² per pixel of `logits` `[B, C, H, W]`: `[B, H, W]`."
    return -0.5*(logits.softmax(1)**2).sum(1)


def image_class_weights(pred: torch.Tensor, keep: torch.Tensor, num_classes: int, alpha: float) -> torch.Tensor:
    "w_{b,c} = N_{b,c}^(−α) · N_b^(α−1) over the kept pixels (`keep` `[B, H, W]`) of each image; 0 where N_{b,c} = 0."
    B = pred.shape[0]
    counts = torch.zeros(B, num_classes, dtype=torch.float64, device=pred.device)
    counts.scatter_add_(1, pred.reshape(B, -1), keep.reshape(B, -1).double())      # N_{b,c}: [B, C]
    total = counts.sum(1, keepdim=True)                                             # N_b: [B, 1]
    w = counts.clamp(min=1)**(-alpha)*total.clamp(min=1)**(alpha - 1)
    return torch.where(counts > 0, w, torch.zeros_like(w))


def maxsquare_loss(logits: torch.Tensor, alpha: float = 0.0, mask: torch.Tensor | None = None,
                   image_wise: bool = False):
    "MaxSquare over the pixels of `mask` (all if `None`): the plain mean, or image-wise weighted; `None` if none kept."
    per_pixel = maxsquare_map(logits)                                                 # [B, H, W]
    keep = torch.ones_like(per_pixel, dtype=torch.bool) if mask is None else mask.bool()
    if not keep.any(): return None
    if not image_wise: return per_pixel[keep].mean()
    pred = logits.detach().argmax(1)                                                  # [B, H, W]
    w = image_class_weights(pred, keep, logits.shape[1], alpha)                       # [B, C]
    pixel_w = torch.gather(w, 1, pred.reshape(len(pred), -1)).view_as(per_pixel).to(per_pixel.dtype)
    return (pixel_w*per_pixel*keep).sum()/len(pred)


@TARGET_LOSSES.register("maxsquare")
class MaxSquareTarget:
    "MaxSquare on the weak view of target images (no strong view, no thresholds)."
    uses_strong_view = False

    def __init__(self, **options): pass

    def __call__(self, weak_logits, strong_logits=None, mask=None):
        return maxsquare_loss(weak_logits, mask=mask)


@TARGET_LOSSES.register("iw_maxsquare")
class ImageWiseMaxSquareTarget:
    "MaxSquare with image-wise class-balanced weights (exponent `alpha`, 0.2 as in the MaxSquare paper)."
    uses_strong_view = False

    def __init__(self, alpha: float = 0.2, **options): self.alpha = alpha

    def __call__(self, weak_logits, strong_logits=None, mask=None):
        return maxsquare_loss(weak_logits, self.alpha, mask, image_wise=True)


# Graded analysis (the notebook's section "Graded analysis").
ANSWERS = {
    "peak_entropy": 0.824,      # the confidence p where |∂E/∂z| peaks (two classes, normalised entropy)
    "peak_maxsquare": 0.789,    # ... and where |∂ℓ_MS/∂z| peaks
    "peak_ratio": 0.298,        # max |∂ℓ_MS/∂z| / max |∂E/∂z|
    "iw_pixel_ratio": 3.48,     # weight of a pole pixel / weight of a road pixel, α = 0.2
    "iw_class_ratio": 0.00681,  # total weight of the pole's pixels / total weight of the road's pixels, α = 0.2
}
