"""What only a CUDA GPU can show: an fp16 + GradScaler step agrees with fp32, channels_last changes nothing but the
memory layout, BatchNorm converts to SyncBatchNorm (and stays frozen where it should), the out-of-memory guard on a
real allocation, and a threshold update that never waits for the GPU. Every test is marked `cuda` and skipped
without a GPU; `bench/gpu_check.sh` runs them (`pytest -m cuda`)."""
import pytest
import torch
from torch import nn

from tauda.config import apply_overrides, get_preset
from tauda.loading import RandomStream, train_stream
from tauda.models import BiSeNet
from tauda.runtime import TrainingError
from tauda.train import Trainer
from tauda.ufl import AdaptiveThreshold, kth_largest_per_class

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
RUN = ["device=cuda", "schedule.iterations=4", "schedule.log_every=1", "data.num_workers=0", "log.tensorboard=false"]


def _trainer(minicity, out, preset="mini-source", *extra):
    cfg = apply_overrides(get_preset(preset), [f"data_root={minicity.root}", *RUN, *extra])
    return Trainer(cfg, out, progress=False)


def _first_batch(trainer):
    return next(train_stream(trainer.source_train, trainer.cfg, RandomStream.SOURCE, 0))


def test_fp16_gradscaler_step_agrees_with_fp32(minicity, tmp_path):
    torch.manual_seed(0)
    runs = {amp: _trainer(minicity, tmp_path/amp, "mini-source", f"amp={amp}") for amp in ("off", "fp16")}
    runs["fp16"].model.load_state_dict(runs["off"].model.state_dict())
    runs["fp16"].scaler = torch.amp.GradScaler("cuda", init_scale=1024.0)  # a first step that does not overflow
    batch = _first_batch(runs["off"])
    losses = {amp: t.train_step(batch)["loss"].item() for amp, t in runs.items()}
    assert runs["fp16"].scaler.get_scale() == 1024.0 and not runs["off"].scaler.is_enabled()  # the step was taken
    assert losses["fp16"] == pytest.approx(losses["off"], rel=2e-2)
    for (name, a), b in zip(runs["off"].model.named_parameters(), runs["fp16"].model.parameters()):
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-4), name  # the same update, to fp16's precision


def test_channels_last_changes_the_layout_not_the_step(minicity, tmp_path):
    torch.manual_seed(0)
    runs = {cl: _trainer(minicity, tmp_path/cl, "mini-source", f"channels_last={cl}", "amp=off")
            for cl in ("on", "off")}
    runs["on"].model.load_state_dict(runs["off"].model.state_dict())
    conv = next(m for m in runs["on"].model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    batch = _first_batch(runs["off"])
    losses = {cl: t.train_step(batch)["loss"].item() for cl, t in runs.items()}
    assert losses["on"] == pytest.approx(losses["off"], rel=5e-3)  # other convolution algorithms (TF32)


@pytest.fixture
def one_rank_group(tmp_path):
    "A process group of one NCCL rank (SyncBatchNorm needs a group to run)."
    torch.distributed.init_process_group("nccl", init_method=f"file://{tmp_path/'store'}", rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


def test_syncbatchnorm_conversion(one_rank_group):
    torch.manual_seed(0)
    plain = BiSeNet(13, freeze_bn=False).cuda().train()
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(BiSeNet(13, freeze_bn=False)).cuda().train()
    synced.load_state_dict(plain.state_dict())
    assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
    x = torch.rand(2, 3, 128, 256, device="cuda")
    assert torch.allclose(plain(x)[0], synced(x)[0], atol=1e-4)   # one rank: the statistics of one batch
    frozen = nn.SyncBatchNorm.convert_sync_batchnorm(BiSeNet(13, freeze_bn=True)).cuda().train()
    assert not any(m.training for m in frozen.modules() if isinstance(m, nn.SyncBatchNorm))
    frozen(x)[0].sum().backward()


def test_out_of_memory_guard_on_a_real_allocation(minicity, tmp_path):
    trainer = _trainer(minicity, tmp_path/"run")
    real = trainer.method.losses
    def greedy(model, source, target=None, iteration=0):
        torch.empty(1 << 45, dtype=torch.uint8, device="cuda")  # 32 TiB: more than any GPU holds
        return real(model, source, target, iteration)
    trainer.method.losses = greedy
    with pytest.raises(TrainingError, match=r"out of GPU memory at iteration 0 .*data\.crop=\[32,64\]"):
        trainer.train_step(_first_batch(trainer))
    torch.cuda.empty_cache()


def test_threshold_update_does_not_synchronise():
    torch.manual_seed(0)
    probs = (3*torch.randn(2, 19, 256, 512, device="cuda")).softmax(1)
    valid = torch.rand(2, 256, 512, device="cuda") > 0.1
    rule, reference = AdaptiveThreshold(19), AdaptiveThreshold(19)
    rule.update(probs, valid)                          # the first update moves the thresholds to the GPU
    torch.cuda.set_sync_debug_mode("error")
    try: mask = rule.update(probs, valid)
    finally: torch.cuda.set_sync_debug_mode("default")
    for _ in range(2): cpu_mask = reference.update(probs.cpu(), valid.cpu())
    assert torch.allclose(rule.thresholds, reference.thresholds, rtol=0, atol=1e-12)
    assert torch.equal(mask.cpu(), cpu_mask)
    values, cls = torch.rand(10000, device="cuda", dtype=torch.float64), torch.randint(0, 5, (10000,), device="cuda")
    rank = torch.tensor([0, 3, 17, 100, 1], device="cuda")
    assert torch.equal(kth_largest_per_class(values, cls, rank, 5).cpu(),
                       kth_largest_per_class(values.cpu(), cls.cpu(), rank.cpu(), 5))
