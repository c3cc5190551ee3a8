"""Hidden grader of assignment 2 (MaxSquare): both target losses against their mathematical definitions.

Every check takes a `Submission` and raises AssertionError when the behaviour is wrong. The naive references below
are written from the notebook's definitions (loops over images, classes and pixels) and share no code with the
reference solution.
"""
import math

import torch

from .common import close, registered

OPTIONS = dict(class_weights=None, focal="adaptive", gamma=2.0, num_classes=5)   # what the trainer passes


def losses(sub, alpha=None):
    "The two registered losses, built as the trainer builds them (`alpha` for the image-wise one, if given)."
    from tauda.ufl import TARGET_LOSSES
    built = {}
    for name in ("maxsquare", "iw_maxsquare"):
        with registered(TARGET_LOSSES, name, sub.entry("target loss", name)):
            extra = {"alpha": alpha} if alpha is not None and name == "iw_maxsquare" else {}
            built[name] = TARGET_LOSSES.build(name, **OPTIONS, **extra)
    return built["maxsquare"], built["iw_maxsquare"]


def naive_plain(logits, mask):
    "−½ · mean over the kept pixels of Σ_c p_c²."
    p = logits.softmax(1)
    values = [-0.5*(p[b, :, i, j]**2).sum() for b, i, j in mask.nonzero().tolist()]
    return sum(values)/len(values)


def naive_image_wise(logits, mask, alpha):
    "−½ · (1/B) Σ_b Σ_{kept n of b} Σ_c p_c² / (N_{b,ŷ}^α · N_b^(1−α))."
    B, C = logits.shape[:2]
    p, pred, total = logits.softmax(1), logits.argmax(1), 0
    for b in range(B):
        n = int(mask[b].sum())
        for c in range(C):
            sel = mask[b] & (pred[b] == c)
            nc = int(sel.sum())
            if nc: total = total - 0.5*(p[b][:, sel]**2).sum()/(nc**alpha*n**(1 - alpha))
    return total/B


def random_logits(*shape, seed, scale=2.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))*scale


def check_registered_for_the_weak_view(sub):
    plain, iw = losses(sub)
    assert getattr(plain, "uses_strong_view", True) is False and getattr(iw, "uses_strong_view", True) is False, \
        "uses_strong_view must be False (the trainer then passes the weak view only)"
    logits = random_logits(2, 5, 4, 4, seed=0).requires_grad_()
    for loss in (plain(logits), iw(logits)):
        assert torch.is_tensor(loss) and loss.dim() == 0, f"a scalar tensor, got {loss!r}"
        assert loss.requires_grad, "the loss has no gradient with respect to the logits"


def check_hand_values(sub):
    plain, iw = losses(sub)
    assert plain(torch.zeros(2, 5, 3, 4)).item() == approx(-0.1), "uniform over 5 classes: −1/(2·5)"
    confident = torch.zeros(1, 4, 2, 2)
    confident[:, 1] = 30.0
    assert plain(confident).item() == approx(-0.5, 1e-6), "one-hot: −½"
    two = torch.log(torch.tensor([0.75, 0.25]))[None, :, None, None]
    assert plain(two).item() == approx(-0.5*(0.75**2 + 0.25**2)), "p = (¾, ¼): −½(¾² + ¼²)"
    assert iw(two).item() == approx(-0.5*(0.75**2 + 0.25**2)), "one pixel: its weight is 1"


def check_plain_loss_over_kept_pixels(sub):
    plain, _ = losses(sub)
    logits = random_logits(3, 5, 6, 7, seed=1)
    everything = torch.ones(3, 6, 7, dtype=torch.bool)
    assert plain(logits).item() == approx(naive_plain(logits, everything).item(), 1e-5)
    mask = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(2)) > 0.5
    mask[0] = False                                             # an image without kept pixels
    assert plain(logits, None, mask).item() == approx(naive_plain(logits, mask).item(), 1e-5), "mean over kept pixels"
    assert plain(logits, None, everything).item() == approx(plain(logits).item(), 1e-6)


def check_no_pixel_kept_gives_none(sub):
    plain, iw = losses(sub)
    nothing = torch.zeros(3, 6, 7, dtype=torch.bool)
    logits = random_logits(3, 5, 6, 7, seed=1)
    assert plain(logits, None, nothing) is None, "maxsquare: no pixel kept must give None (the step skips the term)"
    assert iw(logits, None, nothing) is None, "iw_maxsquare: no pixel kept must give None (the step skips the term)"


def check_plain_gradient(sub):
    plain, _ = losses(sub)
    logits = random_logits(2, 4, 3, 3, seed=3).requires_grad_()
    mask = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(4)) > 0.4
    plain(logits, None, mask).backward()
    p = logits.detach().softmax(1)
    expected = -p*(p - (p**2).sum(1, keepdim=True))*mask[:, None]/mask.sum()   # ∂(−½Σp²)/∂z_k = −p_k (p_k − Σ p²)
    assert torch.allclose(logits.grad, expected, atol=1e-7), "∂L/∂z differs from the derivation"
    uniform = torch.zeros(1, 4, 2, 2, requires_grad=True)
    plain(uniform).backward()
    assert torch.allclose(uniform.grad, torch.zeros_like(uniform), atol=1e-8), "no gradient at the uniform prediction"


def check_image_wise_loss_and_gradient(sub):
    for alpha in (0.2, 0.5, 1.0):
        _, iw = losses(sub, alpha)
        g = torch.Generator().manual_seed(4)
        logits = (torch.randn(3, 5, 6, 6, generator=g)*3).requires_grad_()
        mask = torch.rand(3, 6, 6, generator=g) > 0.3
        mask[2] = False                                         # an image with no kept pixel: still one of B = 3
        loss = iw(logits, None, mask)
        (grad,) = torch.autograd.grad(loss, logits)
        ref_logits = logits.detach().clone().requires_grad_()
        ref = naive_image_wise(ref_logits, mask, alpha)
        ref.backward()
        assert loss.item() == approx(ref.item(), 1e-5), f"α = {alpha}: {loss.item()} ≠ {ref.item()}"
        assert torch.allclose(grad, ref_logits.grad, atol=1e-7), f"α = {alpha}: the gradient differs"


def check_default_alpha_and_rare_classes(sub):
    _, iw = losses(sub)
    logits = torch.zeros(1, 2, 10, 10)
    logits[0, 0] = 2.0
    logits[0, :, :1] = torch.tensor([0.0, 2.0])[:, None, None]      # row 0: class 1 (10 pixels); rows 1-9: class 0 (90)
    logits.requires_grad_()
    iw(logits).backward()
    g = logits.grad.abs().sum(1)[0]
    assert g[0, 0].item()/g[5, 5].item() == approx(9**0.2, 1e-4), "default α = 0.2: a rare pixel weighs (90/10)^α more"


def check_order_of_pixels_and_images(sub):
    plain, iw = losses(sub)
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, 5, 6, generator=g)*2
    mask = torch.rand(3, 5, 6, generator=g) > 0.3
    perm = torch.randperm(30, generator=g)
    shuffle = lambda t: t.reshape(*t.shape[:-2], 30)[..., perm].reshape(t.shape)[[2, 0, 1]]
    for loss in (plain, iw):
        assert loss(logits, None, mask).item() == approx(loss(shuffle(logits), None, shuffle(mask)).item(), 1e-5)


def check_huge_logits_and_no_side_effects(sub):
    plain, iw = losses(sub)
    logits = (torch.randn(2, 6, 5, 5, generator=torch.Generator().manual_seed(6))*1e4).requires_grad_()
    before = logits.detach().clone()
    for loss in (plain, iw):
        value = loss(logits)
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), "not finite for huge logits"
    assert torch.equal(logits.detach(), before), "the loss changed its input"
    double = torch.randn(1, 3, 2, 2, dtype=torch.float64)
    assert plain(double).dtype == torch.float64 and iw(double).dtype == torch.float64, "float64 in, float64 out"


def approx(expected, rel=1e-6):
    import pytest
    return pytest.approx(expected, rel=rel, abs=1e-9)


CHECKS = [check_registered_for_the_weak_view, check_hand_values, check_plain_loss_over_kept_pixels,
          check_no_pixel_kept_gives_none, check_plain_gradient, check_image_wise_loss_and_gradient,
          check_default_alpha_and_rare_classes, check_order_of_pixels_and_images,
          check_huge_logits_and_no_side_effects]


# ---------------------------------------------------------------------------------------------------------------------
def expected_answers() -> dict:
    "Peaks of |∂ℓ/∂z| for two classes (z the logit difference, p = σ(z)), on a fine grid; image-wise weight ratios."
    p = torch.linspace(0.5, 1 - 1e-9, 2_000_001, dtype=torch.float64)
    entropy = p*(1 - p)*torch.log(p/(1 - p))/math.log(2)           # |dE/dz| = |dE/dp| · dp/dz, E normalised by log 2
    maxsquare = (2*p - 1)*p*(1 - p)                                # |dℓ/dz| with ℓ = −½(p² + (1 − p)²)
    road, pole, alpha = 64*128 - 16, 16, 0.2
    return {"peak_entropy": p[entropy.argmax()].item(), "peak_maxsquare": p[maxsquare.argmax()].item(),
            "peak_ratio": (maxsquare.max()/entropy.max()).item(), "iw_pixel_ratio": (road/pole)**alpha,
            "iw_class_ratio": (pole/road)**(1 - alpha)}


TOLERANCES = {"peak_entropy": 0.005, "peak_maxsquare": 0.005, "peak_ratio": 0.005, "iw_pixel_ratio": 0.02,
              "iw_class_ratio": 0.0002}


def check_answers(sub):
    for key, expected in expected_answers().items(): close(sub.answers.get(key), expected, TOLERANCES[key], key)


def check_training(sub, folder, source_run, out):
    "Two iterations of `tauda train mini-stage1 --import a2_maxsquare --set method.target.loss=iw_maxsquare`."
    from .common import train_with
    log = train_with(folder, "a2_maxsquare", "mini-stage1", source_run.checkpoint, source_run.data, out,
                     "method.target.loss=iw_maxsquare", "schedule.iterations=2")
    assert all(entry["target"] < 0 for entry in log) and "thresholds" not in log[-1], log
