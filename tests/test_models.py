"""DeepLabV2 and BiSeNet: parameter counts, shapes, frozen BN, weight formats, mismatch errors, parameter groups.

Every weight file is written here from randomly initialised models; nothing is downloaded."""
import copy

import pytest
import torch
import torchvision
from torch import nn

import tauda.models as tm
from tauda.models import (BiSeNet, DeepLabV2, ASPPClassifier, WeightsError, build_model, load_deeplab_weights,
                          load_bisenet_weights, param_groups)


def n_params(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def outputs(model, x, train=False):
    model.train(train)
    with torch.no_grad(): return model(x)


def same(a, b):
    return len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The inputs here are tiny: a second thread's synchronisation costs more than it saves, and on a busy
    two-core machine it makes ResNet-101 steps an order of magnitude slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dl():
    torch.manual_seed(0)
    return DeepLabV2(19)


@pytest.fixture(scope="module")
def bise():
    torch.manual_seed(1)
    return BiSeNet(19)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(2)
    return torch.rand(1, 3, 32, 48)   # conv1 gives an even size: the ceil-mode pool matters


# ---------------------------------------------------------------- DeepLabV2: architecture

def test_deeplab_parameter_counts(dl):
    assert n_params(dl) == 44_601_560
    assert n_params(dl, trainable=True) == 44_496_216
    bn = sum(p.numel() for m in dl.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert bn == 44_601_560 - 44_496_216
    with torch.device("meta"):
        assert n_params(DeepLabV2(19, multi_level=False)) == 43_901_068
        assert n_params(DeepLabV2(16)) == 44_269_760
        bug = DeepLabV2(19, aspp_bug=True)   # same parameters; the two unused branches of each classifier frozen
        assert n_params(bug) == 44_601_560
        assert n_params(bug, trainable=True) == 44_496_216 - 2*(19*9*1024 + 19) - 2*(19*9*2048 + 19)


def test_deeplab_state_dict_layout(dl):
    keys = list(dl.state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    for name in ("layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_var", "layer3.22.conv3.weight",
                 "layer4.2.bn3.bias", "layer5.conv2d_list.3.bias", "layer6.conv2d_list.0.weight"):
        assert name in keys
    assert dl.layer5.conv2d_list[0].in_channels == 1024 and dl.layer6.conv2d_list[0].in_channels == 2048
    assert [c.dilation for c in dl.layer6.conv2d_list] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert [c.padding for c in dl.layer6.conv2d_list] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    assert all(layer[0].downsample is not None for layer in (dl.layer1, dl.layer2, dl.layer3, dl.layer4))
    assert all(b.conv2.dilation == (2, 2) for b in dl.layer3) and all(b.conv2.dilation == (4, 4) for b in dl.layer4)
    assert dl.maxpool.ceil_mode
    assert dl.layer2[0].conv1.stride == (2, 2) and dl.layer2[0].conv2.stride == (1, 1)       # caffe placement
    with torch.device("meta"):
        v15 = DeepLabV2(19, stride_in_1x1=False)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert not any(k.startswith("normalise") for k in keys)                                 # no extra keys


def test_deeplab_output_shapes(dl, x):
    """Paper sizes on the meta device (the same shape arithmetic without the compute: a real 512×1024 forward
    takes about 20 s on two cores, see bench/bench_models.py), and a real forward where the ceil-mode pool matters."""
    with torch.device("meta"):
        meta = DeepLabV2(19).eval()
        assert meta(torch.empty(1, 3, 512, 1024))[0].shape == (1, 19, 65, 129)
        assert meta(torch.empty(1, 3, 720, 1280))[0].shape == (1, 19, 91, 161)
    with torch.no_grad():
        assert dl.eval()(x)[0].shape == (1, 19, 5, 7)      # 32×48 → conv1 16×24 → pool 9×13 (not 8×12) → 5×7


def test_deeplab_heads(dl, x):
    train_out, eval_out = outputs(dl, x, train=True), outputs(dl, x)
    assert len(train_out) == 2 and len(eval_out) == 1 and dl.head_weights == (1.0, 0.1)
    assert train_out[0].shape == train_out[1].shape == (1, 19, 5, 7)
    assert torch.equal(train_out[0], eval_out[0])     # frozen BN: train and eval mode compute the same main head
    assert dl.head_prefixes == ("layer5", "layer6")
    with torch.device("meta"):
        single = DeepLabV2(19, multi_level=False).train()
        assert len(single(torch.empty(1, 3, 65, 97))) == 1 and single.head_weights == (1.0,)


def test_frozen_bn_stays_frozen(dl, x):
    model = copy.deepcopy(dl).train()
    assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.conv1.training and model.layer6.training
    bn_before = {k: v.clone() for k, v in model.state_dict().items() if "bn" in k or "downsample.1" in k}
    conv_before = model.layer1[0].conv1.weight.detach().clone()
    opt = torch.optim.SGD(param_groups(model, lr=0.01), lr=0.01, momentum=0.9)
    main, aux = model(x)
    (main.mean() + aux.mean()).backward()
    opt.step()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in bn_before.items())
    assert not torch.equal(conv_before, model.layer1[0].conv1.weight)      # the step did change the convolutions
    assert all(p.grad is None for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())


def test_freeze_bn_false_uses_batch_statistics(x):
    model = DeepLabV2(19, multi_level=False, freeze_bn=False).train()
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(p.requires_grad for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    before = model.bn1.running_mean.clone()
    with torch.no_grad(): model(x)
    assert not torch.equal(before, model.bn1.running_mean)
    assert n_params(model, trainable=True) == 43_901_068 - (44_601_560 - 44_496_216)


def test_normalisation_follows_weights(dl, bise):
    assert dl.normalise.bgr and dl.normalise.scale == 255.0
    assert torch.allclose(dl.normalise.mean.flatten(), torch.tensor([104.00698793, 116.66876762, 122.67891434]))
    assert torch.equal(dl.normalise.std.flatten(), torch.ones(3))
    assert not bise.normalise.bgr and bise.normalise.scale == 1.0
    assert torch.allclose(bise.normalise.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    with torch.device("meta"):
        v15 = DeepLabV2(19, stride_in_1x1=False)
    assert not v15.normalise.bgr and v15.normalise.scale == 1.0 and v15.normalise.std.shape == (1, 3, 1, 1)


# ---------------------------------------------------------------- ASPP and the two-branch bug

def test_aspp_bug_uses_only_dilations_6_and_12():
    torch.manual_seed(0)
    full, bug = ASPPClassifier(32, 5), ASPPClassifier(32, 5, aspp_bug=True)
    bug.load_state_dict(full.state_dict())
    h = torch.randn(1, 32, 30, 30)
    with torch.no_grad():
        c = full.conv2d_list
        assert torch.allclose(bug(h), c[0](h) + c[1](h))
        assert torch.allclose(full(h), c[0](h) + c[1](h) + c[2](h) + c[3](h))
        assert not torch.allclose(bug(h), full(h))
    assert [p.requires_grad for p in bug.parameters()] == [True]*4 + [False]*4


def test_dacs_two_branch_checkpoint(tmp_path, x):
    """A DACS-style single-level checkpoint trained with the bug: main classifier named `layer5`, under `module.`,
    inside a checkpoint dict; first with all four branches, then with only the two used ones."""
    torch.manual_seed(3)
    src = DeepLabV2(19, multi_level=False, aspp_bug=True)
    dacs = {"module." + k.replace("layer6.", "layer5."): v for k, v in src.state_dict().items()}
    torch.save({"model": dacs, "iteration": 100}, tmp_path/"dacs.pth")
    dst = DeepLabV2(19, multi_level=False, aspp_bug=True, weights=tmp_path/"dacs.pth")
    assert same(outputs(src, x), outputs(dst, x))
    # the switch changes the outputs of the same weights
    dst.layer6.aspp_bug = False
    assert not torch.allclose(outputs(dst, x)[0], outputs(src, x)[0])
    dst.layer6.aspp_bug = True
    # a two-branch checkpoint: fine with aspp_bug=True (the unused branches keep their initialisation) ...
    two = {k: v for k, v in src.state_dict().items() if ".conv2d_list.2." not in k and ".conv2d_list.3." not in k}
    load_deeplab_weights(dst, two, "full", "two.pth")
    assert same(outputs(src, x), outputs(dst, x))
    # ... and a clear error into a model that would use branches the checkpoint does not have
    dst.layer6.aspp_bug = False
    with pytest.raises(WeightsError, match="aspp_bug=True"):
        load_deeplab_weights(dst, two, "full", "two.pth")


# ---------------------------------------------------------------- weight formats: round trips

def test_caffe_imagenet_and_advent_formats(dl, x, tmp_path):
    state = {f"Scale.{k}": v for k, v in dl.state_dict().items()
             if not k.startswith(("layer5", "layer6")) and "num_batches" not in k}
    state["Scale.layer5.conv2d_list.0.weight"] = torch.zeros(21, 2048, 3, 3)      # the file's classifier: skipped
    state["Scale.layer5.conv2d_list.0.bias"] = torch.zeros(21)
    torch.save(state, tmp_path/"DeepLab_resnet_pretrained_imagenet.pth")
    model = DeepLabV2(19, weights=str(tmp_path/"DeepLab_resnet_pretrained_imagenet.pth"))
    assert model.stride_in_1x1 and model.normalise.bgr
    assert not torch.equal(model.layer6.conv2d_list[0].weight, dl.layer6.conv2d_list[0].weight)   # heads not loaded
    model.layer5.load_state_dict(dl.layer5.state_dict()); model.layer6.load_state_dict(dl.layer6.state_dict())
    assert same(outputs(model, x, train=True), outputs(dl, x, train=True))
    with pytest.raises(WeightsError, match="stride_in_1x1=True"):
        DeepLabV2(19, weights=tmp_path/"DeepLab_resnet_pretrained_imagenet.pth", stride_in_1x1=False)
    # a full ADVENT checkpoint (a plain state dict) into the same model: both heads identical
    torch.save(dl.state_dict(), tmp_path/"advent.pth")
    nn.init.zeros_(model.layer4[0].conv2.weight)
    state = tm.read_weights(tmp_path/"advent.pth")
    assert tm.weights_format(state) == "full"
    load_deeplab_weights(model, state, "full", "advent.pth")
    assert same(outputs(model, x, train=True), outputs(dl, x, train=True))


def test_torchvision_resnet101_format(tmp_path, monkeypatch):
    torch.manual_seed(4)
    tv = torchvision.models.resnet101().eval()
    torch.save(tv.state_dict(), tmp_path/"resnet101.pth")
    model = DeepLabV2(19, weights=tmp_path/"resnet101.pth").eval()
    assert not model.stride_in_1x1 and not model.normalise.bgr
    own = model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in tv.state_dict().items() if not k.startswith("fc."))
    # same function through layer2 (dilation starts at layer3); 66 px → odd conv1 size: both max-pools agree
    z = torch.randn(1, 3, 66, 98)
    stem = lambda m: m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(z))))))
    with torch.no_grad(): assert torch.equal(stem(model), stem(tv))
    with pytest.raises(WeightsError, match="stride_in_1x1=False"):
        DeepLabV2(19, weights=tmp_path/"resnet101.pth", stride_in_1x1=True)
    # weights="imagenet" asks torchvision for resnet101 (the download is replaced here)
    monkeypatch.setattr(tm, "imagenet_state", lambda arch: {"resnet101": tv.state_dict()}[arch])
    state, fmt = tm.source_state("imagenet", "resnet101")
    assert fmt == "torchvision" and state.keys() == tv.state_dict().keys()
    assert tm.resolve_stride_in_1x1(None, fmt) is False


def test_tauda_checkpoint_as_weights_and_init(bise, tmp_path):
    from tauda.checkpoint import load_model_weights
    torch.save({"model": bise.state_dict(), "iteration": 7, "config": {}}, tmp_path/"last.pt")
    y = torch.rand(1, 3, 64, 96)
    assert same(outputs(BiSeNet(19, weights=tmp_path/"last.pt"), y), outputs(bise, y))
    other = BiSeNet(19)
    load_model_weights(other, tmp_path/"last.pt")
    assert same(outputs(other, y, train=True), outputs(bise, y, train=True))


# ---------------------------------------------------------------- mismatch errors

def test_deeplab_mismatch_errors(dl, bise, tmp_path):
    state = dl.state_dict()
    state16 = {k: (v[:16] if k.startswith(("layer5", "layer6")) else v) for k, v in state.items()}
    with pytest.raises(WeightsError, match="16 classes, the model 19") as e:
        load_deeplab_weights(dl, state16, "full", "advent16.pth")
    assert "layer5.conv2d_list.0.weight (16, 1024, 3, 3) vs model (19, 1024, 3, 3)" in str(e.value)
    single = {k: v for k, v in state.items() if not k.startswith("layer5")}
    with pytest.raises(WeightsError, match="single-level: build with multi_level=False"):
        load_deeplab_weights(dl, single, "full", "single.pth")
    missing = {k: v for k, v in state.items() if not k.startswith("layer4.2.")}
    with pytest.raises(WeightsError, match=r"missing keys: layer4\.2\."):
        load_deeplab_weights(dl, missing, "full", "cut.pth")
    with pytest.raises(WeightsError, match="unexpected keys") as e:
        load_deeplab_weights(dl, {**state, "extra.weight": torch.zeros(1)}, "full", "extra.pth")
    heads = {k: v for k, v in state.items() if k.startswith("layer5")}
    with pytest.raises(WeightsError, match="missing keys.*unexpected keys"):   # another architecture entirely
        load_deeplab_weights(dl, {**bise.state_dict(), **heads}, "full", "bisenet.pth")
    with pytest.raises(WeightsError, match="shape mismatches"):                # a ResNet-18 is not a ResNet-101
        load_deeplab_weights(dl, torchvision.models.resnet18().state_dict(), "torchvision", "resnet18.pth")
    after = dl.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in state.items())            # failed loads leave the model untouched


def test_file_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        BiSeNet(19, weights=tmp_path/"nothing.pth")
    torch.save({"model": [1, 2, 3]}, tmp_path/"junk.pth")
    with pytest.raises(WeightsError, match="not a state dict"):
        BiSeNet(19, weights=tmp_path/"junk.pth")


# ---------------------------------------------------------------- BiSeNet

def test_bisenet_architecture(bise):
    assert n_params(bise) == n_params(bise, trainable=True) == 13_392_057
    assert n_params(bise.backbone) == 11_176_512                 # torchvision resnet18 without its fc
    y = torch.rand(2, 3, 96, 160)
    train_out = outputs(bise, y, train=True)
    assert [o.shape for o in train_out] == [(2, 19, 96, 160)]*3 and bise.head_weights == (1/3, 1/3, 1/3)
    eval_out = outputs(bise, torch.rand(1, 3, 100, 150))
    assert len(eval_out) == 1 and eval_out[0].shape == (1, 19, 100, 150)
    bise.train()(torch.rand(1, 3, 64, 64))                       # a batch of one trains (no BN over 1×1 maps)


def test_bisenet_torchvision_weights(tmp_path, monkeypatch):
    torch.manual_seed(5)
    r18 = torchvision.models.resnet18()
    torch.save(r18.state_dict(), tmp_path/"resnet18.pth")
    monkeypatch.setattr(tm, "imagenet_state", lambda arch: {"resnet18": r18.state_dict()}[arch])
    for weights in (tmp_path/"resnet18.pth", "imagenet"):
        model = BiSeNet(19, weights=weights).eval()
        own = model.backbone.state_dict()
        assert set(own) == {k for k in r18.state_dict() if not k.startswith("fc.")}
        assert all(torch.equal(v, r18.state_dict()[k]) for k, v in own.items())
    z = torch.rand(1, 3, 64, 64)
    b, n = model.backbone, model.normalise(z)
    with torch.no_grad():
        assert torch.equal(b.layer4(b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(n)))))))),
                           nn.Sequential(*list(r18.eval().children())[:-2])(n))


def test_bisenet_full_checkpoint_and_errors(bise, tmp_path):
    torch.save(bise.state_dict(), tmp_path/"bisenet.pth")
    y = torch.rand(1, 3, 64, 96)
    assert same(outputs(BiSeNet(19, weights=tmp_path/"bisenet.pth"), y, train=True), outputs(bise, y, train=True))
    state = {k: (v[:16] if k in ("head.1.weight", "head.1.bias") else v) for k, v in bise.state_dict().items()}
    with pytest.raises(WeightsError, match="16 classes, the model 19"):
        load_bisenet_weights(bise, state, "full", "b16.pth")
    with pytest.raises(WeightsError, match="caffe weights are a ResNet-101"):
        load_bisenet_weights(bise, {"Scale.conv1.weight": torch.zeros(64, 3, 7, 7)}, "caffe", "caffe.pth")
    with pytest.raises(WeightsError, match=r"unexpected keys: backbone\.layer1\.2\."):   # a ResNet-34 has more blocks
        load_bisenet_weights(bise, torchvision.models.resnet34().state_dict(), "torchvision", "resnet34.pth")


# ---------------------------------------------------------------- registry and parameter groups

def test_build_model_takes_config_fields():
    fields = dict(width=32, multi_level=False, weights="", freeze_bn=True, aspp_bug=True)
    assert {"tiny", "deeplabv2", "bisenet"} <= set(tm.MODELS)
    with torch.device("meta"):
        m = build_model("deeplabv2", 16, **fields)
    assert isinstance(m, DeepLabV2) and not m.multi_level and m.layer6.aspp_bug
    assert m.layer6.conv2d_list[0].out_channels == 16
    assert isinstance(build_model("bisenet", 13, **fields), BiSeNet)


def test_param_groups_unique(dl, bise):
    with torch.device("meta"):
        bug = DeepLabV2(19, multi_level=False, aspp_bug=True)
    for model in (build_model("tiny", 8), dl, bise, bug):
        groups = param_groups(model, lr=1e-3, weight_decay=5e-4)
        ids = [id(p) for g in groups for p in g["params"]]
        trainable = {id(p) for p in model.parameters() if p.requires_grad}
        assert len(ids) == len(set(ids)) and set(ids) == trainable
        assert not {id(p) for p in model.parameters() if not p.requires_grad} & set(ids)
        names = {id(p): n for n, p in model.named_parameters()}
        for g in groups:
            head = g["name"].startswith("head")
            assert g["lr"] == pytest.approx(1e-2 if head else 1e-3)
            assert all(names[id(p)].startswith(model.head_prefixes) == head for p in g["params"])
            if g["weight_decay"] > 0: assert all(p.ndim > 1 for p in g["params"])
    grouped = {id(p) for g in param_groups(dl, 1.0) for p in g["params"]}
    assert not {id(m.weight) for m in dl.modules() if isinstance(m, nn.BatchNorm2d)} & grouped
