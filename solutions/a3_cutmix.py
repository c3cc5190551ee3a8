"""Assignment 3 — reference solution: CutMix-style box mixing (Yun et al., ICCV 2019; French et al., BMVC 2020) as a
stage-two mixer for `tauda train`, to compare with cross-domain class mixing (CIM).

Instructors only: the student hand-out (`python solutions/handout.py OUT`) leaves this folder out.
"""
import math

import torch

from tauda.cim import MIXERS, MixedBatch
from tauda.views import StrongView, photometric


def box_mask(height: int, width: int, area: float, g: torch.Generator) -> torch.Tensor:
    "A box of round(H√a) × round(W√a) pixels at a uniform position inside the image, drawn from `g`: bool `[H, W]`."
    h, w = round(height*math.sqrt(area)), round(width*math.sqrt(area))
    top = int(torch.randint(height - h + 1, (), generator=g))
    left = int(torch.randint(width - w + 1, (), generator=g))
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:top + h, left:left + w] = True
    return mask


@MIXERS.register("cutmix")
class CutMixMixer:
    "Source → target box mixing: one random box of each source crop pasted into its target image."
    def __init__(self, source_dataset=None, index=None, area: float = 0.5, pseudo_conf: float = 0.968,
                 views: StrongView = StrongView()):
        self.area, self.pseudo_conf, self.views = area, pseudo_conf, views

    def __call__(self, xs, ys, xt, pseudo, confidence, thresholds, seeds) -> MixedBatch:
        "Mix source `(xs, ys)` into target `xt` labelled `pseudo` (`confidence` `[B, H, W]`); sample k uses `seeds[k]`."
        images, labels, pasted = [], [], []
        H, W = ys.shape[-2:]
        for k, seed in enumerate(seeds):
            g = torch.Generator().manual_seed(int(seed))
            mask = box_mask(H, W, self.area, g).to(ys.device)
            image = torch.where(mask, xs[k], xt[k])
            images.append(photometric(image, g, self.views))
            labels.append(torch.where(mask, ys[k], pseudo[k]))
            pasted.append(mask)
        pasted = torch.stack(pasted)                                                   # [B, H, W]
        target_weight = (confidence >= self.pseudo_conf).float().mean((1, 2))[:, None, None]   # [B, 1, 1]
        weights = torch.where(pasted, torch.ones_like(target_weight), target_weight)
        return MixedBatch(torch.stack(images), torch.stack(labels), weights, pasted)


# Graded analysis (the notebook's section "Graded analysis").
ANSWERS = {
    "coverage": [0.001316, 1.0, 0.4053],     # P(pixel pasted) at (0, 0), (32, 64), (10, 100); 64 × 128, area ½
    "pasted_share": 0.49988,                 # share of the image inside the box
    "paste_probabilities": [0.0957, 0.0979, 0.0946, 0.1040, 0.0968, 0.0936, 0.0926, 0.1098, 0.1203, 0.0946],
    "paste_ratio": 1.299,                    # most likely / least likely class
    "temperature": 0.377,                    # T of softmax(1/(T·θ)) at which that ratio is 2
}
