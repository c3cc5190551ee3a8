"""`tauda study` on a tiny setting (the shared minicity): records written as JSON, finished entries skipped, changed
configs re-run, lost checkpoints rebuilt; a small design in two worker processes, interrupted and resumed."""
import json
import multiprocessing
import shutil

import numpy as np
import pytest

from helpers import sets
from tauda.cli import run
from tauda.labels import MINICITY10
from tauda.runner import Schedule, Study
from tauda.study import (DESIGN, MAIN, RUNS, Run, closure, load_records, make_design, record_path, study_plan,
                         unpack)
from tauda.evidence import format_summary, summarise

TINY_SETS = ("schedule.iterations=2", "data.batch_size=2", "schedule.eval_batch_size=4")
TINY = [*sets(*TINY_SETS), "--quiet"]


@pytest.fixture(scope="module")
def setting(minicity, tmp_path_factory):
    "A folder for the study's runs and results, and the options of `tauda study` that put them there."
    tmp = tmp_path_factory.mktemp("study")
    return tmp, ["--data-root", str(minicity.root), "--out", str(tmp/"runs"), "--results", str(tmp/"results"),
                 "--seeds", "0", "--workers", "0", *TINY]


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json") if not p.name.startswith(".")}


def test_writes_records_and_skips_finished_entries(setting, capsys):
    tmp, args = setting
    assert run(["study", "--runs", "source,control", *args]) == 0
    records = {r["name"]: r for r in load_records(tmp/"results")}
    assert set(records) == {"source", "control"}
    rec = records["control"]
    assert rec["seed"] == 0 and rec["iterations"] == 2 and rec["starts_from"] == "source"
    assert set(rec["val"]["per_class"]) == set(MINICITY10.names) and rec["tune"]["miou"] is not None
    assert rec["hardware"]["cpu_capability"] and rec["hardware"]["forced_capability"] == ""
    assert unpack(rec["maps"]["prediction"]).shape == (4, 64, 128)
    assert unpack(rec["maps"]["entropy"]).dtype == np.uint8
    assert json.loads(json.dumps(rec)) == rec  # plain JSON
    before = mtimes(tmp/"results")
    capsys.readouterr()
    assert run(["study", "--runs", "source,control", *args]) == 0
    assert "0 trained" in capsys.readouterr().out and mtimes(tmp/"results") == before
    summary = summarise(load_records(tmp/"results"))
    assert summary["control"]["seeds"] == [0] and summary["control"]["miou_std"] == 0.0
    assert "control" in format_summary(summary) and "not run yet" in format_summary(summary, ["control", "stage2"])


def test_changed_config_reruns_and_lost_checkpoints_are_rebuilt(setting, capsys):
    tmp, args = setting
    assert run(["study", "--runs", "source", *args]) == 0
    before = mtimes(tmp/"results")
    assert run(["study", "--runs", "source", *args, "--set", "optim.momentum=0.5"]) == 0
    assert mtimes(tmp/"results")["source-s0.json"] != before["source-s0.json"]  # another config: trained again
    assert run(["study", "--runs", "source,control", *args]) == 0  # back: both re-run (control's parent changed)
    shutil.rmtree(tmp/"runs")                                            # records kept, checkpoints lost
    (tmp/"results"/"control-s0.json").unlink()
    before = mtimes(tmp/"results")
    assert run(["study", "--runs", "control", *args]) == 0
    after = mtimes(tmp/"results")
    assert after["source-s0.json"] == before["source-s0.json"] and "control-s0.json" in after
    assert any(p.name.startswith("source-s0-") for p in (tmp/"runs").iterdir())  # source's checkpoint rebuilt


U = "method.target.weight"
SMALL = make_design((Run("source", "mini-source"),
                     Run("stage1", "mini-stage1", (), "source", tuned=((U, "stage1-lambda"),)),
                     Run("control", "mini-stage1", ("method.name=source",), "source", group="control"),
                     Run("source-cpu", "mini-source", env=(("ATEN_CPU_CAPABILITY", "default"),), group="cpu")),
                    grids={"stage1-lambda": (0.1, 1.0)})


class Stop(KeyboardInterrupt):
    "Ctrl-C, pressed as soon as a worker has trained one run."


def interrupt_after_training(line: str):
    if "trained in" in line: raise Stop


def test_workers_interrupt_resume_and_reuse(minicity, tmp_path):
    study = lambda: Study(tmp_path/"runs", tmp_path/"results", TINY_SETS, minicity.root, design=SMALL, progress=False)
    jobs = closure(study_plan("all", [0], SMALL), SMALL)
    assert len(jobs) == 7 and jobs.index(("source", 100)) < jobs.index(("stage1-lambda=0.1", 100))
    first = study()
    first.claim()
    with pytest.raises(Stop): Schedule(first, jobs, workers=2, report=interrupt_after_training).run()
    first.release()
    assert not multiprocessing.active_children()                  # the workers are gone
    kept = mtimes(tmp_path/"results")
    assert 1 <= len(kept) < 7 and all(json.loads((tmp_path/"results"/n).read_text())["name"] for n in kept)
    second = study()
    second.claim()                                                  # the lock was released
    done = Schedule(second, jobs, workers=2, report=lambda line: None).run()
    second.release()
    assert len(done) == 7 and sum(s["status"] == "ran" for s in done.values()) == 7 - len(kept)
    after = mtimes(tmp_path/"results")
    assert all(after[n] == t for n, t in kept.items())              # what was written before is reused
    for name, seed in jobs:                                         # a parent's record is written before its child's
        if parent := SMALL.runs[name].starts_from:
            assert after[f"{parent}-s{seed}.json"] < after[f"{name}-s{seed}.json"]
    records = {(r["name"], r["seed"]): r for r in load_records(tmp_path/"results")}
    sweep = {v: records[(f"stage1-lambda={v:g}", 100)]["tune"]["miou"] for v in (0.1, 1.0)}
    assert records[("stage1", 0)]["tuned"] == {U: max(sweep, key=lambda v: (sweep[v], -v))}
    assert records[("source-cpu", 0)]["hardware"]["forced_capability"] == "default"
    assert records[("source-cpu", 0)]["hardware"]["cpu_capability"] == "DEFAULT"
    third = study()
    third.claim()
    schedule = Schedule(third, jobs, workers=2, report=lambda line: None)
    assert all(s["status"] == "stored" for s in schedule.run().values()) and schedule.pool is None
    third.release()
    assert mtimes(tmp_path/"results") == after and record_path(tmp_path/"results", "stage1", 0).is_file()


def test_plan_list_and_bad_input(capsys):
    assert study_plan("main", [0, 1, 2, 3, 4]) == [(r.name, s) for s in range(5) for r in MAIN]
    assert {s for _, s in study_plan("controls", [5, 6, 7, 8])} == {5, 6, 7}
    assert {s for _, s in study_plan("tune", [0])} == {DESIGN.tune_seed}
    jobs = closure(study_plan("stage2", [0]))
    assert ("stage2-lambda_mix=0.1", 100) in jobs and jobs.index(("stage1", 100)) < jobs.index(("stage2", 0))
    assert run(["study", "--list", "--runs", "all"]) == 0
    out = capsys.readouterr().out
    assert "stage2-no-longtail" in out and "h with 2 workers" in out
    assert run(["study", "--runs", "no-such-entry"]) == 2 and "unknown study entries" in capsys.readouterr().err
    assert run(["study", "--seeds", "100", "--list"]) == 2 and "tuning seed" in capsys.readouterr().err
    assert run(["study", "--no-such-flag"]) == 2
    assert all(r.starts_from in ("", *RUNS) for r in RUNS.values())


def test_the_demo_trains_the_seed_0_main_entries():
    "Each demo method's config is the study's entry at seed 0 with the values its sweeps chose: the same run."
    from pathlib import Path
    from tauda.commands import DEMO_METHODS, demo_config
    from tauda.config import to_dict
    from tauda.study import Choices, build_config, resolve
    choices = Choices(Path(__file__).parents[1]/"results"/"study")
    if any(resolve(RUNS[m], choices) is None for m in DEMO_METHODS):
        pytest.skip("the study's sweeps have not all run yet (results/study)")
    for method in DEMO_METHODS:
        demo, entry = (to_dict(c) for c in (demo_config(method, Path("demo")),
                                            build_config(resolve(RUNS[method], choices), 0)))
        for d in (demo, entry): d.pop("init"), d.pop("data_root")
        assert demo == entry, method
