"""Hidden grader of assignment 1 (class-balanced thresholds): the rule against its mathematical definition.

Every check takes a `Submission` and raises AssertionError when the behaviour is wrong. The naive reference below is
written from the notebook's definition (sorting, loops) and shares no code with the reference solution.
"""
import math

import torch

from .common import close, probabilities, registered

NAME = "class_balanced"
PORTIONS = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)   # exact in binary: ⌈π n⌉ has no rounding ambiguity


def thresholds_of(rule):
    "The rule's thresholds, after checking the interface: `[C]` float64 on the CPU, no gradient."
    t = rule.thresholds
    assert torch.is_tensor(t) and t.dtype == torch.float64 and t.device.type == "cpu" and not t.requires_grad, \
        f"thresholds must be a float64 tensor on the CPU without gradient, got {getattr(t, 'dtype', type(t))}"
    return t


def rule_class(sub):
    from tauda.ufl import ThresholdRule
    cls = sub.entry("threshold rule", NAME)
    assert isinstance(cls, type) and issubclass(cls, ThresholdRule), "the rule must subclass tauda.ufl.ThresholdRule"
    return cls


def naive_psi(conf, cls, num_classes, portion):
    "ψ_c = the k-th largest confidence of class c, k = max(1, ⌈π n_c⌉); `None` for an absent class."
    psi = []
    for c in range(num_classes):
        values = sorted((float(v) for v in conf[cls == c].double()), reverse=True)
        psi.append(values[max(1, math.ceil(portion*len(values))) - 1] if values else None)
    return psi


def naive_step(theta, probs, valid, beta, portion):
    "The rule's new thresholds and mask, from the definition."
    conf, cls = probs.double().max(1)
    valid = torch.ones_like(conf, dtype=torch.bool) if valid is None else valid
    psi = naive_psi(conf[valid], cls[valid], len(theta), portion)
    new = torch.tensor([min(beta*t + (1 - beta)*p, 0.999) if p is not None else min(t, 0.999)
                        for t, p in zip(theta.tolist(), psi)], dtype=torch.float64)
    return new, (conf >= new[cls]) & valid


def quantised(*shape, seed):
    "Probability maps whose confidences take few distinct values (many ties, exactly representable)."
    g = torch.Generator().manual_seed(seed)
    B, C, H, W = shape
    cls = torch.randint(0, C, (B, H, W), generator=g)
    conf = 0.5 + torch.randint(0, 9, (B, H, W), generator=g).double()/16            # 0.5 … 1.0 in steps of 1/16
    probs = ((1 - conf)/(C - 1))[:, None].repeat(1, C, 1, 1)
    probs.scatter_(1, cls[:, None], conf[:, None])
    return probs


def check_built_like_the_trainer(sub):
    from tauda.ufl import THRESHOLD_RULES
    cls = rule_class(sub)
    with registered(THRESHOLD_RULES, NAME, cls):
        rule = THRESHOLD_RULES.build(NAME, 6, tau0=0.7, b=0.8, beta=0.9, d=8)          # what the trainer passes
    assert thresholds_of(rule).tolist() == [0.7]*6, f"τ0 = 0.7: thresholds {rule.thresholds}"
    assert (rule.beta, rule.portion) == (0.9, 0.5), "defaults: beta 0.9, portion 0.5"


def check_one_step_against_the_definition(sub):
    Rule = rule_class(sub)
    for k, portion in enumerate(PORTIONS):
        probs = quantised(3, 5, 7, 9, seed=k)
        probs[:, :, 0, 0] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)   # class 4 present
        rule = Rule(5, tau0=0.8, beta=0.0, portion=portion)
        mask = rule.update(probs)
        theta, expected = naive_step(torch.full((5,), 0.8, dtype=torch.float64), probs, None, 0.0, portion)
        assert torch.allclose(thresholds_of(rule), theta, atol=1e-12), f"portion {portion}: {rule.thresholds} ≠ {theta}"
        assert torch.equal(mask, expected), f"portion {portion}: the mask keeps {int(mask.sum())} pixels, " \
                                            f"the definition {int(expected.sum())}"


def check_each_class_keeps_its_portion(sub):
    Rule = rule_class(sub)
    for portion in (0.25, 0.5, 0.75):
        probs = probabilities(3, 5, 11, 13, sharpness=2.0, seed=2)
        mask = Rule(5, beta=0.0, portion=portion).update(probs)
        cls = probs.argmax(1)
        for c in range(5):
            n = int((cls == c).sum())
            if n: assert int(mask[cls == c].sum()) == max(1, math.ceil(portion*n)), f"class {c}, portion {portion}"


def check_momentum_over_steps_and_absent_classes(sub):
    Rule = rule_class(sub)
    rule = Rule(4, tau0=0.8, beta=0.9, portion=0.5)
    theta = torch.full((4,), 0.8, dtype=torch.float64)
    for step in range(4):
        probs = probabilities(2, 4, 6, 6, seed=10 + step)
        probs[:, 3] = 0                                           # class 3 is never predicted: θ_3 stays
        mask = rule.update(probs)
        theta, expected = naive_step(theta, probs, None, 0.9, 0.5)
        assert torch.allclose(thresholds_of(rule), theta, atol=1e-9), f"step {step}: {rule.thresholds} ≠ {theta}"
        assert torch.equal(mask, expected), f"step {step}: the mask is not the one of the updated thresholds"


def check_invalid_pixels_count_nowhere(sub):
    Rule = rule_class(sub)
    probs = probabilities(2, 5, 8, 9, seed=3)
    valid = torch.rand(2, 8, 9, generator=torch.Generator().manual_seed(4)) > 0.4
    other = probs.clone()
    other[~valid[:, None].expand_as(probs)] = 0
    other[:, 0][~valid] = 1.0                                     # invalid pixels: confident class 0
    a, b = Rule(5, beta=0.5), Rule(5, beta=0.5)
    mask_a, mask_b = a.update(probs, valid), b.update(other, valid)
    theta, expected = naive_step(torch.full((5,), 0.8, dtype=torch.float64), probs, valid, 0.5, 0.5)
    assert torch.allclose(thresholds_of(a), theta, atol=1e-9), f"thresholds {a.thresholds} ≠ {theta}"
    assert torch.allclose(thresholds_of(b), theta, atol=1e-9), "the probabilities of invalid pixels changed them"
    assert torch.equal(mask_a, expected) and not mask_b[~valid].any(), "an invalid pixel is kept"
    c, d = Rule(5, beta=0.5), Rule(5, beta=0.5)
    assert torch.equal(c.update(probs), d.update(probs, torch.ones(2, 8, 9, dtype=torch.bool)))
    assert torch.equal(c.thresholds, d.thresholds), "valid = all pixels must equal valid = None"


def check_pixel_and_batch_order_do_not_matter(sub):
    Rule = rule_class(sub)
    probs = probabilities(2, 5, 6, 8, seed=5)
    a, b = Rule(5, beta=0.3, portion=0.25), Rule(5, beta=0.3, portion=0.25)
    mask = a.update(probs)
    perm = torch.randperm(2*6*8, generator=torch.Generator().manual_seed(6))
    flat = probs.permute(1, 0, 2, 3).reshape(5, -1)[:, perm].reshape(5, 2, 6, 8).permute(1, 0, 2, 3)
    mask_b = b.update(flat.contiguous())
    assert torch.allclose(thresholds_of(a), thresholds_of(b)), "the order of the pixels changed the thresholds"
    assert torch.equal(mask.flatten()[perm], mask_b.flatten()), "the order of the pixels changed the mask"


def check_thresholds_are_capped_below_one(sub):
    Rule = rule_class(sub)
    onehot = torch.nn.functional.one_hot(torch.randint(0, 3, (2, 5, 5)), 4).permute(0, 3, 1, 2).double()
    rule = Rule(4, beta=0.0)
    mask = rule.update(onehot)
    assert rule.thresholds.max().item() == 0.999 and mask.all(), "ψ = 1: θ = 0.999 and every one-hot pixel kept"
    probs = torch.full((1, 4, 4, 4), 0.0005/3, dtype=torch.float64)
    probs[:, 0] = 0.9995                                          # class 0: every pixel at 0.9995
    rule = Rule(4, beta=0.0)
    rule.update(probs)
    assert rule.thresholds[0].item() == 0.999, f"θ = min(…, 0.999) also below 1: {rule.thresholds[0].item()}"


def check_no_gradient_no_side_effects_any_float_dtype(sub):
    Rule = rule_class(sub)
    for dtype in (torch.float32, torch.float64):
        probs = probabilities(1, 3, 4, 4, seed=7, dtype=dtype).requires_grad_()
        before = probs.detach().clone()
        rule = Rule(3)
        mask = rule.update(probs)
        assert torch.equal(probs.detach(), before), "update changed its input"
        thresholds_of(rule)
        assert rule.thresholds.device.type == "cpu" and mask.dtype == torch.bool and not mask.requires_grad


def check_state_dict_round_trip(sub):
    Rule = rule_class(sub)
    rule = Rule(5, beta=0.7)
    for s in range(2): rule.update(probabilities(2, 5, 6, 6, seed=20 + s))
    again = Rule(5, beta=0.7)
    again.load_state_dict(rule.state_dict())
    assert torch.equal(again.thresholds, rule.thresholds)
    probs = probabilities(2, 5, 6, 6, seed=30)
    assert torch.equal(rule.update(probs), again.update(probs)) and torch.equal(rule.thresholds, again.thresholds)


CHECKS = [check_built_like_the_trainer, check_one_step_against_the_definition, check_each_class_keeps_its_portion,
          check_momentum_over_steps_and_absent_classes, check_invalid_pixels_count_nowhere,
          check_pixel_and_batch_order_do_not_matter, check_thresholds_are_capped_below_one,
          check_no_gradient_no_side_effects_any_float_dtype, check_state_dict_round_trip]


# ---------------------------------------------------------------------------------------------------------------------
EASE, C = (12.0, 8.0, 4.0, 2.0, 1.0), 5     # the notebook's synthetic stream: m = 1/C + (1 − 1/C)·u^(1/a_c)


def tail(t: float, a: float) -> float:
    "P(m ≥ t) for the confidence of a class with spread `a`."
    return 1 - ((t - 1/C)/(1 - 1/C))**a


def bisect(f, low: float, high: float) -> float:
    "The root of a decreasing `f` on [low, high]."
    for _ in range(100):
        mid = (low + high)/2
        low, high = (mid, high) if f(mid) > 0 else (low, mid)
    return (low + high)/2


def expected_answers(portion=0.5, b=0.8, d=8.0) -> dict:
    "Fixed points of both rules for each class of the stream, and the share the adaptive rule keeps there."
    cb = [bisect(lambda t, a=a: tail(t, a) - portion, 1/C, 1) for a in EASE]
    ad = [bisect(lambda t, a=a: tail(t, a) - b*t**d, 1/C, 1) for a in EASE]
    return {"settle_class_balanced": cb, "settle_adaptive": ad, "kept_adaptive": [b*t**d for t in ad]}


def check_answers(sub):
    for key, expected in expected_answers().items(): close(sub.answers.get(key), expected, 0.01, key)


def check_training(sub, folder, source_run, out):
    "Three iterations of `tauda train mini-stage1 --import a1_thresholds --set method.thresholds.rule=class_balanced`."
    from .common import train_with
    log = train_with(folder, "a1_thresholds", "mini-stage1", source_run.checkpoint, source_run.data, out,
                     "method.thresholds.rule=class_balanced", "method.thresholds.tau0=0.2", "schedule.iterations=3")
    thresholds = log[-1]["thresholds"]
    assert len(thresholds) == 10 and len(set(thresholds)) > 1 and all(0 < t < 1 for t in thresholds), thresholds
    assert all(0 < entry["mask_pass_ratio"] <= 1 for entry in log), log
    stored = torch.load(out/"checkpoints"/"last.pt", weights_only=False)["method"]["thresholds"]["thresholds"]
    assert torch.allclose(stored, torch.tensor(thresholds, dtype=torch.float64), atol=1e-5), "thresholds not saved"
