"""The lineage's conventions as switches, tested both ways: the logits' upsampling (`model.align_corners`), the mask
of each head (`method.thresholds.head_masks`), BiSeNet's BatchNorm (`model.freeze_bn`), the heads' learning rate
(`optim.head_lr_mult`); the source loss of every paper preset; and the threshold update's fixed shapes."""
import torch
import torch.nn.functional as F
from torch import nn

from tauda.config import PRESETS, apply_overrides, get_preset
from tauda.labels import IGNORE, MINICITY10
from tauda.methods import build_method, supervised_loss
from tauda.metrics import ConfusionMatrix, evaluate
from tauda.models import BiSeNet, DeepLabV2, align_corners_of, build_model, param_groups, upsample
from tauda.paper import ADAPTATION, BENCHMARKS, CITIES, RECIPES
from tauda.pseudo import predict
from tauda.ufl import AdaptiveThreshold, kth_largest_per_class

PAPER = [name for name in PRESETS if not name.startswith("mini-")]


class Quarter(nn.Module):
    "Logits at a quarter of the input size, `heads` heads, the second one less confident; `align_corners` as given."
    def __init__(self, align_corners: bool, heads: int = 1, classes: int = 10):
        super().__init__()
        self.align_corners, self.head_weights = align_corners, (1.0, 0.5)[:heads]
        self.conv = nn.Conv2d(3, classes, 4, stride=4)

    def forward(self, x):
        z = 4*self.conv(x)                                                   # [B, C, H/4, W/4]
        return [z, 0.5*z][:len(self.head_weights)]


# ---------------------------------------------------------------- model.align_corners

def test_align_corners_default_follows_the_lineage_at_paper_size_and_not_on_minicity():
    assert all(get_preset(name).model.align_corners for name in PAPER)
    assert not any(get_preset(name).model.align_corners for name in PRESETS if name.startswith("mini-"))
    options = {k: v for k, v in vars(get_preset("gta5-deeplabv2-stage1").model).items() if k != "name"}
    with torch.device("meta"):
        assert align_corners_of(build_model("deeplabv2", 19, **options))
        assert not align_corners_of(build_model("deeplabv2", 19, **{**options, "align_corners": False}))
        assert align_corners_of(BiSeNet(19)) and align_corners_of(DeepLabV2(19))  # the constructors: the lineage's


def test_default_evaluation_of_a_paper_model_is_advents():
    "ADVENT evaluates with `nn.Upsample(size=label size, mode='bilinear', align_corners=True)` on the main head."
    torch.manual_seed(0)
    options = {k: v for k, v in vars(get_preset("gta5-deeplabv2-source").model).items() if k not in ("name", "weights")}
    model = build_model("deeplabv2", 5, **{**options, "multi_level": False}).eval()
    images, labels = torch.rand(2, 3, 64, 96), torch.randint(0, 5, (2, 128, 192))
    labels[:, :8] = IGNORE
    advent, reference = nn.Upsample(size=(128, 192), mode="bilinear", align_corners=True), ConfusionMatrix(5)
    with torch.no_grad():
        for image, label in zip(images, labels):
            logits = model(image[None])[0]                                   # [1, 5, 8, 12]
            assert torch.isfinite(logits).all()
            reference.update(advent(logits).argmax(1), label[None])
            assert not torch.equal(advent(logits), upsample(logits, (128, 192), align_corners=False))
    assert torch.equal(evaluate(model, list(zip(images, labels)), 5, "cpu").matrix, reference.matrix)


def test_losses_and_pseudo_labels_upsample_with_the_models_convention():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 48), torch.randint(0, 10, (2, 32, 48))
    losses = {}
    for corners in (False, True):
        model = Quarter(corners)
        torch.manual_seed(1); model.conv.reset_parameters()
        logits = model(x)[0]
        up = F.interpolate(logits, size=(32, 48), mode="bilinear", align_corners=corners)
        losses[corners] = supervised_loss(model, [logits], y)
        assert torch.equal(losses[corners], F.cross_entropy(up, y, ignore_index=IGNORE))
        ids, confidence = predict(model, x, (32, 48))
        assert torch.equal(ids, up.argmax(1)) and torch.equal(confidence, up.softmax(1).max(1).values)
    assert losses[False] != losses[True]


# ---------------------------------------------------------------- method.thresholds.head_masks

def _stage_one(head_masks: str):
    cfg = apply_overrides(get_preset("mini-stage1"), ["method.class_weights=none", "method.thresholds.tau0=0.3",
                                                      f"method.thresholds.head_masks={head_masks}"])
    method = build_method(cfg, MINICITY10, "cpu")
    updates, masks = [], []
    rule_select, target = method.rule.select, method.target   # the adaptive rule is fed the weak pass's top class
    method.rule.select = lambda conf, cls, valid=None: updates.append((conf, cls)) or rule_select(conf, cls, valid)
    method.target = lambda weak, strong, mask: masks.append(mask) or target(weak, strong, mask)
    return method, updates, masks


def test_head_masks_main_shares_the_main_heads_mask_and_own_gives_each_head_its_own():
    torch.manual_seed(0)
    xs, ys, xt = torch.rand(2, 3, 32, 48), torch.randint(0, 10, (2, 32, 48)), torch.rand(2, 3, 32, 48)
    model = Quarter(False, heads=2)
    results = {}
    for head_masks in ("main", "own"):
        method, updates, masks = _stage_one(head_masks)
        terms = method.losses(model, (xs, ys), (xt,), iteration=0)
        results[head_masks] = terms["target"]
        if head_masks == "main":  # the thresholds move once a step, from the main head; every head gets its mask
            assert len(updates) == 1 and len(masks) == 2 and masks[0] is masks[1]
        else:  # the authors': one update per head, each head masked by its own (less confident) probabilities
            assert len(updates) == 2 and len(masks) == 2 and not torch.equal(masks[0], masks[1])
            (conf0, cls0), (conf1, cls1) = updates                  # the second head's logits are half the first's
            assert torch.equal(cls0, cls1) and (conf1 <= conf0 + 1e-7).all() and (conf1 < conf0).any()
            assert masks[1].sum() < masks[0].sum()
    assert results["main"] != results["own"]


def test_head_masks_is_checked():
    from tauda.config import ConfigError, check_config
    try:
        check_config(apply_overrides(get_preset("mini-stage1"), ["method.thresholds.head_masks=every"]))
        raise AssertionError
    except ConfigError as e: assert "method.thresholds.head_masks='every' (expected main or own)" in str(e)


# ---------------------------------------------------------------- BiSeNet BatchNorm, per-group learning rates

def _bn_step(model):
    "One SGD step on random data; the running means and the affine weights of the fusion module's BN, before/after."
    bn = model.ffm.conv[1]
    before = bn.running_mean.clone(), bn.weight.detach().clone()
    out = model.train()(torch.rand(2, 3, 64, 96))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sum(o.square().mean() for o in out).backward(); opt.step()
    return before, (bn.running_mean.clone(), bn.weight.detach().clone())


def test_bisenet_batchnorm_frozen_or_trained():
    torch.manual_seed(0)
    (mean0, w0), (mean1, w1) = _bn_step(BiSeNet(13, freeze_bn=True))
    assert torch.equal(mean0, mean1) and not torch.equal(w0, w1)      # statistics frozen, affine weights train
    (mean0, w0), (mean1, w1) = _bn_step(BiSeNet(13, freeze_bn=False))
    assert not torch.equal(mean0, mean1) and not torch.equal(w0, w1)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(BiSeNet(13, freeze_bn=True)).train()  # as under torchrun
    assert not any(m.training for m in synced.modules() if isinstance(m, nn.SyncBatchNorm))
    for benchmark in BENCHMARKS:  # the authors freeze BN when adapting a trained model, not from ImageNet
        for method in ("source", "minent", "stage1", "stage2"):
            assert get_preset(f"{benchmark}-bisenet-{method}").model.freeze_bn == (method in ADAPTATION)
            assert get_preset(f"{benchmark}-deeplabv2-{method}").model.freeze_bn


def test_per_group_learning_rates():
    with torch.device("meta"):
        model = BiSeNet(19)
    for name in PAPER:
        cfg = get_preset(name)
        groups = param_groups(model, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.head_lr_mult)
        rates = {g["name"].split("/")[0]: g["lr"] for g in groups}
        if cfg.model.name == "bisenet": assert rates == {"backbone": 5e-5, "head": 5e-5}, name  # the authors' recipe
        else: assert rates["head"] == 10*rates["backbone"] == 10*cfg.optim.lr, name              # the lineage's
    assert {g["lr"] for g in param_groups(model, 5e-5, head_lr_mult=10.0)} == {5e-5, 5e-4}


# ---------------------------------------------------------------- the source loss of each paper preset

def test_each_paper_chain_keeps_one_source_loss():
    chains = [f"{b}-{m}" for b in BENCHMARKS for m in RECIPES] + [f"crosscity-{c.lower()}-bisenet" for c in CITIES]
    for chain in chains:
        weights = {get_preset(f"{chain}-{stage}").method.class_weights for stage in ("source", "stage1", "stage2")}
        assert weights == {"tufl_middle"}, chain
    assert all(get_preset(f"{b}-{m}-minent").method.class_weights == "none" for b in BENCHMARKS for m in RECIPES)


# ---------------------------------------------------------------- the threshold update: fixed shapes, same result

def test_threshold_update_runs_on_meta_tensors():
    "On `meta` tensors nothing data-dependent can run (no `nonzero`, no `.item()`): what a GPU need not wait for."
    rule = AdaptiveThreshold(19)
    with torch.device("meta"):
        probs, valid = torch.rand(2, 19, 16, 32).softmax(1), torch.rand(2, 16, 32) > 0.1
        for v in (valid, None):
            mask = rule.update(probs, v)
            assert mask.shape == (2, 16, 32) and mask.dtype == torch.bool and rule._theta.device.type == "meta"


def test_kth_largest_gather_and_sort_paths_agree():
    g = torch.Generator().manual_seed(0)
    for n, classes in ((5000, 3), (20000, 19), (50, 7)):
        values = torch.rand(n, generator=g, dtype=torch.float64)**0.2
        cls = torch.randint(0, classes, (n,), generator=g)
        cls[:classes] = torch.arange(classes)                       # every class present
        counts = torch.bincount(cls, minlength=classes)
        rank = (torch.rand(classes, generator=g)*counts).long()
        gathered = kth_largest_per_class(values, cls, rank, classes, compact=True)
        assert torch.equal(gathered, kth_largest_per_class(values, cls, rank, classes, compact=False))
        naive = torch.stack([values[cls == c].sort(descending=True).values[rank[c]] for c in range(classes)])
        assert torch.equal(gathered, naive)


def test_a_config_written_with_the_former_method_names_loads():
    from tauda.config import ConfigError, from_dict
    old = {"method": {"name": "minent", "lambda_ent": 0.1, "lambda_u": 0.5, "threshold": "fixed", "tau0": 0.9,
                      "longtail_temperature": 0.3, "resume_thresholds": True}}
    m = from_dict(old).method
    assert (m.target.weight, m.thresholds.rule, m.thresholds.tau0) == (0.1, "fixed", 0.9)  # minent: its λ_ent
    assert m.mixing.long_tail_temperature == 0.3 and m.thresholds.resume is True
    assert from_dict({"method": {"name": "stage1", "lambda_ent": 0.1, "lambda_u": 0.5}}).method.target.weight == 0.5
    try:
        apply_overrides(get_preset("mini-stage1"), ["method.lambda_u=0.3"])
        raise AssertionError
    except ConfigError as e: assert "it is now 'method.target.weight'" in str(e)
