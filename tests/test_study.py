"""`tauda study` on a tiny setting (the shared minicity): records written as JSON, finished entries skipped, changed
configs re-run, lost checkpoints rebuilt."""
import json
import shutil

import numpy as np
import pytest

from helpers import sets
from tauda.cli import run
from tauda.config import MINI_LAMBDA_U as LAMBDA_U
from tauda.labels import MINICITY10
from tauda.study import MAIN, RUNS, format_summary, load_records, study_plan, summarise, unpack

TINY = [*sets("schedule.iterations=2", "data.batch_size=2", "schedule.eval_batch_size=4"), "--quiet"]


@pytest.fixture(scope="module")
def setting(minicity, tmp_path_factory):
    "A folder for the study's runs and results, and the options of `tauda study` that put them there."
    tmp = tmp_path_factory.mktemp("study")
    return tmp, ["--data-root", str(minicity.root), "--out", str(tmp/"runs"), "--results", str(tmp/"results"),
                 "--seeds", "0", *TINY]


def mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}


def test_writes_records_and_skips_finished_entries(setting, capsys):
    tmp, args = setting
    assert run(["study", "--runs", "source,stage1", *args]) == 0
    records = {r["name"]: r for r in load_records(tmp/"results")}
    assert set(records) == {"source", "stage1"}
    rec = records["stage1"]
    assert rec["seed"] == 0 and rec["iterations"] == 2 and rec["starts_from"] == "source"
    assert set(rec["val"]["per_class"]) == set(MINICITY10.names) and rec["tune"]["miou"] is not None
    assert rec["log"][-1]["iteration"] == 2 and "thresholds" in rec["log"][-1]
    assert unpack(rec["maps"]["prediction"]).shape == (4, 64, 128)
    assert unpack(rec["maps"]["entropy"]).dtype == np.uint8
    assert json.loads(json.dumps(rec)) == rec  # plain JSON
    before = mtimes(tmp/"results")
    capsys.readouterr()
    assert run(["study", "--runs", "source,stage1", *args]) == 0
    assert "0 trained" in capsys.readouterr().out and mtimes(tmp/"results") == before
    # the tuning point equal to `stage1`: copied, not trained
    assert run(["study", "--runs", f"stage1-lambda_u={LAMBDA_U:g}", *args]) == 0
    assert "0 trained" in capsys.readouterr().out
    twin = json.loads((tmp/"results"/f"stage1-lambda_u={LAMBDA_U:g}-s0.json").read_text())
    assert twin["copied_from"] == "stage1" and twin["val"] == rec["val"]
    summary = summarise(load_records(tmp/"results"))
    assert summary["stage1"]["seeds"] == [0] and summary["stage1"]["miou_std"] == 0.0
    assert "stage1" in format_summary(summary)


def test_changed_config_reruns_and_lost_checkpoints_are_rebuilt(setting, capsys):
    tmp, args = setting
    assert run(["study", "--runs", "source", *args]) == 0
    before = mtimes(tmp/"results")
    assert run(["study", "--runs", "source", *args, "--set", "optim.momentum=0.5"]) == 0
    assert mtimes(tmp/"results")["source-s0.json"] != before["source-s0.json"]  # another config: trained again
    assert run(["study", "--runs", "source,stage1", *args]) == 0  # back: both re-run (stage1's parent changed)
    shutil.rmtree(tmp/"runs")                                           # records kept, checkpoints lost
    before = mtimes(tmp/"results")
    capsys.readouterr()
    assert run(["study", "--runs", "stage2-no-longtail", *args]) == 0
    after = mtimes(tmp/"results")
    assert after["source-s0.json"] == before["source-s0.json"] and after["stage1-s0.json"] == before["stage1-s0.json"]
    assert "stage2-no-longtail-s0.json" in after
    assert any(p.name.startswith("stage1-s0-") for p in (tmp/"runs").iterdir())  # stage one's checkpoint rebuilt


def test_plan_list_and_bad_input(capsys):
    assert study_plan("main", [0, 1, 2]) == [(r.name, s) for s in (0, 1, 2) for r in MAIN]
    assert all(s == 5 for _, s in study_plan("ablations", [5, 6]))
    assert run(["study", "--list"]) == 0 and "stage2-no-longtail" in capsys.readouterr().out
    assert run(["study", "--runs", "no-such-entry"]) == 2 and "unknown study entries" in capsys.readouterr().err
    assert run(["study", "--no-such-flag"]) == 2
    assert all(r.starts_from in ("", *RUNS) for r in RUNS.values())
