"""The `tauda` command. The demo (on the cached minicity), `eval` and `presets` run as a user runs them (a subprocess,
`python -m tauda.cli`); the help of every command, one-line user errors and `check-data` run in-process
(`tauda.cli.run`: the same parser and error boundary, without a Python process importing torch for each case).
The demo's re-run into the same folder and its pictures run in-process on the suite's small minicity."""
import json
import subprocess
import sys

import pytest
import yaml

from tauda.cli import run


def tauda(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tauda.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["pipeline"], ["eval"], ["presets"], ["check-data"],
                                     ["pseudo-label"], ["study"]])
def test_help_explains_every_command(command, capsys):
    assert run([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: tauda" in out and len(out.splitlines()) > 4


def test_the_parser_is_built_without_torch():
    "`tauda --help` must be fast: declaring the commands and building the parser imports no torch (nor numpy)."
    check = ("import sys, tauda.cli; tauda.cli.parser(); "
             "print(sorted(m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_command_runs_a_function_that_exists():
    from tauda.registry import COMMANDS
    assert list(COMMANDS) == ["demo", "train", "pipeline", "eval", "pseudo-label", "check-data", "study", "presets",
                             "leaderboard"]
    for cmd in COMMANDS.values(): assert callable(cmd.runner()), cmd.name


def test_check_data_help_names_every_layout_and_protocol(capsys):
    "The help is written without importing the registries: it must still name all of them."
    from tauda.data import DATASETS
    from tauda.labels import PROTOCOLS
    assert run(["check-data", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in [*DATASETS, *PROTOCOLS]), text


def test_presets_lists_the_mini_presets():
    result = tauda("presets")
    assert result.returncode == 0 and "mini-source" in result.stdout and "mini-oracle" in result.stdout
    assert "tauda presets --show NAME" in result.stdout


def test_presets_show_prints_every_field(capsys):
    from tauda.config import get_preset, to_dict
    assert run(["presets", "--show", "mini-stage1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# mini-stage1: ") and yaml.safe_load(out) == to_dict(get_preset("mini-stage1"))
    assert run(["presets", "--show", "mini-stagee1"]) == 2
    assert "did you mean 'mini-stage1'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = tauda("demo", "--iterations", "30", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_demo_prints_progress_one_table_and_where_everything_is(demo_run):
    out, result = demo_run
    lines = result.stdout.splitlines()
    steps = [line.split(":")[0] for line in lines if line.startswith("[") and "elapsed, about" in line]
    assert steps == ["[1/4] source", "[2/4] minent", "[3/4] stage1", "[4/4] stage2"]
    assert "on 2 idle cores" in next(line for line in lines if line.startswith("[1/4] source:"))
    heading = next(line for line in lines if "target domain (minicity-camera), split val" in line)
    assert "source domain (minicity-simulator), split val" in heading
    header = next(line for line in lines if line.startswith("class "))
    assert header.split() == ["class", "source", "minent", "stage1", "stage2", "source", "minent", "stage1", "stage2"]
    rows = [line.split()[0] for line in lines if line.split()[:1] in (["sidewalk"], ["vegetation"], ["mIoU"])]
    assert rows == ["sidewalk", "vegetation", "mIoU"]  # full class names, one row each
    assert "protocol minicity10" in result.stdout and f"everything is in {out.resolve()}" in result.stdout
    assert "predictions.png" in result.stdout and "minicity, the data" in result.stdout
    run_dir = out/"source"
    for name in ("config.yaml", "log.jsonl", "eval.json", "checkpoints/last.pt"):
        assert (run_dir/name).is_file(), name
    assert (out/"predictions.png").is_file() and (out/"thresholds.png").is_file()
    results = json.loads((out/"results.json").read_text())
    report = results["reports"]["source"]
    assert set(report["target"]["per_class"]) == {"road", "sidewalk", "building", "pole", "traffic sign", "vegetation",
                                                   "sky", "person", "rider", "car"}
    assert (report["target"]["split"], report["source"]["dataset"]) == ("val", "minicity-simulator")
    assert 0 <= report["target"]["miou"] <= 100 and 0 <= report["source"]["miou"] <= 100
    assert set(results["method_seconds"]) == {"source", "minent", "stage1", "stage2"}
    log = [json.loads(line) for line in (run_dir/"log.jsonl").read_text().splitlines()]
    assert log[-1]["iteration"] == 30 and all(l["loss"] > 0 for l in log)
    stage2 = [json.loads(line) for line in (out/"stage2/log.jsonl").read_text().splitlines()]
    assert all("mix" in l and "thresholds" in l for l in stage2)


def test_a_mini_runs_config_names_minicity_and_only_its_methods_fields(demo_run):
    from tauda.config import load_config
    out, _ = demo_run
    for method, absent in (("source", "target"), ("minent", "thresholds"), ("stage1", "mixing")):
        written = yaml.safe_load((out/method/"config.yaml").read_text())
        assert (written["data"]["source"], written["data"]["target"]) == ("minicity-simulator", "minicity-camera")
        assert "minicity" not in written["data"] and absent not in written["method"]
        assert written["method"]["name"] == method
        cfg = load_config(out/method/"config.yaml")
        assert cfg.data.minicity and (cfg.data.source, cfg.data.target) == ("gta5", "cityscapes")
    assert "weight" in yaml.safe_load((out/"minent/config.yaml").read_text())["method"]["target"]
    assert "weight" in yaml.safe_load((out/"stage2/config.yaml").read_text())["method"]["mixing"]


def test_eval_reproduces_the_training_evaluation_and_shows_both_domains(demo_run, tmp_path):
    out, _ = demo_run
    result = tauda("eval", str(out/"source/checkpoints/last.pt"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((tmp_path/"eval.json").read_text())
    first = json.loads((out/"source/eval.json").read_text())
    assert again["target"] == first["target"]
    assert "target domain (minicity-camera), split val" in result.stdout
    assert "source domain (minicity-simulator), split val" in result.stdout
    assert next(line for line in result.stdout.splitlines() if line.startswith("class ")).split() == \
        ["class", "target", "source"]


def test_a_demo_rerun_into_the_same_folder_starts_afresh(minicity, tmp_path, capsys):
    "A second demo removes exactly the first one's files (checkpoints included); a folder of the user's stops it."
    from tauda.commands import run_demo
    from tauda.outputs import OutputError
    sets = ["schedule.eval_batch_size=4", "log.tensorboard=false", "schedule.log_every=1",
            "schedule.checkpoint_every=1"]
    out = tmp_path/"demo"
    run_demo(out, iterations=3, progress=False, data_root=minicity.root, sets=sets)
    assert (out/"source/checkpoints/iter_000002.pt").is_file()
    (out/"stage2"/"notes.txt").write_text("the user's, written between the runs")
    run_demo(out, iterations=1, progress=False, data_root=minicity.root, sets=sets)
    for method in ("source", "minent", "stage1", "stage2"):
        log = [json.loads(line) for line in (out/method/"log.jsonl").read_text().splitlines()]
        assert [l["iteration"] for l in log] == [1], method  # not the first run's 1, 2, 3 followed by 1
        assert sorted(p.name for p in (out/method/"checkpoints").iterdir()) == ["last.pt"], method
        assert json.loads((out/method/"eval.json").read_text())["iteration"] == 1
    assert (out/"stage2"/"notes.txt").is_file()  # not the demo's: kept
    assert all(r["iteration"] == 1 for r in json.loads((out/"results.json").read_text())["reports"].values())
    capsys.readouterr()
    (out/"minent").rename(out/"kept"); (out/"minent").mkdir(); (out/"minent"/"thesis.tex").write_text("mine")
    with pytest.raises(OutputError, match="minent"):
        run_demo(out, iterations=1, progress=False, data_root=minicity.root, sets=sets)
    assert (out/"minent"/"thesis.tex").read_text() == "mine"  # nothing of the user's gone


def test_pictures_explain_themselves():
    import numpy as np
    import torch
    from tauda.commands import lab, line_styles, predictions_figure, thresholds_figure
    from tauda.labels import CITYSCAPES19, MINICITY10
    labels = torch.randint(0, 10, (2, 8, 16))
    labels[0, 0, 0] = 255
    fig = predictions_figure(torch.rand(2, 3, 8, 16), labels, {"source": labels.clamp(max=9), "stage2": labels*0},
                             MINICITY10, {"source": 35.7, "stage2": 54.7}, "val (300 images)")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [*MINICITY10.names, "ignored (not scored)"]
    colours = [tuple(np.round(h.get_facecolor()[:3], 3)) for h in fig.legends[0].legend_handles[:10]]
    assert colours == [tuple(np.round(c/255, 3)) for c in MINICITY10.palette]
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert titles == ["camera image", "label", "source: mIoU 35.7 on val (300 images)",
                      "stage2: mIoU 54.7 on val (300 images)"]
    log = [{"iteration": i, "thresholds": [0.8 + 0.001*i*k for k in range(10)]} for i in (20, 40)]
    fig = thresholds_figure(log, MINICITY10, 0.8)
    ax = fig.axes[0]
    assert "τ0 = 0.8" in ax.get_title() and "threshold" in ax.get_title()
    tau = [l for l in ax.get_lines() if l.get_label().startswith("τ0")]
    assert len(tau) == 1 and set(tau[0].get_ydata()) == {0.8}
    lines = {l.get_label(): l for l in ax.get_lines()}
    assert list(lines["road"].get_xdata()) == [0, 20, 40] and lines["road"].get_ydata()[0] == 0.8
    assert lines["person"].get_linestyle() != lines["rider"].get_linestyle()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:10] == list(MINICITY10.names)
    for protocol in (MINICITY10, CITYSCAPES19):  # two classes of close colours never share a line style
        styles, colours = line_styles(protocol.palette), lab(protocol.palette)
        close = [(i, j) for i in range(len(styles)) for j in range(i)
                 if np.linalg.norm(colours[i] - colours[j]) < 40]
        assert close and all(styles[i] != styles[j] for i, j in close), protocol.name


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
    (["check-data", "gtav", "/nonexistent"], "unknown dataset layout 'gtav'"),
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
