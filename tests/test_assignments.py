"""Autograders of the course assignments (`nbs/assignments/`), each test marked `autograder`.

A submission is a folder holding the student's `a1_thresholds.py`, `a2_maxsquare.py` and/or `a3_cutmix.py` (the starters
are in `assignments/`, the reference solutions in `solutions/`). Point the autograder at it with `TAUDA_SUBMISSION`
(default: `solutions/`, so that CI checks the reference solutions; a relative path is taken from the repository root):

    TAUDA_SUBMISSION=path/to/submission .venv/bin/python -m pytest tests/test_assignments.py -m autograder [-k a1|a2|a3]

The checks go beyond the examples in the starters' docstrings: exact values against naive reference implementations,
gradients, invariances (pixel and batch order, invalid pixels, the global RNG), edge cases (empty masks, absent classes,
huge logits, one-hot predictions, boxes of area 0 and 1), registration in tauda's registries, and a few iterations of
`tauda train --import MODULE --set method.…=NAME` on the suite's small minicity, from its shared source and stage-one
checkpoints (conftest.py).

`test_autograders_fail_on_the_starters` (not an autograder itself) runs the autograder on `assignments/` in a subprocess
and requires every check to fail there, so that each check tests something the starter does not already do.
"""
import ast
import importlib.util
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from helpers import read_log, sets

ROOT = Path(__file__).resolve().parent.parent
STARTERS, SOLUTIONS = ROOT/"assignments", ROOT/"solutions"
SUBMISSION = (ROOT/(os.environ.get("TAUDA_SUBMISSION") or SOLUTIONS)).resolve()   # a relative path is taken from ROOT
MODULES = ("a1_thresholds", "a2_maxsquare", "a3_cutmix")
autograder = pytest.mark.autograder


def load_submission(name: str):
    "Import `name` from the submission folder (once a session; importing registers its entries in tauda's registries)."
    if name in sys.modules and Path(getattr(sys.modules[name], "__file__", "")).resolve() == (SUBMISSION/f"{name}.py"):
        return sys.modules[name]
    path = SUBMISSION/f"{name}.py"
    if not path.is_file(): pytest.fail(f"no {name}.py in the submission folder {SUBMISSION} (set TAUDA_SUBMISSION)")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def a1(): return load_submission("a1_thresholds")

@pytest.fixture(scope="session")
def a2(): return load_submission("a2_maxsquare")

@pytest.fixture(scope="session")
def a3(): return load_submission("a3_cutmix")


def train_with_submission(module: str, preset: str, run, out, *items):
    """`tauda train PRESET --import MODULE ...` for a few iterations from the checkpoint of `run` (a conftest `Run`), on
    its data, the submission folder on PYTHONPATH; returns the log."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SUBMISSION), os.environ.get("PYTHONPATH")]))}
    args = [sys.executable, "-m", "tauda.cli", "train", preset, "--import", module, "--data-root", str(run.data),
            "--out", str(out), "--quiet", *sets(f"init={run.checkpoint}", "schedule.log_every=1", "data.batch_size=2",
                                                "schedule.eval_batch_size=8", *items)]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=out.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return read_log(out)


def probabilities(*shape, sharpness=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g)*sharpness, 1)


# ---------------------------------------------------------------------------------------------------------------------
# Assignment 1: class-balanced thresholds
def reference_quantile(conf, cls, num_classes, portion):
    psi, present = torch.zeros(num_classes, dtype=torch.float64), torch.zeros(num_classes, dtype=torch.bool)
    for c in range(num_classes):
        values = sorted(conf[cls == c].double().tolist(), reverse=True)
        if values:
            psi[c], present[c] = values[min(max(math.ceil(portion*len(values)), 1), len(values)) - 1], True
    return psi, present


@autograder
def test_a1_class_quantile_hand_example(a1):
    conf = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.95])
    cls = torch.tensor([0, 0, 0, 0, 1, 2])
    psi, present = a1.class_quantile(conf, cls, 4, 0.5)
    assert psi.dtype == torch.float64 and psi.shape == (4,) and present.dtype == torch.bool
    assert present.tolist() == [True, True, True, False]
    assert psi[:3].tolist() == pytest.approx([0.8, 0.5, 0.95])
    assert a1.class_quantile(conf, cls, 4, 0.1)[0][:3].tolist() == pytest.approx([0.9, 0.5, 0.95])   # k = ⌈0.4⌉ = 1
    assert a1.class_quantile(conf, cls, 4, 1.0)[0][:3].tolist() == pytest.approx([0.6, 0.5, 0.95])   # the smallest


@autograder
@pytest.mark.parametrize("portion", [1e-6, 0.2, 0.5, 0.77, 1.0])
def test_a1_class_quantile_against_a_reference(a1, portion):
    g = torch.Generator().manual_seed(1)
    conf = (torch.rand(500, generator=g)*20).round()/20        # many ties
    cls = torch.randint(0, 6, (500,), generator=g)
    cls[cls == 4] = 5                                          # class 4 absent
    psi, present = a1.class_quantile(conf, cls, 7, portion)
    ref, ref_present = reference_quantile(conf, cls, 7, portion)
    assert torch.equal(present, ref_present)
    assert torch.allclose(psi[ref_present], ref[ref_present])


@autograder
def test_a1_registered_and_built_from_the_config(a1):
    from tauda.ufl import THRESHOLD_RULES
    rule = THRESHOLD_RULES.build("class_balanced", 6, tau0=0.7, b=0.8, beta=0.9, d=8)  # what the trainer passes
    assert isinstance(rule, a1.ClassBalancedThreshold)
    assert rule.thresholds.dtype == torch.float64 and rule.thresholds.tolist() == [0.7]*6
    mask = rule.update(probabilities(2, 6, 5, 7))
    assert mask.dtype == torch.bool and mask.shape == (2, 5, 7)


@autograder
@pytest.mark.parametrize("portion", [0.2, 0.5, 0.9])
def test_a1_one_step_without_momentum_keeps_the_top_portion_of_every_class(a1, portion):
    probs = probabilities(3, 5, 11, 13, sharpness=2.0, seed=2)
    rule = a1.ClassBalancedThreshold(5, tau0=0.8, beta=0.0, portion=portion)
    mask = rule.update(probs)
    conf, cls = probs.max(1)
    ref, present = reference_quantile(conf.flatten(), cls.flatten(), 5, portion)
    assert torch.allclose(rule.thresholds[present], ref[present])
    for c in range(5):
        n = int((cls == c).sum())
        if n: assert int(mask[cls == c].sum()) == math.ceil(portion*n), f"class {c}: not its top {portion:.0%}"


@autograder
def test_a1_momentum_and_absent_classes(a1):
    rule = a1.ClassBalancedThreshold(4, tau0=0.8, beta=0.9, portion=0.5)
    theta = torch.full((4,), 0.8, dtype=torch.float64)
    for step in range(3):
        probs = probabilities(2, 4, 6, 6, seed=10 + step)
        probs[:, 3] = 0                                           # class 3 is never predicted
        rule.update(probs)
        conf, cls = probs.max(1)
        psi, present = reference_quantile(conf.flatten(), cls.flatten(), 4, 0.5)
        theta = torch.where(present, 0.9*theta + 0.1*psi, theta)
        assert torch.allclose(rule.thresholds, theta, atol=1e-6)
    assert rule.thresholds[3].item() == pytest.approx(0.8)


@autograder
def test_a1_invalid_pixels_count_nowhere(a1):
    probs = probabilities(2, 5, 8, 9, seed=3)
    valid = torch.rand(2, 8, 9, generator=torch.Generator().manual_seed(4)) > 0.4
    other = probs.clone()
    other[~valid[:, None].expand_as(probs)] = 0
    other[:, 0][~valid] = 1.0                                     # invalid pixels: confident class 0
    a, b = (a1.ClassBalancedThreshold(5, beta=0.5) for _ in range(2))
    mask_a, mask_b = a.update(probs, valid), b.update(other, valid)
    assert torch.allclose(a.thresholds, b.thresholds)
    assert not mask_a[~valid].any() and not mask_b[~valid].any()
    c, d = (a1.ClassBalancedThreshold(5, beta=0.5) for _ in range(2))
    assert torch.equal(c.update(probs), d.update(probs, torch.ones(2, 8, 9, dtype=torch.bool)))
    assert torch.equal(c.thresholds, d.thresholds)


@autograder
def test_a1_pixel_and_batch_order_do_not_matter(a1):
    probs = probabilities(2, 5, 6, 8, seed=5)
    a, b = (a1.ClassBalancedThreshold(5, beta=0.3, portion=0.4) for _ in range(2))
    mask = a.update(probs)
    perm = torch.randperm(2*6*8, generator=torch.Generator().manual_seed(6))
    flat = probs.permute(1, 0, 2, 3).reshape(5, -1)[:, perm].reshape(5, 2, 6, 8).permute(1, 0, 2, 3)
    mask_b = b.update(flat.contiguous())
    assert torch.allclose(a.thresholds, b.thresholds)
    assert torch.equal(mask.flatten()[perm], mask_b.flatten())


@autograder
def test_a1_thresholds_stay_below_one(a1):
    probs = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 5, 5)), 4).permute(0, 3, 1, 2).double()
    rule = a1.ClassBalancedThreshold(4, beta=0.0)
    mask = rule.update(probs)
    assert (rule.thresholds < 1).all() and rule.thresholds.max().item() == pytest.approx(0.999)
    assert mask.all()                                             # one-hot pixels pass a 0.999 threshold


@autograder
def test_a1_no_gradient_no_side_effects_any_float_dtype(a1):
    for dtype in (torch.float32, torch.float64):
        probs = probabilities(1, 3, 4, 4, seed=7).to(dtype).requires_grad_()
        before = probs.detach().clone()
        rule = a1.ClassBalancedThreshold(3)
        mask = rule.update(probs)
        assert torch.equal(probs.detach(), before)
        assert not rule.thresholds.requires_grad and rule.thresholds.dtype == torch.float64
        assert rule.thresholds.device.type == "cpu" and mask.dtype == torch.bool


@autograder
def test_a1_state_dict_round_trip(a1):
    rule = a1.ClassBalancedThreshold(5, beta=0.7)
    for s in range(2): rule.update(probabilities(2, 5, 6, 6, seed=20 + s))
    again = a1.ClassBalancedThreshold(5, beta=0.7)
    again.load_state_dict(rule.state_dict())
    assert torch.equal(again.thresholds, rule.thresholds)
    probs = probabilities(2, 5, 6, 6, seed=30)
    assert torch.equal(rule.update(probs), again.update(probs)) and torch.equal(rule.thresholds, again.thresholds)


@autograder
def test_a1_trains_through_the_cli(a1, request, tmp_path):
    a1.ClassBalancedThreshold(3).update(probabilities(1, 3, 4, 4))   # fails fast before any training
    log = train_with_submission("a1_thresholds", "mini-stage1", request.getfixturevalue("source_run"), tmp_path/"run",
                                "method.threshold=class_balanced", "method.tau0=0.2", "schedule.iterations=3")
    thresholds = log[-1]["thresholds"]
    assert len(thresholds) == 10 and len(set(thresholds)) > 1 and all(0 < t < 1 for t in thresholds)
    assert all(0 < l["mask_pass_ratio"] <= 1 for l in log), log
    ckpt = torch.load(tmp_path/"run/checkpoints/last.pt", weights_only=False)
    assert ckpt["method"]["thresholds"]["thresholds"].tolist() == pytest.approx(thresholds, abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# Assignment 2: MaxSquare
def reference_iw_loss(logits, alpha, mask):
    B, C = logits.shape[:2]
    p = logits.softmax(1)
    pred = logits.argmax(1)
    total = 0
    for b in range(B):
        keep = mask[b]
        n = int(keep.sum())
        for c in range(C):
            sel = keep & (pred[b] == c)
            nc = int(sel.sum())
            if nc: total = total - 0.5*(p[b][:, sel]**2).sum()/(nc**alpha*n**(1 - alpha))
    return total/B


@autograder
def test_a2_map_hand_values(a2):
    uniform = torch.zeros(2, 5, 3, 4)
    out = a2.maxsquare_map(uniform)
    assert out.shape == (2, 3, 4) and torch.allclose(out, torch.full((2, 3, 4), -0.5/5))
    confident = torch.zeros(1, 4, 2, 2)
    confident[:, 1] = 30.0
    assert torch.allclose(a2.maxsquare_map(confident), torch.full((1, 2, 2), -0.5), atol=1e-6)
    two = torch.log(torch.tensor([0.75, 0.25]))[None, :, None, None]
    assert a2.maxsquare_map(two).item() == pytest.approx(-0.5*(0.75**2 + 0.25**2))


@autograder
def test_a2_stable_for_huge_logits(a2):
    logits = torch.randn(2, 6, 5, 5)*1e4
    assert torch.isfinite(a2.maxsquare_map(logits)).all()
    for alpha in (0.0, 0.2):
        assert torch.isfinite(a2.maxsquare_loss(logits, alpha))


@autograder
def test_a2_plain_loss_is_the_mean_over_kept_pixels(a2):
    logits = torch.randn(3, 5, 6, 7, generator=torch.Generator().manual_seed(1))*2
    full = a2.maxsquare_map(logits)
    assert a2.maxsquare_loss(logits).item() == pytest.approx(full.mean().item(), rel=1e-5)
    mask = torch.rand(3, 6, 7, generator=torch.Generator().manual_seed(2)) > 0.5
    assert a2.maxsquare_loss(logits, mask=mask).item() == pytest.approx(full[mask].mean().item(), rel=1e-5)
    everything = torch.ones(3, 6, 7, dtype=torch.bool)
    assert a2.maxsquare_loss(logits, mask=everything).item() == pytest.approx(full.mean().item(), rel=1e-5)
    nothing = torch.zeros(3, 6, 7, dtype=torch.bool)
    assert a2.maxsquare_loss(logits, mask=nothing) is None and a2.maxsquare_loss(logits, 0.2, nothing) is None
    assert -0.5 <= a2.maxsquare_loss(logits).item() <= -0.5/5


@autograder
def test_a2_gradient_matches_the_derivation(a2):
    logits = (torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(3))*2).requires_grad_()
    a2.maxsquare_map(logits).sum().backward()
    p = logits.detach().softmax(1)
    expected = -p*(p - (p**2).sum(1, keepdim=True))          # ∂(−½Σp²)/∂z_k = −p_k (p_k − Σ_j p_j²)
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    uniform = torch.zeros(1, 4, 2, 2, requires_grad=True)
    a2.maxsquare_map(uniform).sum().backward()
    assert torch.allclose(uniform.grad, torch.zeros_like(uniform), atol=1e-7)   # no gradient at the uniform prediction


@autograder
def test_a2_image_class_weights_hand_example(a2):
    pred = torch.tensor([[[0, 0, 0, 0], [0, 0, 1, 1]],          # image 0: 6 × class 0, 2 × class 1
                         [[2, 2, 2, 2], [2, 2, 2, 2]]])         # image 1: only class 2
    w = a2.image_class_weights(pred, 3, 0.5)
    assert w.shape == (2, 3) and torch.isfinite(w).all()
    assert w[0].tolist() == pytest.approx([1/math.sqrt(6*8), 1/math.sqrt(2*8), 0.0])
    assert w[1].tolist() == pytest.approx([0.0, 0.0, 1/8])
    assert a2.image_class_weights(pred, 3, 0.0)[0].tolist() == pytest.approx([1/8, 1/8, 0.0])
    mask = torch.zeros(2, 2, 4, dtype=torch.bool)
    mask[0, 1] = True                                           # image 0 keeps (0, 0, 1, 1); image 1 keeps nothing
    w = a2.image_class_weights(pred, 3, 0.5, mask)
    assert torch.isfinite(w).all() and w[0].tolist() == pytest.approx([1/math.sqrt(2*4), 1/math.sqrt(2*4), 0.0])
    assert w[1].tolist() == pytest.approx([0.0, 0.0, 0.0])


@autograder
@pytest.mark.parametrize("alpha", [0.2, 0.5, 1.0])
def test_a2_image_wise_loss_and_gradient_against_a_reference(a2, alpha):
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(3, 5, 6, 6, generator=g)*3).requires_grad_()
    mask = torch.rand(3, 6, 6, generator=g) > 0.3
    mask[2] = False                                             # an image with no kept pixel
    loss = a2.maxsquare_loss(logits, alpha, mask)
    (grad,) = torch.autograd.grad(loss, logits)
    ref_logits = logits.detach().clone().requires_grad_()
    ref = reference_iw_loss(ref_logits, alpha, mask)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(grad, ref_logits.grad, atol=1e-7)


@autograder
def test_a2_rare_classes_get_larger_weights(a2):
    logits = torch.zeros(1, 2, 10, 10)
    logits[0, 0] = 2.0
    logits[0, :, :1] = torch.tensor([0.0, 2.0])[:, None, None]      # row 0: class 1 (10 pixels); rows 1-9: class 0 (90)
    logits.requires_grad_()
    a2.maxsquare_loss(logits, 0.5).backward()
    g = logits.grad.abs().sum(1)[0]
    assert g[0, 0].item() / g[5, 5].item() == pytest.approx(3.0, rel=1e-4)   # (90/10)^0.5


@autograder
def test_a2_order_of_pixels_and_images_does_not_matter(a2):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, 5, 6, generator=g)*2
    perm = torch.randperm(30, generator=g)
    shuffled = logits.reshape(3, 4, 30)[:, :, perm].reshape(3, 4, 5, 6)[[2, 0, 1]]
    for alpha in (0.0, 0.2):
        expected = a2.maxsquare_loss(shuffled, alpha).item()
        assert a2.maxsquare_loss(logits, alpha).item() == pytest.approx(expected, rel=1e-5)
    assert a2.maxsquare_loss(logits, 1e-12).item() == pytest.approx(a2.maxsquare_loss(logits).item(), rel=1e-5)


@autograder
def test_a2_registered_target_losses(a2):
    from tauda.ufl import TARGET_LOSSES
    logits = torch.randn(2, 5, 4, 4, requires_grad=True)
    values = {}
    for name in ("maxsquare", "iw_maxsquare"):
        target = TARGET_LOSSES.build(name, class_weights=None, focal="adaptive", gamma=2.0, num_classes=5)
        assert getattr(target, "uses_strong_view", True) is False
        loss = target(logits)                                   # the trainer passes the weak view only
        assert loss.dim() == 0 and loss.requires_grad
        values[name] = loss.item()
    assert values["maxsquare"] == pytest.approx(a2.maxsquare_loss(logits).item())
    assert values["iw_maxsquare"] == pytest.approx(a2.maxsquare_loss(logits, 0.2).item())


@autograder
def test_a2_trains_through_the_cli(a2, request, tmp_path):
    a2.maxsquare_loss(torch.randn(1, 3, 2, 2), 0.2)                 # fails fast before any training
    log = train_with_submission("a2_maxsquare", "mini-stage1", request.getfixturevalue("source_run"), tmp_path/"run",
                                "method.target_loss=iw_maxsquare", "schedule.iterations=2")
    assert all(l["target"] < 0 for l in log) and "thresholds" not in log[-1]


# ---------------------------------------------------------------------------------------------------------------------
# Assignment 3: CutMix
def plain_views():
    from tauda.views import StrongView
    return StrongView(brightness=0, contrast=0, saturation=0, sharpness=0, shadow_p=0, noise_p=0, blur_p=0,
                      equalize_p=0)


def box_of(mask):
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    return int(rows[0]), int(cols[0]), len(rows), len(cols)


@autograder
@pytest.mark.parametrize("size, area", [((64, 128), 0.5), ((17, 31), 0.3), ((8, 8), 0.25), ((5, 40), 0.9)])
def test_a3_box_geometry(a3, size, area):
    H, W = size
    for seed in range(5):
        mask = a3.box_mask(H, W, area, torch.Generator().manual_seed(seed))
        assert mask.dtype == torch.bool and mask.shape == (H, W)
        top, left, h, w = box_of(mask)
        assert (h, w) == (round(H*math.sqrt(area)), round(W*math.sqrt(area)))
        assert mask[top:top + h, left:left + w].all() and int(mask.sum()) == h*w   # one solid rectangle


@autograder
def test_a3_box_edge_cases(a3):
    g = torch.Generator().manual_seed(0)
    assert a3.box_mask(6, 9, 1.0, g).all() and not a3.box_mask(6, 9, 0.0, g).any()
    assert a3.box_mask(1, 1, 1.0, g).tolist() == [[True]]


@autograder
def test_a3_box_depends_on_its_generator_only(a3):
    with torch.random.fork_rng():
        torch.manual_seed(1)
        a = a3.box_mask(20, 30, 0.3, torch.Generator().manual_seed(7))
        torch.manual_seed(2)
        state = torch.get_rng_state()
        b = a3.box_mask(20, 30, 0.3, torch.Generator().manual_seed(7))
        assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)  # the global RNG: neither used nor moved
    boxes = {box_of(a3.box_mask(20, 30, 0.3, torch.Generator().manual_seed(s)))[:2] for s in range(20)}
    assert len(boxes) >= 10


@autograder
def test_a3_box_positions_are_uniform(a3):
    g = torch.Generator().manual_seed(3)
    counts = torch.zeros(5, 5)
    for _ in range(2500):
        top, left, _, _ = box_of(a3.box_mask(8, 8, 0.25, g))   # a 4 × 4 box: 5 × 5 positions
        counts[top, left] += 1
    assert counts.min() > 0.6*100 and counts.max() < 1.4*100


def mixing_inputs(B=3, H=12, W=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, xt = torch.rand(B, 3, H, W, generator=g), torch.rand(B, 3, H, W, generator=g)
    ys, pseudo = torch.randint(0, 5, (B, H, W), generator=g), torch.randint(0, 5, (B, H, W), generator=g)
    ys[:, :, :3] = 255                                          # ignored source pixels
    confidence = torch.rand(B, H, W, generator=g)
    return xs, ys, xt, pseudo, confidence


@autograder
def test_a3_registered_and_built_like_cim(a3):
    from tauda.cim import MIXERS
    mixer = MIXERS.build("cutmix", None, None, long_tail_p=0.3, long_tail_classes=(2, 4), pseudo_conf=0.9,
                         views=plain_views())
    assert isinstance(mixer, a3.CutMixMixer) and mixer.pseudo_conf == 0.9
    out = mixer(*mixing_inputs(), torch.full((5,), 0.8), [1, 2, 3])
    assert out.images.shape == (3, 3, 12, 16)
    assert out.labels.shape == out.weights.shape == out.pasted.shape == (3, 12, 16)
    assert out.labels.dtype == torch.int64 and out.pasted.dtype == torch.bool and out.weights.is_floating_point()


@autograder
def test_a3_mixed_batch_contents(a3):
    xs, ys, xt, pseudo, confidence = mixing_inputs()
    inputs = [t.clone() for t in (xs, ys, xt, pseudo, confidence)]
    mixer = a3.CutMixMixer(None, None, area=0.4, pseudo_conf=0.6, views=plain_views())
    out = mixer(xs, ys, xt, pseudo, confidence, torch.full((5,), 0.8), [11, 12, 13])
    for before, after in zip(inputs, (xs, ys, xt, pseudo, confidence)): assert torch.equal(before, after)
    for k, seed in enumerate([11, 12, 13]):
        box = a3.box_mask(12, 16, 0.4, torch.Generator().manual_seed(seed))
        assert torch.equal(out.pasted[k], box)
        assert torch.allclose(out.images[k], torch.where(box, xs[k], xt[k]))
        assert torch.equal(out.labels[k], torch.where(box, ys[k], pseudo[k]))        # 255 of the source stays 255
        frac = (confidence[k] >= 0.6).float().mean()
        assert torch.allclose(out.weights[k], torch.where(box, torch.tensor(1.0), frac))


@autograder
def test_a3_samples_are_seeded_and_independent(a3):
    from tauda.views import StrongView, photometric
    xs, ys, xt, pseudo, confidence = mixing_inputs(seed=1)
    mixer = a3.CutMixMixer(None, None, area=0.5, views=StrongView())
    theta = torch.full((5,), 0.8)
    out = mixer(xs, ys, xt, pseudo, confidence, theta, [5, 6, 7])
    again = mixer(xs, ys, xt, pseudo, confidence, theta, [5, 6, 7])
    assert torch.equal(out.images, again.images) and torch.equal(out.pasted, again.pasted)
    one = mixer(xs[1:2], ys[1:2], xt[1:2], pseudo[1:2], confidence[1:2], theta, [6])
    assert torch.equal(one.images[0], out.images[1]) and torch.equal(one.labels[0], out.labels[1])
    g = torch.Generator().manual_seed(6)                        # the box first, then the photometric jitter
    box = a3.box_mask(12, 16, 0.5, g)
    assert torch.allclose(out.images[1], photometric(torch.where(box, xs[1], xt[1]), g, StrongView()))


@autograder
def test_a3_trains_through_the_cli(a3, request, tmp_path):
    a3.box_mask(4, 4, 0.5, torch.Generator())                   # fails fast before any training
    log = train_with_submission("a3_cutmix", "mini-stage2", request.getfixturevalue("stage1_run"), tmp_path/"run",
                                "method.mixer=cutmix", "schedule.iterations=2")
    area = round(64*math.sqrt(0.5))*round(128*math.sqrt(0.5))/(64*128)
    assert all(l["mix"] > 0 and l["pasted_ratio"] == pytest.approx(area, rel=1e-6) for l in log)


# ---------------------------------------------------------------------------------------------------------------------
# The autograder itself: starters and solutions share their interface; every check fails on the starters.
def interface(path: Path) -> dict:
    "Public functions and classes of a module with their parameters, and the names it registers."
    tree, out = ast.parse(path.read_text()), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            out[node.name] = [ast.unparse(d) for d in node.decorator_list]
            if isinstance(node, ast.FunctionDef): out[node.name].append(ast.unparse(node.args))
            else: out[node.name] += [(f.name, ast.unparse(f.args)) for f in node.body if isinstance(f, ast.FunctionDef)]
    return out


@pytest.mark.parametrize("module", MODULES)
def test_starter_and_solution_have_the_same_interface(module):
    assert interface(STARTERS/f"{module}.py") == interface(SOLUTIONS/f"{module}.py")


def test_autograders_fail_on_the_starters(tmp_path):
    report = tmp_path/"starters.xml"
    env = {**os.environ, "TAUDA_SUBMISSION": str(STARTERS)}
    subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-m", "autograder", "-q",
                    "-p", "no:cacheprovider",
                    f"--junitxml={report}"], capture_output=True, text=True, env=env, cwd=ROOT)
    cases = ET.parse(report).getroot().iter("testcase")
    outcome = {c.get("name"): ("failed" if c.find("failure") is not None or c.find("error") is not None
                               else "skipped" if c.find("skipped") is not None else "passed") for c in cases}
    graded = [n for n in outcome if n.startswith("test_a")]
    assert {n[:7] for n in graded} == {"test_a1", "test_a2", "test_a3"}
    assert len(graded) >= 30
    assert all(outcome[n] == "failed" for n in graded), {n: o for n, o in outcome.items() if o != "failed"}
    assert "NotImplementedError" in report.read_text()
