"""Public checks of the course assignments: the interface, the shapes and each notebook's worked example.

    python assignments/check.py a1 [a2 a3 a4] [--submission DIR]     (DIR: the folder of your modules; default: here)

or, in an assignment's notebook, `check("a1")`. Passing them means your module plugs into tauda and agrees with the
notebook's worked example, nothing more: the grader tests the behaviour far more thoroughly (edge cases, invariances,
a few iterations of training) and checks your graded answers against tolerances. A part you have not written yet
(`NotImplementedError`, or an answer left at `None`) is reported as "to do".
"""
import argparse
import importlib.util
import math
import sys
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
MODULES = {"a1": "a1_thresholds", "a2": "a2_maxsquare", "a3": "a3_cutmix", "a4": "a4_entry"}


def registries() -> dict:
    "tauda's three extension registries, by kind."
    from tauda.cim import MIXERS
    from tauda.ufl import TARGET_LOSSES, THRESHOLD_RULES
    return {"threshold rule": THRESHOLD_RULES, "target loss": TARGET_LOSSES, "mixer": MIXERS}


def load(assignment: str, submission=HERE):
    "Import the module of `assignment` from the folder `submission`, afresh; `(module, {kind: {name: entry}})`."
    name = MODULES[assignment]
    path = Path(submission)/f"{name}.py"
    if not path.is_file(): raise FileNotFoundError(f"no {name}.py in {Path(submission).resolve()}")
    before = {kind: dict(r) for kind, r in registries().items()}
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    added = {kind: {k: v for k, v in r.items() if before[kind].get(k) is not v} for kind, r in registries().items()}
    return module, added


def probabilities_of(conf, cls, num_classes) -> torch.Tensor:
    "Probability maps `[1, C, 1, N]` whose pixel n has confidence `conf[n]` on class `cls[n]` (the rest shared)."
    conf, cls = torch.tensor(conf), torch.tensor(cls)
    probs = ((1 - conf)/(num_classes - 1))[:, None].repeat(1, num_classes)
    probs[torch.arange(len(conf)), cls] = conf
    return probs.T[None, :, None, :]


def answered(module, shapes: dict):
    "ANSWERS holds each key with a number or a list of `n` numbers (`shapes`: key → n, 0 for a single number)."
    answers = getattr(module, "ANSWERS", None)
    assert isinstance(answers, dict), "the module has no ANSWERS dict"
    missing = [k for k in shapes if answers.get(k) is None]
    if missing: raise NotImplementedError(f"not answered yet: {', '.join(missing)}")
    for key, n in shapes.items():
        value = answers[key]
        values = [value] if n == 0 else list(value)
        assert len(values) == max(n, 1), f"ANSWERS[{key!r}]: expected {n or 'one'} number(s), got {value!r}"
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in values), f"ANSWERS[{key!r}] = {value!r}"


# ---------------------------------------------------------------------------------------------------------------------
def a1_registered(module, added):
    from tauda.ufl import THRESHOLD_RULES, ThresholdRule
    assert "class_balanced" in added["threshold rule"], "the module registers no threshold rule 'class_balanced'"
    rule = THRESHOLD_RULES.build("class_balanced", 6, tau0=0.7, b=0.8, beta=0.9, d=8)   # what the trainer passes
    assert isinstance(rule, ThresholdRule), "the rule is not a tauda.ufl.ThresholdRule"
    assert rule.thresholds.dtype == torch.float64 and rule.thresholds.tolist() == [0.7]*6, rule.thresholds


def a1_shapes(module, added):
    rule = added["threshold rule"]["class_balanced"](6)
    probs = torch.softmax(torch.randn(2, 6, 5, 7, generator=torch.Generator().manual_seed(0))*3, 1)
    mask = rule.update(probs)
    assert mask.dtype == torch.bool and mask.shape == (2, 5, 7), f"mask {mask.dtype} {tuple(mask.shape)}"
    t = rule.thresholds
    assert t.dtype == torch.float64 and t.shape == (6,) and t.device.type == "cpu", f"thresholds {t.dtype} {t.shape}"


def a1_worked_example(module, added):
    Rule = added["threshold rule"]["class_balanced"]
    probs = probabilities_of([0.9, 0.8, 0.7, 0.6, 0.5, 0.95], [0, 0, 0, 0, 1, 2], 4)
    rule = Rule(4, tau0=0.8, beta=0.0, portion=0.5)
    mask = rule.update(probs)
    assert rule.thresholds.tolist() == pytest_approx([0.8, 0.5, 0.95, 0.8]), f"β = 0: thresholds {rule.thresholds}"
    assert mask.flatten().tolist() == [True, True, False, False, True, True], f"β = 0: mask {mask.flatten()}"
    rule = Rule(4, tau0=0.8, beta=0.9, portion=0.5)
    mask = rule.update(probs)
    assert rule.thresholds.tolist() == pytest_approx([0.8, 0.77, 0.815, 0.8]), f"β = 0.9: thresholds {rule.thresholds}"
    assert mask.flatten().tolist() == [True, True, False, False, False, True], f"β = 0.9: mask {mask.flatten()}"


def a1_answers(module, added):
    answered(module, {"settle_class_balanced": 5, "settle_adaptive": 5, "kept_adaptive": 5})


# ---------------------------------------------------------------------------------------------------------------------
def a2_registered(module, added):
    from tauda.ufl import TARGET_LOSSES
    for name in ("maxsquare", "iw_maxsquare"):
        assert name in added["target loss"], f"the module registers no target loss {name!r}"
        loss = TARGET_LOSSES.build(name, class_weights=None, focal="adaptive", gamma=2.0, num_classes=5)
        assert getattr(loss, "uses_strong_view", True) is False, f"{name}: uses_strong_view must be False"
    assert TARGET_LOSSES.build("iw_maxsquare", alpha=0.5).alpha == 0.5, "iw_maxsquare takes the option alpha"


def a2_shapes(module, added):
    logits = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    for name in ("maxsquare", "iw_maxsquare"):
        loss = added["target loss"][name]()
        value = loss(logits)
        assert torch.is_tensor(value) and value.dim() == 0 and value.requires_grad, f"{name}: {value!r}"
        assert loss(logits, None, torch.zeros(2, 4, 4, dtype=torch.bool)) is None, f"{name}: no pixel kept → None"


def a2_worked_example(module, added):
    pred = torch.tensor([[[0, 0, 0, 0], [0, 0, 1, 1]],          # image 0: 6 pixels of class 0, 2 of class 1
                         [[2, 2, 2, 2], [2, 2, 2, 2]]])         # image 1: 8 pixels of class 2
    logits = 30.0*torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()   # p ≈ one-hot: ℓ ≈ −½
    uniform = added["target loss"]["maxsquare"]()(torch.zeros(1, 5, 2, 2))
    assert uniform.item() == pytest_approx(-0.1), f"uniform prediction, C = 5: {uniform.item()} (expected −0.1)"
    plain = added["target loss"]["maxsquare"]()(logits)
    assert plain.item() == pytest_approx(-0.5), f"maxsquare, one-hot: {plain.item()} (expected −0.5)"
    weighted = added["target loss"]["iw_maxsquare"](alpha=0.5)(logits)
    expected = -0.5*(6/math.sqrt(6*8) + 2/math.sqrt(2*8) + 8/math.sqrt(8*8))/2
    assert weighted.item() == pytest_approx(expected), f"iw_maxsquare, α = ½: {weighted.item()} (expected {expected})"


def a2_answers(module, added):
    answered(module, {"peak_entropy": 0, "peak_maxsquare": 0, "peak_ratio": 0, "iw_pixel_ratio": 0,
                      "iw_class_ratio": 0})


# ---------------------------------------------------------------------------------------------------------------------
def plain_views():
    "A strong view that changes nothing (no photometric jitter), to read mixed images exactly."
    from tauda.views import StrongView
    return StrongView(brightness=0, contrast=0, saturation=0, sharpness=0, shadow_p=0, noise_p=0, blur_p=0,
                      equalize_p=0)


def mixing_inputs(B=2, H=8, W=16):
    g = torch.Generator().manual_seed(0)
    xs, xt = torch.rand(B, 3, H, W, generator=g), torch.rand(B, 3, H, W, generator=g)
    ys, pseudo = torch.randint(0, 5, (B, H, W), generator=g), torch.randint(0, 5, (B, H, W), generator=g)
    confidence = torch.rand(B, H, W, generator=g)
    return xs, ys, xt, pseudo, confidence


def a3_registered(module, added):
    from tauda.cim import MIXERS
    assert "cutmix" in added["mixer"], "the module registers no mixer 'cutmix'"
    mixer = MIXERS.build("cutmix", None, None, long_tail_p=0.3, long_tail_classes=(2, 4), pseudo_conf=0.9,
                         views=plain_views())                  # what the trainer passes
    assert mixer.pseudo_conf == 0.9 and mixer.area == 0.5, "options pseudo_conf and area (default 0.5)"


def a3_shapes(module, added):
    out = added["mixer"]["cutmix"](None, None)(*mixing_inputs(3, 12, 16), torch.full((5,), 0.8), [1, 2, 3])
    assert out.images.shape == (3, 3, 12, 16), f"images {tuple(out.images.shape)}"
    assert out.labels.shape == out.weights.shape == out.pasted.shape == (3, 12, 16)
    assert out.labels.dtype == torch.int64 and out.pasted.dtype == torch.bool and out.weights.is_floating_point()


def a3_worked_example(module, added):
    xs, ys, xt, pseudo, confidence = mixing_inputs(1, 8, 16)
    confidence[:, :4] = 0.99                                     # the top half: confident pseudo-labels
    confidence[:, 4:] = 0.5
    out = added["mixer"]["cutmix"](None, None, area=0.5, pseudo_conf=0.968, views=plain_views())(
        xs, ys, xt, pseudo, confidence, torch.full((5,), 0.8), [0])
    box = out.pasted[0]
    rows, cols = box.any(1).nonzero()[:, 0], box.any(0).nonzero()[:, 0]
    assert (len(rows), len(cols)) == (6, 11) and int(box.sum()) == 66, "8 × 16, area ½: a solid box of 6 × 11 pixels"
    assert torch.equal(out.images[0], torch.where(box, xs[0], xt[0])), "image: source inside the box, target outside"
    assert torch.equal(out.labels[0], torch.where(box, ys[0], pseudo[0])), "label: source inside, pseudo-label outside"
    assert torch.allclose(out.weights[0], torch.where(box, 1.0, 0.5)), "weights: 1 inside, 0.5 (DACS) outside"


def a3_answers(module, added):
    answered(module, {"coverage": 3, "pasted_share": 0, "paste_probabilities": 10, "paste_ratio": 0,
                      "temperature": 0})


# ---------------------------------------------------------------------------------------------------------------------
def a4_registers_an_entry(module, added):
    names = [f"{kind} {name!r}" for kind, entries in added.items() for name in entries]
    assert names, "the module registers no target loss, threshold rule or mixer"
    print("    registers: " + ", ".join(names))


def a4_entries_run(module, added):
    from tauda.cim import MixedBatch
    from tauda.registry import call_with_accepted
    from tauda.ufl import ThresholdRule
    g = torch.Generator().manual_seed(0)
    weak, strong = (torch.randn(2, 10, 8, 16, generator=g).requires_grad_() for _ in range(2))
    for name, make in added["target loss"].items():
        loss = call_with_accepted(make, class_weights=None, focal="adaptive", gamma=2.0, num_classes=10)
        mask = torch.rand(2, 8, 16, generator=g) > 0.5
        value = loss(weak, strong, mask) if getattr(loss, "uses_strong_view", False) else loss(weak)
        assert value is None or (value.dim() == 0 and value.requires_grad), f"target loss {name!r}: {value!r}"
    for name, make in added["threshold rule"].items():
        rule = call_with_accepted(make, 10, tau0=0.8, b=0.8, beta=0.9, d=8)
        assert isinstance(rule, ThresholdRule), f"threshold rule {name!r} is not a tauda.ufl.ThresholdRule"
        mask = rule.update(weak.detach().softmax(1))
        assert mask.dtype == torch.bool and mask.shape == (2, 8, 16) and rule.thresholds.dtype == torch.float64
    for name, make in added["mixer"].items():
        mixer = call_with_accepted(make, None, None, long_tail_p=0.3, long_tail_classes=(2, 4), pseudo_conf=0.968,
                                   views=plain_views())
        out = mixer(*mixing_inputs(2, 8, 16), torch.full((10,), 0.8), [1, 2])
        assert out is None or isinstance(out, MixedBatch), f"mixer {name!r} returns {type(out).__name__}"


CHECKS = {
    "a1": [("registered as 'class_balanced', built as the trainer builds it", a1_registered),
           ("update: a bool mask [B, H, W], thresholds [C] float64 on the CPU", a1_shapes),
           ("the notebook's worked example (six pixels, β = 0 and β = 0.9)", a1_worked_example),
           ("graded answers filled in (format only)", a1_answers)],
    "a2": [("registered as 'maxsquare' and 'iw_maxsquare' (option alpha), weak view only", a2_registered),
           ("a scalar with a gradient; None when no pixel is kept", a2_shapes),
           ("the notebook's worked example (uniform, one-hot, image-wise α = ½)", a2_worked_example),
           ("graded answers filled in (format only)", a2_answers)],
    "a3": [("registered as 'cutmix', built as the trainer builds it (area 0.5 by default)", a3_registered),
           ("a MixedBatch of the right shapes and dtypes", a3_shapes),
           ("the notebook's worked example (8 × 16, area ½, plain views)", a3_worked_example),
           ("graded answers filled in (format only)", a3_answers)],
    "a4": [("registers at least one entry", a4_registers_an_entry),
           ("each entry builds as the trainer builds it and runs on a small batch", a4_entries_run)],
}


def pytest_approx(values, rel=1e-6, abs_=1e-9):
    "A value (or list) that compares equal within tolerance, like pytest.approx (no pytest needed)."
    class Approx:
        def __eq__(self, other):
            a, b = (list(other), list(values)) if isinstance(values, list) else ([other], [values])
            return len(a) == len(b) and all(abs(x - y) <= max(rel*abs(y), abs_) for x, y in zip(a, b))
        def __repr__(self): return repr(values)
    return Approx()


def check(assignment: str, submission=HERE, verbose: bool = True) -> dict:
    "Run the public checks of `assignment` on the module in `submission`; `{title: 'pass' | 'to do' | 'fail'}`."
    results = {}
    try: module, added = load(assignment, submission)
    except Exception as e:
        results["the module imports"] = "fail"
        if verbose: print(f"✗ {MODULES[assignment]}.py does not import: {type(e).__name__}: {e}")
        return results
    if verbose:
        folder = Path(submission).resolve()
        shown = folder.relative_to(HERE.parent) if folder.is_relative_to(HERE.parent) else folder
        print(f"public checks of {shown/MODULES[assignment]}.py:")
    for title, fn in CHECKS[assignment]:
        try:
            fn(module, added)
            results[title], line = "pass", f"✓ {title}"
        except NotImplementedError as e:
            results[title], line = "to do", f"· {title}: to do ({e})"
        except AssertionError as e:
            results[title], line = "fail", f"✗ {title}: {e}"
        except Exception as e:
            where = traceback.extract_tb(e.__traceback__)[-1]
            results[title] = "fail"
            line = f"✗ {title}: {type(e).__name__}: {e} ({Path(where.filename).name}, line {where.lineno})"
        if verbose: print("  " + line)
    if verbose:
        passed = sum(r == "pass" for r in results.values())
        print(f"  {passed} of {len(results)} passed; the grader tests much more (see the notebook)")
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("assignments", nargs="+", choices=sorted(MODULES))
    p.add_argument("--submission", default=str(HERE), help="the folder of your modules (default: assignments/)")
    args = p.parse_args(argv)
    results = [check(a, args.submission) for a in args.assignments]
    return 0 if all(r == "pass" for result in results for r in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
