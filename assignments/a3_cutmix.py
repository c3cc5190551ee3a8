"""Assignment 3 — starter: CutMix-style box mixing (Yun et al., ICCV 2019; French et al., BMVC 2020) as a stage-two
mixer for `tauda train`, to compare with cross-domain class mixing (CIM).

Read `nbs/assignments/a3_cutmix.ipynb` for the task. Fill in the two places marked TODO, then check your work:

    TAUDA_SUBMISSION=assignments .venv/bin/python -m pytest tests/test_assignments.py -m autograder -k a3

Do not rename the module, the function, the class or the registered name: the autograder and `tauda train` use them.
"""
import math

import torch

from tauda.cim import MIXERS, MixedBatch, dacs_weight
from tauda.views import StrongView, photometric


def box_mask(height: int, width: int, area: float, g: torch.Generator) -> torch.Tensor:
    """A random axis-aligned box covering the fraction `area` of a `height` × `width` image: bool `[H, W]`.
    The box has the image's aspect ratio, h = round(height·√area) rows and w = round(width·√area) columns, lies fully
    inside the image, and its top-left corner is uniform over all such positions, drawn from `g` only."""
    # TODO
    raise NotImplementedError("box_mask")


@MIXERS.register("cutmix")
class CutMixMixer:
    "Source → target box mixing: one random box of each source crop pasted into its target image."
    def __init__(self, source_dataset=None, index=None, area: float = 0.5, pseudo_conf: float = 0.968,
                 views: StrongView = StrongView()):
        self.area, self.pseudo_conf, self.views = area, pseudo_conf, views

    def __call__(self, xs, ys, xt, pseudo, confidence, thresholds, seeds) -> MixedBatch:
        """Mix source `(xs, ys)` `[B, 3, H, W]`/`[B, H, W]` into target `xt` labelled `pseudo` with `confidence` `[B, H, W]`;
        sample k draws from a generator seeded with `seeds[k]`: its box, then the photometric jitter of the mixed image.

        Like CIM (`tauda.cim.CrossDomainMixer`): the mixed image gets `photometric(image, g, self.views)`, the mixed label is
        the source label inside the box and the pseudo-label outside, and the pixel weights are 1 inside the box and
        `dacs_weight(confidence, self.pseudo_conf)` of the image outside. Return a `MixedBatch(images, labels, weights, pasted)`."""
        # TODO
        raise NotImplementedError("CutMixMixer.__call__")
