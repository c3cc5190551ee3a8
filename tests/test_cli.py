"""The `tauda` command. The demo (on the cached minicity), `eval` and `presets` run as a user runs them (a subprocess,
`python -m tauda.cli`); the help of every command, one-line user errors and `check-data` run in-process
(`tauda.cli.run`: the same parser and error boundary, without a Python process importing torch for each case)."""
import json
import subprocess
import sys

import pytest

from tauda.cli import run


def tauda(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tauda.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["pipeline"], ["eval"], ["presets"], ["check-data"],
                                     ["pseudo-label"], ["study"]])
def test_help_explains_every_command(command, capsys):
    assert run([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: tauda" in out and len(out.splitlines()) > 4


def test_presets_lists_the_mini_presets():
    result = tauda("presets")
    assert result.returncode == 0 and "mini-source" in result.stdout and "mini-oracle" in result.stdout


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = tauda("demo", "--iterations", "30", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_demo_prints_tables_and_writes_a_run_directory(demo_run):
    out, result = demo_run
    assert "TARGET (camera, val)" in result.stdout and "SOURCE (simulator, held out)" in result.stdout
    assert "protocol minicity10" in result.stdout
    rows = [line.split()[0] for line in result.stdout.splitlines()
            if line.split()[:1] in (["source"], ["minent"], ["stage1"], ["stage2"])]
    assert rows == ["source", "minent", "stage1", "stage2"]*2  # one row per method, in both tables
    run = out/"source"
    for name in ("config.yaml", "log.jsonl", "eval.json", "checkpoints/last.pt"):
        assert (run/name).is_file(), name
    assert (out/"predictions.png").is_file() and (out/"thresholds.png").is_file() and "predictions.png" in result.stdout
    results = json.loads((out/"results.json").read_text())
    report = results["reports"]["source"]
    assert set(report["target"]["per_class"]) == {"road", "sidewalk", "building", "pole", "traffic sign", "vegetation",
                                                   "sky", "person", "rider", "car"}
    assert 0 <= report["target"]["miou"] <= 100 and 0 <= report["source"]["miou"] <= 100
    log = [json.loads(line) for line in (run/"log.jsonl").read_text().splitlines()]
    assert log[-1]["iteration"] == 30 and all(l["loss"] > 0 for l in log)
    stage2 = [json.loads(line) for line in (out/"stage2/log.jsonl").read_text().splitlines()]
    assert all("mix" in l and "thresholds" in l for l in stage2)


def test_eval_reproduces_the_training_evaluation(demo_run, tmp_path):
    out, _ = demo_run
    result = tauda("eval", str(out/"source/checkpoints/last.pt"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((tmp_path/"eval.json").read_text())
    first = json.loads((out/"source/eval.json").read_text())
    assert again["target"] == first["target"]


def test_demo_run_again_starts_afresh_and_keeps_the_users_files(demo_run):
    "Run again into the same folder, the demo replaces its own earlier run (no log or picture of it left mixed in)."
    out, _ = demo_run
    (out/"notes.txt").write_text("the user's")
    (out/"stage1"/"my-plot.png").write_bytes(b"the user's too")
    result = tauda("demo", "--iterations", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    for method in ("source", "minent", "stage1", "stage2"):
        log = [json.loads(line) for line in (out/method/"log.jsonl").read_text().splitlines()]
        assert [l["iteration"] for l in log] == [2], method  # the earlier run's 30 iterations are gone
        assert json.loads((out/method/"eval.json").read_text())["iteration"] == 2
    assert (out/"notes.txt").read_text() == "the user's"
    assert (out/"stage1"/"my-plot.png").read_bytes() == b"the user's too"
    assert json.loads((out/"results.json").read_text())["reports"]["source"]["iteration"] == 2


@pytest.mark.parametrize("args, message", [
    (["train", "mini-sorce"], "did you mean 'mini-source'"),
    (["train", "mini-source", "--set", "optim.lrr=0.1"], "did you mean 'optim.lr'"),
    (["train", "mini-source", "--set", "schedule.iterations=many"], "expected int"),
    (["train", "mini-source", "--set", "optim.lr=.inf"], "optim.lr: inf is not a finite number"),
    (["train", "mini-source", "--set", "data.minicity=false", "--data-root", "/nonexistent"], "/nonexistent/gta5"),
    (["eval", "/nonexistent/last.pt"], "checkpoint not found"),
])
def test_user_errors_are_one_clear_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_check_data_passes_a_good_copy_and_names_a_broken_file(tmp_path, capsys):
    from tauda.data import write_fixture
    write_fixture("gta5", tmp_path/"gta5", n=3)
    assert run(["check-data", "gta5", str(tmp_path/"gta5")]) == 0, capsys.readouterr()
    capsys.readouterr()
    (tmp_path/"gta5/labels"/sorted(p.name for p in (tmp_path/"gta5/labels").iterdir())[1]).unlink()
    assert run(["check-data", "gta5", str(tmp_path/"gta5")]) == 1
    assert "image_without_label" in capsys.readouterr().out


def test_numbers_as_people_write_them():
    "`tauda train --help` suggests --set optim.lr=1e-3: YAML 1.1 reads 1e-3 as a string, tauda reads it as a number."
    from tauda.config import apply_overrides, get_preset
    for spelling, value in (("1e-3", 1e-3), ("1E-3", 1e-3), (".5", 0.5), ("3.", 3.0), ("2", 2.0)):
        assert apply_overrides(get_preset("mini-source"), [f"optim.lr={spelling}"]).optim.lr == value
    assert "--set optim.lr=1e-3" in " ".join(subprocess.run([sys.executable, "-m", "tauda.cli", "train", "--help"],
                                                            capture_output=True, text=True).stdout.split())


def test_every_preset_resolves():
    from tauda.config import PRESETS, get_preset
    from tauda.labels import get_protocol
    from tauda.models import MODELS
    assert len(PRESETS) >= 21
    for name in PRESETS:
        cfg = get_preset(name)
        assert cfg.model.name in MODELS and get_protocol(cfg.data.protocol)
        assert (cfg.method.name in ("stage1", "stage2")) == ("init=" in PRESETS.summary(name))
