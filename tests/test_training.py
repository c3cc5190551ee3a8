"""Complete training from the command line: the pipeline on fixture datasets for DeepLabV2 and BiSeNet,
kill -9 and exact resume, DistributedDataParallel with 2 gloo processes, and the guards."""
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from helpers import read_log, sets
from tauda.cli import main, run
from tauda.config import apply_overrides, get_preset, save_config
from tauda.loading import RandomStream, train_stream
from tauda.methods import build_method
from tauda.runtime import TrainingError
from tauda.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = ["schedule.iterations=2", "schedule.log_every=1", "data.num_workers=0", "data.scales=[1.0]",
            "log.images_every=1"]


@pytest.mark.parametrize("benchmark, model, extra", [
    # random weights: frozen BatchNorm would be the identity and a 101-layer ResNet overflows, so BatchNorm trains here
    ("gta5", "deeplabv2", ["model.freeze_bn=false", "stage1:channels_last=on", "source:log.eval_every=1"]),
    ("synthia", "bisenet", ["stage2:amp=bf16"])])
def test_pipeline_on_fixture_datasets_then_eval(layouts, tmp_path, capsys, benchmark, model, extra):
    "On fixture datasets: the benchmark's source layout, and Cityscapes (train without use of labels, val with labels)."
    out = tmp_path/"run"
    items = TINY_RUN + ["model.weights=", "data.source_size=[32,64]", "data.target_size=[32,64]", "data.crop=[32,64]",
                        *extra]
    argv = ["pipeline", f"{benchmark}-{model}", "--data-root", str(layouts), "--out", str(out), "--quiet"]
    argv += sets(*items)
    assert run(argv) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "stage2" in printed
    for stage in ("source", "stage1", "stage2"):
        folder = out/stage
        assert {p.name for p in folder.iterdir()} >= {"config.yaml", "log.jsonl", "checkpoints", "eval.json",
                                                      "tensorboard"}
        ckpt = torch.load(folder/"checkpoints"/"last.pt", map_location="cpu", weights_only=False)
        assert ckpt["iteration"] == 2 and ckpt["model_name"] == model
        assert set(ckpt) >= {"optimizer", "scaler", "rng", "method", "config"}
        assert json.loads((folder/"eval.json").read_text())["iteration"] == 2
        assert list((folder/"tensorboard").glob("events.out.tfevents.*"))
    stage2 = torch.load(out/"stage2"/"checkpoints"/"last.pt", weights_only=False)
    assert stage2["config"]["init"] == str(out/"stage1"/"checkpoints"/"last.pt")
    assert all({"loss", "source_ce", "lr", "thresholds", "images_per_s"} <= set(l) for l in read_log(out/"stage1"))
    if "source:log.eval_every=1" in extra:
        assert any("eval_val_miou" in l for l in read_log(out/"source"))
    protocol_key = "miou13" if benchmark == "synthia" else "miou"  # SYNTHIA: mIoU over 16 classes and over 13
    assert protocol_key in json.loads((out/"pipeline.json").read_text())["stage2"]["target"]

    assert run(argv) == 0  # a second run keeps every finished stage
    assert capsys.readouterr().out.count("finished earlier, kept") == 3
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".tauda-lock"}
    assert run(argv + sets("stage1:method.target.weight=0.5")) == 2  # a finished stage with other settings: refused
    captured = capsys.readouterr()
    assert f"{out/'stage1'} finished with other settings: method.target.weight=0.01→0.5 (run→now)" in captured.err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".tauda-lock"} == before

    assert run(["eval", str(out/"stage2"/"checkpoints"/"last.pt"), "--out", str(tmp_path/"eval")]) == 0
    again = json.loads((tmp_path/"eval"/"eval.json").read_text())
    assert again["target"] == json.loads((out/"stage2"/"eval.json").read_text())["target"]


def test_tensorboard_holds_scalars_and_images(source_run, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg = apply_overrides(get_preset("mini-stage1"), [f"data_root={source_run.data}", f"init={source_run.checkpoint}",
                                                      *TINY_RUN])
    Trainer(cfg, tmp_path/"run", progress=False).fit()
    events = EventAccumulator(str(tmp_path/"run"/"tensorboard")).Reload()
    scalars = {"loss", "source_ce", "lr", "mask_pass_ratio", "target_skipped", "images_per_s"}
    assert scalars <= set(events.Tags()["scalars"])
    assert {"target/input", "target/prediction", "target/entropy"} <= set(events.Tags()["images"])


def _train_command(data, init, out, *extra):
    items = [f"data_root={data}", f"init={init}", "schedule.iterations=8", "schedule.log_every=1",
             "schedule.checkpoint_every=1", "data.batch_size=2", "log.tensorboard=false", *extra]
    return [sys.executable, "-m", "tauda.cli", "train", "mini-stage1", "--out", str(out), "--quiet", *sets(*items)]


def test_kill_9_at_a_random_iteration_then_resume_gives_identical_weights(source_run, tmp_path):
    data, source = source_run.data, source_run.checkpoint
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(_train_command(data, source, tmp_path/"whole"), check=True, env=env, capture_output=True)
    kill_at = int(np.random.default_rng(int(time.time())).integers(2, 7))
    victim = subprocess.Popen(_train_command(data, source, tmp_path/"killed"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    log = tmp_path/"killed"/"log.jsonl"
    while victim.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= kill_at: break
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    interrupted_at = torch.load(tmp_path/"killed"/"checkpoints"/"last.pt", weights_only=False)["iteration"]
    assert 1 <= interrupted_at < 8, f"killed after iteration {kill_at}, last checkpoint at {interrupted_at}"
    subprocess.run(_train_command(data, source, tmp_path/"killed") + ["--resume"], check=True, env=env,
                   capture_output=True)
    whole, resumed = (torch.load(tmp_path/run/"checkpoints"/"last.pt", weights_only=False)
                      for run in ("whole", "killed"))
    for key, value in whole["model"].items(): assert torch.equal(value, resumed["model"][key]), key
    assert torch.equal(whole["method"]["thresholds"]["thresholds"], resumed["method"]["thresholds"]["thresholds"])


def _reference_step(trainer, methods, batches):
    """One step of one process that computes each rank's losses and averages their gradients; the thresholds of
    every simulated rank see the pixels of all ranks (what the all-gather of `AdaptiveThreshold` does)."""
    model, world = trainer.model, len(methods)
    for g in trainer.optimizer.param_groups: g["lr"] = g["initial_lr"]*trainer.lr_factor(trainer.iteration)
    pairs, states = [], [copy.deepcopy(m.state_dict()) for m in methods]
    def record(conf, cls):
        pairs.append((conf, cls))
        return conf, cls
    with torch.no_grad(), mock.patch("tauda.ufl._all_gather_pairs", record):
        for r, (method, (source, target)) in enumerate(zip(methods, batches)):
            with mock.patch("tauda.methods.rank_and_world", lambda r=r: (r, world)):
                method.losses(model, source, target, trainer.iteration)
    for method, state in zip(methods, states): method.load_state_dict(state)
    everything = (torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
    trainer.optimizer.zero_grad()
    with mock.patch("tauda.ufl._all_gather_pairs", lambda conf, cls: everything):
        for r, (method, (source, target)) in enumerate(zip(methods, batches)):
            with mock.patch("tauda.methods.rank_and_world", lambda r=r: (r, world)):
                (sum(method.losses(model, source, target, trainer.iteration).values())/world).backward()
    trainer.optimizer.step()
    trainer.iteration += 1


def test_two_gloo_processes_equal_one_process_averaging_the_ranks_gradients(source_run, tmp_path):
    steps, world = 3, 2
    cfg = apply_overrides(get_preset("mini-stage1"), [f"data_root={source_run.data}", f"init={source_run.checkpoint}",
                                                      f"schedule.iterations={steps}", "data.batch_size=2",
                                                      "log.tensorboard=false", "device=cpu"])
    save_config(cfg, tmp_path/"config.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(world), str(ROOT/"tests"/"ddp_worker.py"), str(tmp_path/"config.yaml"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path/f"rank{r}.pt", weights_only=False) for r in range(world)]
    assert ranks[0]["world"] == world
    assert torch.equal(ranks[0]["thresholds"], ranks[1]["thresholds"])

    trainer = Trainer(cfg, tmp_path/"reference", progress=False)
    methods = [trainer.method, build_method(cfg, trainer.protocol, trainer.device, trainer.source_train)]
    streams = [(train_stream(trainer.source_train, cfg, RandomStream.SOURCE, 0, r, world),
                train_stream(trainer.target_train, cfg, RandomStream.TARGET, 0, r, world)) for r in range(world)]
    for _ in range(steps): _reference_step(trainer, methods, [(next(s), next(t)) for s, t in streams])
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["model"][key], value, rtol=0, atol=1e-6, msg=key)
        assert torch.equal(ranks[0]["model"][key], ranks[1]["model"][key]), key
    for method in methods: torch.testing.assert_close(method.rule.thresholds, ranks[0]["thresholds"], rtol=0, atol=1e-6)


def test_out_of_memory_names_the_knobs(minicity, tmp_path):
    cfg = apply_overrides(get_preset("mini-source"), [f"data_root={minicity.root}", *TINY_RUN])
    trainer = Trainer(cfg, tmp_path/"run", progress=False)
    advice = r"out of GPU memory at iteration 0 .*data\.crop=\[32,64\].*data\.batch_size=4"
    with mock.patch.object(trainer.method, "losses", side_effect=torch.OutOfMemoryError("CUDA out of memory")):
        with pytest.raises(TrainingError, match=advice):
            trainer.fit()


def test_non_finite_loss_stops_with_step_and_term_and_keeps_the_last_good_checkpoint(minicity, tmp_path, capsys):
    cfg = apply_overrides(get_preset("mini-source"), [f"data_root={minicity.root}", *TINY_RUN, "schedule.iterations=6",
                                                      "schedule.checkpoint_every=2"])
    trainer = Trainer(cfg, tmp_path/"run", progress=False)
    real = trainer.method.losses
    def poisoned(model, source, target=None, iteration=0):
        terms = real(model, source, target, iteration)
        return {k: v*float("nan") if iteration == 3 else v for k, v in terms.items()}
    with mock.patch.object(trainer.method, "losses", poisoned):
        with pytest.raises(TrainingError, match=r"non-finite loss at iteration 3: source_ce=nan"):
            trainer.fit()
    last = torch.load(tmp_path/"run"/"checkpoints"/"last.pt", weights_only=False)
    assert last["iteration"] == 2 and all(torch.isfinite(v).all() for v in last["model"].values())


def test_pipeline_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["pipeline", "gta5-resnet"])
    assert exit_.value.code == 2 and "gta5-bisenet" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pipeline", "mini", "--set", "stage3:optim.lr=1"])
    assert "unknown stage 'stage3'" in capsys.readouterr().err


def test_fp16_on_cpu_is_refused_with_the_alternatives(minicity, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "mini-source", *sets(f"data_root={minicity.root}", "amp=fp16", "device=cpu"),
              "--out", str(tmp_path)])
    assert "amp=fp16 needs a CUDA device; on CPU use amp=bf16 or amp=off" in capsys.readouterr().err
