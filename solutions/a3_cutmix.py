"""Assignment 3 — reference solution: CutMix-style box mixing (Yun et al., ICCV 2019; French et al., BMVC 2020) as a
stage-two mixer for `tauda train`, to compare with cross-domain class mixing (CIM).

Instructors only: keep this folder away from students. `TAUDA_SUBMISSION=solutions pytest -m autograder` checks it.
"""
import math

import torch

from tauda.cim import MIXERS, MixedBatch, dacs_weight
from tauda.views import StrongView, photometric


def box_mask(height: int, width: int, area: float, g: torch.Generator) -> torch.Tensor:
    """A random axis-aligned box covering the fraction `area` of a `height` × `width` image: bool `[H, W]`.
    The box has the image's aspect ratio, h = round(height·√area) rows and w = round(width·√area) columns, lies fully
    inside the image, and its top-left corner is uniform over all such positions, drawn from `g` only."""
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
        """Mix source `(xs, ys)` `[B, 3, H, W]`/`[B, H, W]` into target `xt` labelled `pseudo` with `confidence` `[B, H, W]`;
        sample k draws from a generator seeded with `seeds[k]`: its box, then the photometric jitter of the mixed image."""
        images, labels, pasted = [], [], []
        H, W = ys.shape[-2:]
        for k, seed in enumerate(seeds):
            g = torch.Generator().manual_seed(int(seed))
            mask = box_mask(H, W, self.area, g).to(ys.device)
            image = torch.where(mask, xs[k], xt[k])
            images.append(photometric(image, g, self.views))
            labels.append(torch.where(mask, ys[k], pseudo[k]))
            pasted.append(mask)
        pasted = torch.stack(pasted)
        target_weight = dacs_weight(confidence, self.pseudo_conf)[:, None, None]       # [B, 1, 1]
        weights = torch.where(pasted, torch.ones_like(target_weight), target_weight)
        return MixedBatch(torch.stack(images), torch.stack(labels), weights, pasted)
