"""The choices that make the method's lesson visible: `method.ufl.detach_focal` (the focal factor with or without its
gradient), `method.mixing.long_tail_temperature` (the paste distribution softmax(1/(T·θ))), the fixed point of the
adaptive thresholds, and every stored study record current with the config it was trained with."""
import functools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tauda.cim import MIXERS, paste_probabilities
from tauda.config import ConfigError, apply_overrides, check_config, get_preset
from tauda.thresholds import empirical_survival, fixed_point, settled_thresholds
from tauda.ufl import TARGET_LOSSES, AdaptiveThreshold, ufl_loss

ROOT = Path(__file__).resolve().parent.parent


def reference_ufl(weak, strong, mask, w, focal, gamma=2.0):
    "The loss as it was written before `detach_focal` existed (the authors' code: φ keeps its gradient)."
    n, i, j = mask.nonzero(as_tuple=True)
    kept = lambda z: z.movedim(1, -1)[n, i, j]
    weak, strong = kept(weak), kept(strong)
    logp = F.log_softmax(weak, dim=-1)
    p = logp.exp()
    pbar, logpbar = p.detach(), logp.detach()
    logq = F.log_softmax(strong, dim=-1)
    conf, yhat = pbar.max(-1, keepdim=True)
    q_y = logq.gather(-1, yhat).exp()
    phi = (1 - q_y)**gamma if focal == "adaptive" else (conf - q_y).abs()**gamma
    return (w.to(weak)*(pbar*logpbar - phi*pbar*logq - p*logp)).sum(-1).clamp(min=1e-8).mean()


def views(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    weak = torch.randn(2, 6, 5, 7, generator=g, dtype=dtype)*2
    strong = torch.randn(2, 6, 5, 7, generator=g, dtype=dtype)*2
    return weak, strong, torch.rand(2, 5, 7, generator=g) > 0.3, torch.rand(6, generator=g, dtype=dtype) + 0.5


def grads(loss_fn, weak, strong):
    wk, sk = weak.clone().requires_grad_(), strong.clone().requires_grad_()
    value = loss_fn(wk, sk)
    value.backward()
    return value.detach(), wk.grad, sk.grad


@pytest.mark.parametrize("focal", ["adaptive", "consistency"])
def test_default_focal_factor_keeps_todays_values_and_gradients(focal):
    "The default is the explicit `detach_focal=False`, bit for bit, and the loss as it was written, to rounding."
    weak, strong, mask, w = views()
    new = grads(lambda a, b: ufl_loss(a, b, mask, w, focal), weak, strong)
    explicit = grads(lambda a, b: ufl_loss(a, b, mask, w, focal, detach_focal=False), weak, strong)
    old = grads(lambda a, b: reference_ufl(a, b, mask, w, focal), weak, strong)
    for x, y, z in zip(new, explicit, old):   # the class-first layout computes the same numbers in another order
        assert torch.equal(x, y) and (x - z).abs().max() <= 1e-5*z.abs().max()


@pytest.mark.parametrize("focal", ["adaptive", "consistency"])
def test_detached_focal_factor_changes_only_the_strong_views_gradient(focal):
    weak, strong, mask, w = views(torch.float64)
    kept_value, kept_weak, kept_strong = grads(lambda a, b: ufl_loss(a, b, mask, w, focal), weak, strong)
    value, g_weak, g_strong = grads(lambda a, b: ufl_loss(a, b, mask, w, focal, detach_focal=True), weak, strong)
    assert torch.equal(value, kept_value) and torch.equal(g_weak, kept_weak)   # same value, same weak gradient
    # detached: ∂ℓ/∂z̃ = φ·(q·W̄ − w·p̄) per kept pixel, divided by the number of kept pixels
    rows = lambda z: z.movedim(1, -1)[mask]
    pbar, q = rows(weak).softmax(-1), rows(strong).softmax(-1)
    conf, y = pbar.max(-1, keepdim=True)
    q_y = q.gather(-1, y)
    phi = (1 - q_y)**2 if focal == "adaptive" else (conf - q_y)**2
    expected = phi*(q*(w*pbar).sum(-1, keepdim=True) - w*pbar)/mask.sum()
    assert torch.allclose(rows(g_strong), expected, atol=1e-12)
    assert not torch.allclose(g_strong, kept_strong)                           # the kept φ adds its own gradient


def test_detach_focal_is_a_checked_config_field_that_reaches_the_loss(stage1_run, tmp_path):
    from tauda.train import Trainer
    assert get_preset("mini-stage1").method.ufl.detach_focal is False              # default: the authors' code
    with pytest.raises(ConfigError, match="detach_focal"): apply_overrides(get_preset("mini-stage1"),
                                                                           ["method.ufl.detach_focal=maybe"])
    assert TARGET_LOSSES.build("ufl", detach_focal=True).detach_focal
    source = stage1_run.config.init
    runs = {}
    for detach in (False, True):
        sets = [f"data_root={stage1_run.data}", f"init={source}", f"method.ufl.detach_focal={str(detach).lower()}",
                "method.thresholds.tau0=0.5", "schedule.iterations=2", "schedule.log_every=1", "data.batch_size=2",
                "log.tensorboard=false"]
        cfg = apply_overrides(get_preset("mini-stage1"), sets)
        trainer = Trainer(cfg, tmp_path/str(detach), progress=False)
        assert trainer.method.target.detach_focal is detach
        trainer.fit()
        runs[detach] = ([json.loads(l) for l in (tmp_path/str(detach)/"log.jsonl").read_text().splitlines()],
                        trainer.model.state_dict())
    (log_kept, w_kept), (log_det, w_det) = runs[False], runs[True]
    assert log_kept[0]["target"] == log_det[0]["target"]                       # the same value at the first step...
    assert any(not torch.equal(a, b) for a, b in zip(w_kept.values(), w_det.values()))  # ...different gradients


def test_paste_temperature_one_is_the_papers_softmax_and_others_sharpen_or_flatten():
    theta = torch.tensor([0.86, 0.92, 0.96, 0.87, 0.95, 0.97, 0.97, 0.85, 0.77, 0.95], dtype=torch.float64)
    available = torch.ones(10, dtype=torch.bool)
    assert torch.equal(paste_probabilities(theta, available), torch.softmax(1/theta, 0))
    assert torch.equal(paste_probabilities(theta, available, 1.0), torch.softmax(1/theta, 0))
    sharp, flat = paste_probabilities(theta, available, 0.05), paste_probabilities(theta, available, 20.0)
    assert sharp.argmax() == theta.argmin() and sharp.max() > 0.75
    assert (flat - 0.1).abs().max() < 0.01
    available[3] = False
    assert paste_probabilities(theta, available, 0.5)[3] == 0
    with pytest.raises(ValueError, match="positive"): paste_probabilities(theta, available, 0.0)


def test_paste_temperature_is_a_checked_config_field_that_reaches_the_mixer(stage1_run, tmp_path):
    from tauda.train import Trainer
    cfg = get_preset("mini-stage2")
    assert cfg.method.mixing.long_tail_temperature == 1.0
    with pytest.raises(ConfigError, match="long_tail_temperature"):
        check_config(apply_overrides(get_preset("mini-stage2"), ["method.mixing.long_tail_temperature=0"]))
    assert MIXERS.build("cim", None, None, long_tail_temperature=0.3).temperature == 0.3
    cfg = apply_overrides(cfg, [f"data_root={stage1_run.data}", f"init={stage1_run.checkpoint}",
                                "method.mixing.long_tail_temperature=0.25", "log.tensorboard=false"])
    assert Trainer(cfg, tmp_path/"stage2", progress=False).method.mixer.temperature == 0.25


def test_fixed_point_of_the_threshold_rule():
    a, b, d = 0.5, 0.8, 8.0                       # confidences uniform on [a, 1]: G(t) = (1 − t)/(1 − a)
    theta = fixed_point(lambda t: min(1.0, (1 - t)/(1 - a)), b, d)
    assert abs((1 - theta)/(1 - a) - b*theta**d) < 1e-9
    n = 200_000
    conf = a + (1 - a)*(torch.arange(n, dtype=torch.float64) + 0.5)/n       # a fine quantile grid of the distribution
    assert abs(fixed_point(empirical_survival(conf), b, d) - theta) < 1e-5
    rule = AdaptiveThreshold(1, beta=0.5)
    for _ in range(40): rule.update(conf.view(1, 1, 1, n))
    assert abs(rule.thresholds.item() - theta) < 1e-5
    assert fixed_point(lambda t: min(1.0, (1 - t)/(1 - a)), 0.2, d) > theta > fixed_point(
        lambda t: min(1.0, (1 - t)/(1 - a)), b, 4.0)                         # smaller b, larger d: higher θ*
    probs = torch.zeros(1, 2, 1, n)
    probs[0, 0] = conf.float()
    settled = settled_thresholds(probs, b, d)
    assert abs(settled[0].item() - theta) < 1e-5 and math.isnan(settled[1].item())


def test_every_stored_record_is_current_with_the_config_it_was_trained_with():
    from tauda.study import RUNS, SWEEPS, Run, fingerprint
    checked = 0
    for path in sorted((ROOT/"results"/"study").glob("[!.]*.json")):   # records, not the folder's marker
        record = json.loads(path.read_text())
        config = record["config"]
        trained_with = lambda sweep: functools.reduce(dict.get, SWEEPS[sweep].key.split("."), config)
        assert record["fingerprint"] == fingerprint(RUNS[record["name"]], record["seed"], choice=trained_with), path
        checked += 1
    assert checked > 0
    plain = Run("x", "mini-stage1", ("method.target.weight=0.1",), "source")
    assert fingerprint(plain, 0) == fingerprint(RUNS["stage1"], 0, choice=lambda s: 0.1)  # the same run
    other = Run("x", "mini-stage1", ("method.ufl.detach_focal=true", "method.target.weight=0.1"), "source")
    assert fingerprint(other, 0) != fingerprint(RUNS["stage1"], 0, choice=lambda s: 0.1)  # another setting: a new run


def _logits(seed, shape=(2, 6, 16, 24), scale=4.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)*scale, torch.randn(shape, generator=g)*scale


@pytest.mark.parametrize("kept", [0.2, 0.9])
def test_the_loss_reusing_the_thresholds_pass_gives_the_same_value_and_gradients(kept):
    from tauda.ufl import weak_pass
    z, zs = _logits(0)
    mask = torch.rand(2, 16, 24, generator=torch.Generator().manual_seed(1)) < kept
    w = torch.rand(6) + 0.5
    results = []
    for shared in (None, weak_pass(z)):
        a, b = z.clone().requires_grad_(), zs.clone().requires_grad_()
        loss = ufl_loss(a, b, mask, w, weak_pass=shared)
        loss.backward()
        results.append((loss.detach(), a.grad, b.grad))
    assert all(torch.equal(x, y) for x, y in zip(*results))


def test_rules_that_select_from_the_top_class_get_the_weak_pass_and_others_the_softmax():
    from tauda.ufl import THRESHOLD_RULES, ThresholdRule, confidence_mask, selects_top_class
    z, _ = _logits(2)
    probs = z.softmax(1)
    for name in ("adaptive", "fixed"):
        fed, own = THRESHOLD_RULES.build(name, 6), THRESHOLD_RULES.build(name, 6)
        assert selects_top_class(fed)
        for _ in range(3):
            mask, shared = confidence_mask(fed, z)
            assert shared is not None and torch.equal(mask, own.update(probs))   # the same pixels as from a softmax
            assert torch.allclose(fed.thresholds, own.thresholds, atol=1e-6)
        conf, cls = shared.top_class(z.shape)
        assert torch.allclose(conf, probs.amax(1), atol=1e-6) and torch.equal(cls, probs.argmax(1))

    class WholeDistribution(ThresholdRule):   # a rule of the user's own that reads every probability
        def update(self, probs, valid=None):
            self.seen = probs
            return probs.amax(1) > 0.5
    rule = WholeDistribution(6)
    mask, shared = confidence_mask(rule, z)
    assert not selects_top_class(rule) and shared is None and torch.equal(rule.seen, probs)
    assert torch.equal(mask, probs.amax(1) > 0.5)
    with pytest.raises(NotImplementedError, match="neither update"):
        ThresholdRule(6).update(probs)


def test_the_first_top_class_is_the_first_of_tied_maxima():
    from tauda.ufl import weak_pass
    rows = [[3.0, 5.0, 5.0, 1.0], [7.0, 7.0, 7.0, 7.0], [0.0, 0.0, 0.0, 9.0]]   # three pixels' logits
    z = torch.tensor(rows).T[None, :, :, None]                                     # [1, 4, 3, 1]
    conf, cls = weak_pass(z).top_class(z.shape)
    assert cls.flatten().tolist() == [1, 0, 3]
    assert torch.allclose(conf.flatten(), z.softmax(1).amax(1).flatten())
