"""Stage one and MinEnt through the trainer and the CLI: init checks, exact resume with thresholds,
user extensions through --import and dotted paths, and thresholds under torch.distributed (gloo)."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers import read_log
from tauda.cli import run
from tauda.config import apply_overrides, get_preset
from tauda.train import Trainer
from tauda.ufl import AdaptiveThreshold


def stage1_config(data, init, *extra):
    return apply_overrides(get_preset("mini-stage1"), [f"data_root={data}", f"init={init}", "schedule.log_every=1",
                                                       "schedule.checkpoint_every=2", "data.batch_size=2", *extra])


def test_stage1_resume_is_exact_with_thresholds(source_run, tmp_path):
    data, init = source_run.data, source_run.checkpoint
    def config(): return stage1_config(data, init, "schedule.iterations=4", "method.thresholds.tau0=0.5")
    full = Trainer(config(), tmp_path/"s1_full", progress=False)
    full.fit()
    part = Trainer(config(), tmp_path/"s1_part", progress=False)
    part.fit()
    (tmp_path/"s1_part/checkpoints/iter_000002.pt").replace(tmp_path/"s1_part/checkpoints/last.pt")
    resumed = Trainer(config(), tmp_path/"s1_part", resume=True, progress=False)
    assert resumed.iteration == 2
    resumed.fit()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(full.method.rule.thresholds, resumed.method.rule.thresholds)
    assert not torch.equal(full.method.rule.thresholds, torch.full((10,), 0.5, dtype=torch.float64))  # they moved
    assert all(len(l["thresholds"]) == 10 and 0 <= l["mask_pass_ratio"] <= 1 for l in read_log(tmp_path/"s1_full"))


def test_minent_logs_a_target_term(minicity, tmp_path):
    cfg = apply_overrides(get_preset("mini-minent"), [f"data_root={minicity.root}", "schedule.iterations=2",
                                                      "schedule.log_every=1", "data.batch_size=2"])
    Trainer(cfg, tmp_path/"minent", progress=False).fit()
    log = read_log(tmp_path/"minent")
    assert all(0 < l["target"] <= cfg.method.target.weight for l in log)  # λ_ent · normalised entropy ∈ (0, λ_ent]


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
    "`tauda ARGS…` in a subprocess, as a user runs it, with `extra_path` on PYTHONPATH (the user's own modules)."
    env = {**os.environ, "PYTHONPATH": f"{extra_path}:{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "tauda.cli", *args], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.fixture
def refused(capsys, tmp_path, monkeypatch):
    """`refused(*argv)`: run `tauda ARGV…` in-process (working in `tmp_path`); it must exit with status 2 and print no
    traceback. Returns what it printed on stderr. (In-process: the command line itself is tested in test_cli.py.)"""
    monkeypatch.chdir(tmp_path)
    def refusal(*argv) -> str:
        status, err = run(list(argv)), capsys.readouterr().err
        assert status == 2 and "Traceback" not in err, err[-2000:]
        return err
    return refusal


def test_user_extensions_through_import_and_dotted_paths(source_run, tmp_path):
    (tmp_path/"my_ext.py").write_text(USER_MODULE)
    common = ["--data-root", str(source_run.data), "--quiet", "--set", f"init={source_run.checkpoint}",
              "--set", "schedule.iterations=2", "--set", "schedule.log_every=1", "--set", "data.batch_size=2"]
    result = tauda("train", "mini-stage1", "--import", "my_ext", "--set", "method.target.loss=maxsquare", "--out", "a",
                   *common, cwd=tmp_path, extra_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    log = read_log(tmp_path/"a")
    assert all(l["target"] < 0 for l in log) and "thresholds" not in log[-1]  # MaxSquare is negative, needs no mask
    result = tauda("train", "mini-stage1", "--set", "method.thresholds.rule=my_ext.Half", "--out", "b", *common,
                   cwd=tmp_path, extra_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert read_log(tmp_path/"b")[-1]["thresholds"] == [0.5]*10


@pytest.mark.parametrize("args, message", [
    (["train", "mini-stage1", "--quiet"], "--set init=CHECKPOINT"),
    (["train", "mini-stage1", "--quiet", "--set", "method.target.loss=nope", "--set", "init=x.pt"],
     "unknown target loss 'nope'"),
    (["train", "mini-source", "--quiet", "--import", "no_such_module_here"], "cannot import 'no_such_module_here'"),
    (["train", "mini-stage1", "--quiet", "--set", "init=/nonexistent/last.pt"], "checkpoint not found"),
])
def test_method_errors_are_clear(minicity, refused, args, message):
    assert message in refused(*args, "--data-root", str(minicity.root))


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
    for step in range(3):
        single.update(torch.cat([probs[0][step], probs[1][step]]), torch.cat([valid[0][step], valid[1][step]]))
    assert torch.equal(out[0], out[1]) and torch.allclose(out[0], single.thresholds, atol=1e-12)


def stage2_config(data, init, *extra):
    return apply_overrides(get_preset("mini-stage2"), [f"data_root={data}", f"init={init}", "schedule.log_every=1",
                                                       "data.batch_size=2", "schedule.iterations=2", *extra])


def test_stage2_trains_with_a_frozen_stage1_teacher(stage1_run, tmp_path):
    data, init = stage1_run.data, stage1_run.checkpoint
    stage1 = torch.load(init, weights_only=False)
    thresholds = stage1["method"]["thresholds"]["thresholds"]  # stage one's at its end
    cfg = stage2_config(data, init, "method.mixing.long_tail_p=1.0", "method.thresholds.resume=true")
    trainer = Trainer(cfg, tmp_path/"s2", progress=False)
    assert torch.equal(trainer.method.rule.thresholds, thresholds)  # resumed from stage one
    trainer.fit()
    stage1_weights = stage1["model"]
    assert not trainer.method.teacher.training
    for name, value in trainer.method.teacher.state_dict().items():
        assert torch.equal(value, stage1_weights[name]), name  # never updated
    student = trainer.model.state_dict()
    assert any(not torch.equal(v, stage1_weights[k]) for k, v in student.items())  # the student moved
    assert all(l["mix"] > 0 and 0 < l["pasted_ratio"] <= 1 for l in read_log(tmp_path/"s2"))
    restarted = Trainer(stage2_config(data, init), tmp_path/"s2b", progress=False)
    default = torch.full((10,), 0.8, dtype=torch.float64)
    assert torch.equal(restarted.method.rule.thresholds, default)  # default: restart at τ0


def test_stage2_without_mixing_has_no_mix_term(stage1_run, tmp_path):
    Trainer(stage2_config(stage1_run.data, stage1_run.checkpoint, "method.mixing.mixer=none"), tmp_path/"s2none",
            progress=False).fit()
    assert all("mix" not in l for l in read_log(tmp_path/"s2none"))


def test_stage2_refuses_a_missing_or_wrong_init(source_run, refused, tmp_path):
    for init, message in [(None, "starts from a stage-one checkpoint"), (tmp_path/"none.pt", "checkpoint not found"),
                          (source_run.checkpoint, "this one is from 'source'")]:
        args = ["train", "mini-stage2", "--quiet", "--data-root", str(source_run.data)]
        args += ["--set", f"init={init}"] if init else []
        assert message in refused(*args)
