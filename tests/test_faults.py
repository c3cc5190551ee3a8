"""Fault injection: things break on purpose while tauda runs, and tauda keeps its files whole and says what happened.

Covered elsewhere and not repeated here: kill -9 at a random iteration with exact resume, the out-of-memory advice and
a non-finite loss through the `Trainer` API (tests/test_training.py); an export interrupted by an exception inside a
file write, and deleted outputs being redone (tests/test_pseudo.py).

Here: kill -9 *while a checkpoint is being written*; a full disk while saving (simulated, and a real write refused
by the operating system); a data-loading worker that raises, is killed, exits or hangs; a non-finite loss through the
command line; kill -9 of a pseudo-label export, which then resumes without redoing or losing a file; Ctrl-C (SIGINT)
and SIGTERM of a training run, which stop it in one line naming the command that resumes it exactly; a second
writer on a run directory, refused while the first lives, and the lock released by kill -9 of the first; an
interrupt, `--debug` and an unexpected error through the command line's one boundary.
Subprocesses run `tests/fault_runner.py`, which injects the fault named by an environment variable. The runs train on
the shared fixture datasets in the real layouts, from the shared source checkpoint (conftest.py).
"""
import errno
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

import tauda.data
from helpers import error_line, sets
from tauda.cli import main
from tauda.config import apply_overrides, get_preset
from tauda.loading import RandomStream, SeededSampler, sample_file, sample_seed
from tauda.methods import SourceOnly
from tauda.pseudo import MANIFEST, export_pseudo_labels
from tauda.runtime import TrainingError
from tauda.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT/"tests"/"fault_runner.py"
RUN = ["data.minicity=false", "log.tensorboard=false", "data.num_workers=0", "schedule.log_every=1",
       "data.batch_size=2"]
N_TARGET = 6  # target training images (the pseudo-label export)


def ctrl_c_at_default():
    "Give a child the SIGINT disposition of a terminal's foreground job, even when the tests run under nohup or `&`."
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env(**extra) -> dict:
    "One thread per process (identical arithmetic in every run, no oversubscription of the 2 CI cores)."
    return {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", **extra}


def temporaries(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob(".*.tmp*"))


@pytest.fixture
def data(layouts):
    """The data root of these runs: the shared fixture datasets in the real layouts (conftest.py), of which these tests
    use GTA5 (4 images: "00001.png" …) and Cityscapes (N_TARGET training images, 2 val)."""
    assert len(list((layouts/"cityscapes"/"leftImg8bit"/"train").rglob("*.png"))) == N_TARGET
    return layouts


@pytest.fixture
def source_checkpoint(source_run):
    """The shared short source run's last checkpoint (on minicity: the same model and classes as these runs): the init
    of stage one, and the model of the pseudo-labels (exported from `data`: --data-root)."""
    return source_run.checkpoint


# ---------------------------------------------------------------- kill -9 in the middle of a checkpoint write

def test_kill_9_while_a_checkpoint_is_written_keeps_the_last_one_and_resume_is_exact(data, source_checkpoint, tmp_path):
    k = random.Random(time.time_ns()).randint(2, 6)  # killed while the k-th last.pt (iteration k of 6) is half written
    def argv(out):
        return [sys.executable, str(RUNNER), "train", "mini-stage1", "--quiet", "--data-root", str(data),
                "--out", str(out),
                *sets(*RUN, f"init={source_checkpoint}", "schedule.iterations=6", "schedule.checkpoint_every=1")]
    mark = tmp_path/"hanging"
    whole = subprocess.Popen(argv(tmp_path/"whole"), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    victim = subprocess.Popen(argv(tmp_path/"killed"), env=env(TAUDA_FAULT_HANG_SAVE=f"last.pt:{k}",
                                                               TAUDA_FAULT_MARK=str(mark)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not mark.exists() and victim.poll() is None and time.time() < deadline: time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL and mark.exists(), \
        f"k={k}: the run ended before the save it should hang in: " + victim.stderr.read().decode()[-2000:]

    checkpoints = tmp_path/"killed"/"checkpoints"
    partial = list(checkpoints.glob(".last.pt.tmp*"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < int(mark.read_text()), f"k={k}"
    with pytest.raises(Exception): torch.load(partial[0], weights_only=False)  # the half-written file: no checkpoint
    last = torch.load(checkpoints/"last.pt", weights_only=False)                 # last.pt: the previous one, whole
    assert last["iteration"] == k - 1, f"k={k}"

    assert whole.wait(timeout=240) == 0, whole.stderr.read().decode()[-2000:]
    subprocess.run(argv(tmp_path/"killed") + ["--resume"], env=env(), check=True, capture_output=True, timeout=240)
    assert temporaries(checkpoints) == [], "the resumed run removes the partial file"
    a, b = (torch.load(tmp_path/run/"checkpoints"/"last.pt", weights_only=False) for run in ("whole", "killed"))
    assert a["iteration"] == b["iteration"] == 6
    for key, value in a["model"].items(): assert torch.equal(value, b["model"][key]), f"k={k}: {key}"
    assert torch.equal(a["method"]["thresholds"]["thresholds"], b["method"]["thresholds"]["thresholds"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])


# ---------------------------------------------------------------- a full disk while saving

def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_says_so(data, tmp_path, capsys, monkeypatch):
    run, real_save, writes = tmp_path/"run", torch.save, []

    def full_disk(obj, f, *args, **kwargs):  # the second write of last.pt (the final one) finds the disk full half-way
        if ".last.pt.tmp" in Path(getattr(getattr(f, "file", f), "name", str(f))).name:
            writes.append(f)
            if len(writes) == 2:
                f.write(b"PK\x03\x04 the first bytes fit")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "mini-source", "--quiet", "--data-root", str(data), "--out", str(run),
              *sets(*RUN, "schedule.iterations=4", "schedule.checkpoint_every=2")])
    assert exit_.value.code == 2
    line = error_line(capsys.readouterr().err, "train")
    assert f"cannot write the checkpoint {run/'checkpoints'/'last.pt'}: No space left on device" in line
    assert "the previous checkpoint there is unchanged" in line
    monkeypatch.undo()
    assert temporaries(run) == []
    kept, periodic = (torch.load(run/"checkpoints"/name, weights_only=False) for name in ("last.pt", "iter_000002.pt"))
    assert kept["iteration"] == 2 and all(torch.equal(v, periodic["model"][k]) for k, v in kept["model"].items())
    assert not (run/"eval.json").exists()


def test_a_write_the_file_system_refuses_is_reported_by_its_own_reason(data, tmp_path):
    """A real failed write (a file-size limit: EFBIG, as ENOSPC on a full disk), which torch.save alone reports as
    'enforce fail'."""
    run = tmp_path/"run"
    done = subprocess.run([sys.executable, str(RUNNER), "train", "mini-source", "--quiet", "--data-root", str(data),
                           "--out", str(run), *sets(*RUN, "schedule.iterations=1")],
                          env=env(TAUDA_FAULT_FILE_SIZE="300000"), capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr[-2000:]
    line = error_line(done.stderr, "train")
    assert f"cannot write the checkpoint {run/'checkpoints'/'last.pt'}: File too large" in line
    assert "enforce fail" not in line
    assert temporaries(run) == [] and not (run/"checkpoints"/"last.pt").exists()


# ---------------------------------------------------------------- a data-loading worker that fails

class _Timeout:
    "Fail (instead of hanging the suite) if the block takes longer than `seconds`."
    def __init__(self, seconds): self.seconds = seconds
    def __enter__(self):
        def expire(*_): raise TimeoutError(f"still running after {self.seconds} s: the run hangs")
        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(self.seconds)
    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


@pytest.mark.parametrize("fault", ["raises", "killed", "exits", "hangs"])
def test_a_failing_data_loading_worker_stops_the_run_naming_the_file(data, tmp_path, capsys, monkeypatch, fault):
    broken = tmp_path/"data"
    shutil.copytree(data/"gta5", broken/"gta5")  # its own copy of the source images, the target ones shared
    (broken/"cityscapes").symlink_to(data/"cityscapes")
    victim = broken/"gta5"/"images"/"00003.png"
    if fault == "raises": victim.write_bytes(victim.read_bytes()[:-60])  # truncated: the worker's decoder raises
    else:
        real = tauda.data.read_rgb
        def dying(path):  # the decoder crashes hard in the worker process (a segfault, the OOM killer), or hangs
            if Path(path) == victim and torch.utils.data.get_worker_info() is not None:
                if fault == "hangs": time.sleep(600)  # a read from a stalled network file system
                if fault == "killed": os.kill(os.getpid(), signal.SIGKILL)
                os._exit(3)
            return real(path)
        monkeypatch.setattr(tauda.data, "read_rgb", dying)  # the workers are forked: they inherit it
    start = time.time()
    with _Timeout(120), pytest.raises(SystemExit) as exit_:
        main(["train", "mini-source", "--quiet", "--data-root", str(broken), "--out", str(tmp_path/"run"),
              *sets(*RUN, "data.num_workers=2", "schedule.iterations=4", "data.worker_timeout=5")])  # 4 × 2: all read
    assert exit_.value.code == 2 and time.time() - start < 120
    line = error_line(capsys.readouterr().err, "train")
    assert str(victim) in line and "Original Traceback" not in line and "Caught" not in line
    # torch learns of a dead worker from its SIGCHLD handler (with the signal or exit code) or while waiting for a batch
    # (without)
    expected = {"raises": "cannot decode as an RGB image", "killed": "(was killed by signal|exited unexpectedly)",
                "exits": "exited unexpectedly( with exit code 3)?",
                "hangs": "no batch came from the data-loading workers for 5 s"}
    assert re.search(expected[fault], line), line
    if fault in ("killed", "exits"): assert "--set data.num_workers=0" in line
    if fault == "hangs": assert "--set data.worker_timeout=SECONDS" in line


def test_a_worker_failing_after_the_last_step_does_not_fail_the_run(data, tmp_path, monkeypatch):
    "Workers read ahead; once the loop ends they are stopped, so a sample nobody will use cannot fail a finished run."
    real, saving = tauda.data.read_rgb, tmp_path/"saving"
    def dying_later(path):  # every read-ahead sample crashes its worker, once the final checkpoint is being saved
        if torch.utils.data.get_worker_info() is not None and Path(path).name != "00001.png":
            while not saving.exists(): time.sleep(0.01)
            os._exit(3)
        return real(path)
    save = Trainer.save
    def saving_first(trainer, *paths):
        saving.touch()
        save(trainer, *paths)
    monkeypatch.setattr(tauda.data, "read_rgb", dying_later)
    monkeypatch.setattr(Trainer, "save", saving_first)
    monkeypatch.setattr(torch.utils.data._utils, "MP_STATUS_CHECK_INTERVAL", 0.5)  # a stopped worker: awaited that long
    items = [f"data_root={data}", *RUN, "data.num_workers=1", "data.batch_size=1", "schedule.iterations=1",
             "data.scales=[1.0]"]
    cfg = apply_overrides(get_preset("mini-source"), items)
    trainer = Trainer(cfg, tmp_path/"run", progress=False)
    first = next(iter(SeededSampler(4, 1, sample_seed(cfg.seed, RandomStream.SOURCE))))[0]
    assert Path(sample_file(trainer.source_train, first)).name == "00001.png"  # the one sample the step uses loads
    report = trainer.fit()
    time.sleep(0.3)  # a worker that were still watched would fail the run by now
    assert report["iteration"] == 1 and (tmp_path/"run"/"eval.json").is_file()


def test_a_worker_killed_in_a_pseudo_label_export_names_its_file_and_a_rerun_completes(data, source_checkpoint,
                                                                                      tmp_path, capsys, monkeypatch):
    out = tmp_path/"out"
    argv = ["pseudo-label", str(source_checkpoint), "--data-root", str(data), "--out", str(out), "--batch-size", "1",
            "--num-workers", "2", "--quiet"]
    with pytest.raises(SystemExit) as exit_: main(argv)
    assert exit_.value.code == 0
    images = sorted((data/"cityscapes"/"leftImg8bit"/"train").rglob("*_leftImg8bit.png"))
    for i in (2, 4):  # left to do: 2 and 4
        next(out.rglob(images[i].name.replace("leftImg8bit", "gtFine_labelIds"))).unlink()
    real = tauda.data.read_rgb
    def dying(path):
        if Path(path) == images[4] and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path)
    monkeypatch.setattr(tauda.data, "read_rgb", dying)
    capsys.readouterr()
    with _Timeout(120), pytest.raises(SystemExit) as exit_: main(argv)
    assert exit_.value.code == 2
    line = error_line(capsys.readouterr().err, "pseudo-label")
    assert f"while loading {images[4]};" in line and "--num-workers 0" in line  # 1st of what is left to do: image 4
    monkeypatch.undo()
    with pytest.raises(SystemExit) as exit_: main(argv)
    manifest = json.loads((out/MANIFEST).read_text())
    assert exit_.value.code == 0 and manifest["complete"]
    assert manifest["computed"] in (1, 2)  # image 2 may have been written
    assert len(list(out.rglob("*_gtFine_labelIds.png"))) == N_TARGET and temporaries(out) == []


def test_a_hung_worker_stops_a_pseudo_label_export_naming_its_file(data, source_checkpoint, tmp_path, capsys,
                                                                  monkeypatch):
    images = sorted((data/"cityscapes"/"leftImg8bit"/"train").rglob("*_leftImg8bit.png"))
    real = tauda.data.read_rgb
    def hanging(path):  # a read from a stalled network file system
        if Path(path) == images[1] and torch.utils.data.get_worker_info() is not None: time.sleep(600)
        return real(path)
    monkeypatch.setattr(tauda.data, "read_rgb", hanging)
    start = time.time()
    with _Timeout(120), pytest.raises(SystemExit) as exit_:
        main(["pseudo-label", str(source_checkpoint), "--data-root", str(data), "--out", str(tmp_path/"out"),
              "--batch-size", "1", "--num-workers", "2", "--worker-timeout", "3", "--quiet"])
    assert exit_.value.code == 2 and time.time() - start < 120
    line = error_line(capsys.readouterr().err, "pseudo-label")
    assert f"no batch came from the data-loading workers for 3 s while loading {images[1]}" in line
    assert "--worker-timeout SECONDS" in line


# ---------------------------------------------------------------- a non-finite loss, through the command line

def test_a_non_finite_loss_stops_the_command_in_one_line(data, tmp_path, capsys):
    real = SourceOnly.losses
    def poisoned(self, model, source, target=None, iteration=0):
        terms = real(self, model, source, target, iteration)
        return {k: v*float("inf") if iteration == 1 else v for k, v in terms.items()}
    with mock.patch.object(SourceOnly, "losses", poisoned), pytest.raises(SystemExit) as exit_:
        main(["train", "mini-source", "--quiet", "--data-root", str(data), "--out", str(tmp_path/"run"),
              *sets(*RUN, "schedule.iterations=3", "schedule.checkpoint_every=1")])
    assert exit_.value.code == 2
    line = error_line(capsys.readouterr().err, "train")
    assert "non-finite loss at iteration 1: source_ce=inf" in line
    assert f"the last good checkpoint is {tmp_path/'run'/'checkpoints'/'last.pt'}" in line
    last = torch.load(tmp_path/"run"/"checkpoints"/"last.pt", weights_only=False)
    assert last["iteration"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values())


def test_weights_that_are_no_longer_finite_are_never_saved(data, tmp_path):
    "A learning rate far too large can overflow the weights without a non-finite loss: they are refused, not saved."
    cfg = apply_overrides(get_preset("mini-source"), [f"data_root={data}", *RUN, "schedule.iterations=2"])
    trainer = Trainer(cfg, tmp_path/"run", progress=False)
    with torch.no_grad(): next(trainer.model.parameters()).view(-1)[0] = float("inf")
    with pytest.raises(TrainingError, match="non-finite weights after iteration 0 .*, not saved; no checkpoint was "
                                            "written yet"):
        trainer.save(trainer.last_checkpoint)
    trainer.owner.release()
    assert not trainer.last_checkpoint.exists() and temporaries(tmp_path) == []


# ---------------------------------------------------------------- kill -9 of a pseudo-label export

def _tree(out: Path) -> dict:
    "Every output file at its final name (no manifest, marker, lock or temporary), by relative path: (mtime, bytes)."
    return {p.relative_to(out): (p.lstat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*")
            if p.is_file() and p.name not in (MANIFEST, ".tauda-output.json", ".tauda-lock") and ".tmp" not in p.name}


def test_kill_9_during_a_pseudo_label_export_then_resume_redoes_nothing_and_loses_nothing(data, source_checkpoint,
                                                                                         tmp_path):
    out, k = tmp_path/"out", random.Random(time.time_ns()).randint(1, N_TARGET - 2)
    victim = subprocess.Popen([sys.executable, str(RUNNER), "pseudo-label", str(source_checkpoint),
                               "--data-root", str(data), "--out", str(out), "--batch-size", "1", "--quiet"],
                              env=env(TAUDA_FAULT_SLOW_PNG="0.15"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(list(out.rglob("*_gtFine_labelIds.png"))) < k and victim.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(k).uniform(0, 0.3))  # then at a random moment, most likely in the middle of a file
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, \
        "the export finished before it could be killed: " + victim.stderr.read().decode()[-2000:]

    before = _tree(out)
    assert 0 < len(before) < 4*N_TARGET and json.loads((out/MANIFEST).read_text())["complete"] is False
    for path in before:
        with Image.open(out/path) as im: im.load()  # whatever has its final name is whole
    complete = {p.name.removesuffix("_gtFine_labelIds.png") for p in out.rglob("*_gtFine_labelIds.png")
                if all((p.parent/p.name.replace("labelIds", kind)).exists() for kind in ("confidence", "color"))}
    complete = {s for s in complete if (out/"leftImg8bit"/"train"/"fixture"/f"{s}_leftImg8bit.png").exists()}

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic as the killed process
    try:
        resumed = export_pseudo_labels(source_checkpoint, out, data_root=data, batch_size=1, progress=False)
        reference = export_pseudo_labels(source_checkpoint, tmp_path/"reference", data_root=data, batch_size=1,
                                         progress=False)
    finally: torch.set_num_threads(threads)
    after = _tree(out)
    assert resumed["complete"]
    assert (resumed["computed"], resumed["skipped"]) == (N_TARGET - len(complete), len(complete))
    assert temporaries(out) == []
    assert all(after[p] == before[p] for p in before), "a file written before the kill was rewritten"
    assert set(after) == set(_tree(tmp_path/"reference")) and len(after) == 4*N_TARGET
    for path in after:
        if path.suffix == ".png" and not (out/path).is_symlink():
            reference_png = np.array(Image.open(tmp_path/"reference"/path))
            assert np.array_equal(np.array(Image.open(out/path)), reference_png), path
    assert resumed["class_share"] == reference["class_share"]


# ---------------------------------------------------------------- Ctrl-C, SIGTERM, a second writer, the lock, kill -9

def _stage1(data, init, out, *extra) -> list:
    "`tauda train mini-stage1 …`: 6 iterations from `init`, a checkpoint after each (the run these tests stop)."
    return ["train", "mini-stage1", "--quiet", "--data-root", str(data), "--out", str(out),
            *sets(*RUN, f"init={init}", "schedule.iterations=6", "schedule.checkpoint_every=1", *extra)]


def _same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(v, b["model"][k]) for k, v in a["model"].items()) and \
        torch.equal(a["method"]["thresholds"]["thresholds"], b["method"]["thresholds"]["thresholds"])


@pytest.fixture(scope="module")
def whole_stage1(layouts, source_run, tmp_path_factory) -> dict:
    "The last checkpoint of the uninterrupted run (a subprocess with one thread, as the runs it is compared with)."
    out = tmp_path_factory.mktemp("whole")/"run"
    subprocess.run([sys.executable, "-m", "tauda.cli", *_stage1(layouts, source_run.checkpoint, out)], env=env(),
                   check=True, capture_output=True, timeout=240)
    return torch.load(out/"checkpoints"/"last.pt", weights_only=False)


@pytest.mark.parametrize("sig, status, stopped", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated (SIGTERM)")],
                         ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_in_one_line_and_the_printed_command_resumes_exactly(data, source_checkpoint, whole_stage1,
                                                                                tmp_path, sig, status, stopped):
    out, k = tmp_path/"run", random.Random(time.time_ns()).randint(2, 4)
    victim = subprocess.Popen([sys.executable, "-m", "tauda.cli", *_stage1(data, source_checkpoint, out)], env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=ctrl_c_at_default)
    log, deadline = out/"log.jsonl", time.time() + 240
    while victim.poll() is None and time.time() < deadline:
        if log.is_file() and len(log.read_text().splitlines()) >= k: break
        time.sleep(0.01)
    victim.send_signal(sig)
    err = victim.communicate(timeout=120)[1]
    assert victim.returncode == status, f"k={k}: {err[-2000:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert lines[0].startswith(f"tauda train: {stopped} at iteration ") and f" of 6 in {out}; " in lines[0]
    assert "nothing is half-written; continue with: tauda train mini-stage1 " in lines[0]
    assert lines[0].endswith(" --resume") and temporaries(out) == []
    resume = shlex.split(lines[0].split("continue with: ", 1)[1])
    subprocess.run([sys.executable, "-m", "tauda.cli", *resume[1:]], env=env(), check=True, capture_output=True,
                   timeout=240)
    resumed = torch.load(out/"checkpoints"/"last.pt", weights_only=False)
    assert resumed["iteration"] == 6 and _same_weights(whole_stage1, resumed), f"k={k}"
    assert [json.loads(line)["iteration"] for line in log.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_a_second_writer_is_refused_and_kill_9_of_the_first_releases_the_lock(data, source_checkpoint, whole_stage1,
                                                                              tmp_path, capsys):
    out, mark = tmp_path/"run", tmp_path/"hanging"
    argv = _stage1(data, source_checkpoint, out)
    first = subprocess.Popen([sys.executable, str(RUNNER), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=env(TAUDA_FAULT_HANG_SAVE="last.pt:3", TAUDA_FAULT_MARK=str(mark)))
    deadline = time.time() + 240
    while not mark.exists() and first.poll() is None and time.time() < deadline: time.sleep(0.02)
    assert mark.exists(), first.stderr.read().decode()[-2000:]
    for again in (argv, argv + ["--resume"]):  # while the first one lives: refused, naming it
        with pytest.raises(SystemExit) as exit_: main(again)
        assert exit_.value.code == 2
        line = error_line(capsys.readouterr().err, "train")
        assert f"run directory {out} is in use by another tauda process (pid {first.pid})" in line
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    done = subprocess.run([sys.executable, "-m", "tauda.cli", *argv, "--resume"], env=env(), capture_output=True,
                          text=True, timeout=240)  # the operating system released the lock with the process
    assert done.returncode == 0, done.stderr[-2000:]
    assert temporaries(out) == [] and _same_weights(whole_stage1, torch.load(out/"checkpoints"/"last.pt",
                                                                             weights_only=False))


def test_ctrl_c_debug_and_an_unexpected_error_through_the_boundary(data, tmp_path, capsys, monkeypatch):
    argv = ["train", "mini-source", "--quiet", "--data-root", str(data), "--out", str(tmp_path/"run"),
            *sets(*RUN, "schedule.iterations=4", "schedule.checkpoint_every=1")]
    step = Trainer.train_step
    def interrupted(trainer, *batches):
        if trainer.iteration == 2: raise KeyboardInterrupt  # Ctrl-C in the middle of the third step
        return step(trainer, *batches)
    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(SystemExit) as exit_: main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 130 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    run = tmp_path/"run"
    assert err.startswith(f"tauda train: interrupted at iteration 2 of 4 in {run}; the last good checkpoint is "
                          f"{run/'checkpoints'/'last.pt'} (iteration 2); nothing is half-written; continue with: ")
    assert err.strip().endswith("--resume") and temporaries(run) == []
    def broken(trainer, *batches): raise ZeroDivisionError("a bug")
    monkeypatch.setattr(Trainer, "train_step", broken)
    for debug, environ in ((False, "0"), (True, "0"), (False, "1")):
        monkeypatch.setenv("TAUDA_DEBUG", environ)
        with pytest.raises(SystemExit) as exit_: main(argv + ["--resume"] + (["--debug"] if debug else []))
        err = capsys.readouterr().err
        assert exit_.value.code == 3 and err.strip().splitlines()[-1] == \
            "tauda train: error: unexpected ZeroDivisionError: a bug (a bug in tauda? run it again with --debug " \
            "for the traceback)"
        assert ("Traceback" in err) == (debug or environ == "1")


def test_an_interrupt_during_a_write_is_acted_on_after_it(tmp_path):
    "Ctrl-C in the middle of `write_atomic` (torch's writer would turn it into its own RuntimeError) comes after it."
    script = ("import os, signal, sys, time\nfrom pathlib import Path\nfrom tauda.checkpoint import write_atomic\n"
              "def write(tmp):\n    os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2); tmp.write_text('complete')\n"
              "try: write_atomic(Path(sys.argv[1]), write)\nexcept KeyboardInterrupt: sys.exit(130)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path/"f.txt")], env=env(), capture_output=True,
                          preexec_fn=ctrl_c_at_default)
    assert done.returncode == 130, done.stderr
    assert (tmp_path/"f.txt").read_text() == "complete" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
