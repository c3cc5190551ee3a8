"""Stage one and MinEnt through the trainer and the CLI: init checks, exact resume with thresholds,
user extensions through --import and dotted paths, and thresholds under torch.distributed (gloo)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tauda.config import apply_overrides, get_preset
from tauda.minicity import MinicitySpec, ensure_minicity
from tauda.train import Trainer
from tauda.ufl import AdaptiveThreshold

SMALL = MinicitySpec(n_source=24, n_source_val=4, n_target_train=24, n_target_val=8, n_target_tune=4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("method")
    data = ensure_minicity(root/"minicity", SMALL, progress=False)
    cfg = apply_overrides(get_preset("mini-source"), [f"data_root={data}", "schedule.iterations=4", "schedule.log_every=1"])
    Trainer(cfg, root/"source", progress=False).fit()
    return root, data


def stage1_config(data, init, *extra):
    return apply_overrides(get_preset("mini-stage1"), [f"data_root={data}", f"init={init}", "schedule.log_every=1",
                                                       "schedule.checkpoint_every=2", "data.batch_size=2", *extra])


def test_stage1_resume_is_exact_with_thresholds(runs):
    root, data = runs
    init = root/"source/checkpoints/last.pt"
    full = Trainer(stage1_config(data, init, "schedule.iterations=4", "method.tau0=0.5"), root/"s1_full", progress=False)
    full.fit()
    part = Trainer(stage1_config(data, init, "schedule.iterations=4", "method.tau0=0.5"), root/"s1_part", progress=False)
    part.fit()
    (root/"s1_part/checkpoints/iter_000002.pt").replace(root/"s1_part/checkpoints/last.pt")
    resumed = Trainer(stage1_config(data, init, "schedule.iterations=4", "method.tau0=0.5"), root/"s1_part", resume=True, progress=False)
    assert resumed.iteration == 2
    resumed.fit()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(full.method.rule.thresholds, resumed.method.rule.thresholds)
    assert not torch.equal(full.method.rule.thresholds, torch.full((10,), 0.5, dtype=torch.float64))  # they moved
    log = [json.loads(l) for l in (root/"s1_full/log.jsonl").read_text().splitlines()]
    assert all(len(l["thresholds"]) == 10 and 0 <= l["mask_pass_ratio"] <= 1 for l in log)


def test_minent_logs_a_target_term(runs):
    root, data = runs
    cfg = apply_overrides(get_preset("mini-minent"), [f"data_root={data}", "schedule.iterations=2", "schedule.log_every=1",
                                                      "data.batch_size=2"])
    Trainer(cfg, root/"minent", progress=False).fit()
    log = [json.loads(l) for l in (root/"minent/log.jsonl").read_text().splitlines()]
    assert all(0 < l["target"] <= cfg.method.lambda_ent for l in log)  # λ_ent · normalised entropy ∈ (0, λ_ent]


USER_MODULE = textwrap.dedent('''
    import torch
    from tauda.ufl import TARGET_LOSSES, THRESHOLD_RULES, FixedThreshold

    @TARGET_LOSSES.register("maxsquare")
    class MaxSquare:
        "MaxSquare loss on the weak view: -mean of Σ p² / 2."
        uses_strong_view = False
        def __call__(self, weak_logits, strong_logits=None, mask=None):
            return -(weak_logits.softmax(1)**2).sum(1).mean()/2

    class Half(FixedThreshold):
        def __init__(self, num_classes, tau0=0.8):
            super().__init__(num_classes, 0.5)
''')


def tauda(*args, cwd, extra_path):
    env = {**os.environ, "PYTHONPATH": f"{extra_path}:{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "tauda.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_user_extensions_through_import_and_dotted_paths(runs, tmp_path):
    root, data = runs
    (tmp_path/"my_ext.py").write_text(USER_MODULE)
    init = root/"source/checkpoints/last.pt"
    common = ["--data-root", str(data), "--quiet", "--set", f"init={init}", "--set", "schedule.iterations=2",
              "--set", "schedule.log_every=1", "--set", "data.batch_size=2"]
    result = tauda("train", "mini-stage1", "--import", "my_ext", "--set", "method.target_loss=maxsquare", "--out", "a",
                   *common, cwd=tmp_path, extra_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    log = [json.loads(l) for l in (tmp_path/"a/log.jsonl").read_text().splitlines()]
    assert all(l["target"] < 0 for l in log) and "thresholds" not in log[-1]  # MaxSquare is negative, needs no mask
    result = tauda("train", "mini-stage1", "--set", "method.threshold=my_ext.Half", "--out", "b", *common,
                   cwd=tmp_path, extra_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path/"b/log.jsonl").read_text().splitlines()[-1])["thresholds"] == [0.5]*10


@pytest.mark.parametrize("args, message", [
    (["train", "mini-stage1", "--quiet"], "--set init=CHECKPOINT"),
    (["train", "mini-stage1", "--quiet", "--set", "method.target_loss=nope", "--set", "init=x.pt"], "unknown target loss 'nope'"),
    (["train", "mini-source", "--quiet", "--import", "no_such_module_here"], "cannot import 'no_such_module_here'"),
    (["train", "mini-stage1", "--quiet", "--set", "init=/nonexistent/last.pt"], "checkpoint not found"),
])
def test_method_errors_are_clear(runs, tmp_path, args, message):
    _, data = runs
    result = tauda(*args, "--data-root", str(data), cwd=tmp_path, extra_path=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


def _rank_update(rank, world, port, probs, valid, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    rule = AdaptiveThreshold(5)
    for step in range(3): rule.update(probs[rank][step], valid[rank][step])
    out[rank] = rule.thresholds
    dist.destroy_process_group()


def test_thresholds_are_identical_across_ranks_and_equal_one_process_on_all_pixels():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(2, 3, 1, 5, 6, 7)*3, 2)  # [rank, step, B, C, H, W]
    valid = torch.rand(2, 3, 1, 6, 7) > 0.3
    manager = mp.Manager()
    out = manager.dict()
    port = 29500 + os.getpid() % 1000
    mp.spawn(_rank_update, args=(2, port, probs, valid, out), nprocs=2, join=True)
    single = AdaptiveThreshold(5)
    for step in range(3): single.update(torch.cat([probs[0][step], probs[1][step]]), torch.cat([valid[0][step], valid[1][step]]))
    assert torch.equal(out[0], out[1]) and torch.allclose(out[0], single.thresholds, atol=1e-12)


@pytest.fixture(scope="module")
def stage1_run(runs):
    root, data = runs
    trainer = Trainer(stage1_config(data, root/"source/checkpoints/last.pt", "schedule.iterations=2", "method.tau0=0.5"),
                      root/"s1_for_s2", progress=False)
    trainer.fit()
    return root/"s1_for_s2/checkpoints/last.pt", trainer.method.rule.thresholds


def stage2_config(data, init, *extra):
    return apply_overrides(get_preset("mini-stage2"), [f"data_root={data}", f"init={init}", "schedule.log_every=1",
                                                       "data.batch_size=2", "schedule.iterations=2", *extra])


def test_stage2_trains_with_a_frozen_stage1_teacher(runs, stage1_run):
    root, data = runs
    init, thresholds = stage1_run
    trainer = Trainer(stage2_config(data, init, "method.long_tail_p=1.0", "method.resume_thresholds=true"), root/"s2", progress=False)
    assert torch.equal(trainer.method.rule.thresholds, thresholds)  # resumed from stage one
    trainer.fit()
    stage1_weights = torch.load(init, weights_only=False)["model"]
    assert not trainer.method.teacher.training
    for name, value in trainer.method.teacher.state_dict().items():
        assert torch.equal(value, stage1_weights[name]), name  # never updated
    assert any(not torch.equal(v, stage1_weights[k]) for k, v in trainer.model.state_dict().items())  # the student moved
    log = [json.loads(l) for l in (root/"s2/log.jsonl").read_text().splitlines()]
    assert all(l["mix"] > 0 and 0 < l["pasted_ratio"] <= 1 for l in log)
    restarted = Trainer(stage2_config(data, init), root/"s2b", progress=False)
    assert torch.equal(restarted.method.rule.thresholds, torch.full((10,), 0.8, dtype=torch.float64))  # default: restart at τ0


def test_stage2_without_mixing_has_no_mix_term(runs, stage1_run):
    root, data = runs
    Trainer(stage2_config(data, stage1_run[0], "method.mixer=none"), root/"s2none", progress=False).fit()
    log = [json.loads(l) for l in (root/"s2none/log.jsonl").read_text().splitlines()]
    assert all("mix" not in l for l in log)


def test_stage2_refuses_a_missing_or_wrong_init(runs, tmp_path):
    root, data = runs
    for init, message in [(None, "starts from a stage-one checkpoint"), (tmp_path/"none.pt", "checkpoint not found"),
                          (root/"source/checkpoints/last.pt", "this one is from 'source'")]:
        args = ["train", "mini-stage2", "--quiet", "--data-root", str(data)] + (["--set", f"init={init}"] if init else [])
        result = tauda(*args, cwd=tmp_path, extra_path=tmp_path)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
