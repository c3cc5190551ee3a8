"""The instructor's suite of the course assignments: the hidden graders of `solutions/graders/`, their mutation check,
the student hand-out. The whole module is skipped where `solutions/` is absent (in the hand-out itself).

Grading (marker `autograder`). A submission is a folder holding the student's `a1_thresholds.py`, `a2_maxsquare.py`,
`a3_cutmix.py` and, for assignment 4, their entry module(s) with the `record.json` that `tauda leaderboard` wrote;
`TAUDA_SUBMISSION` points at it (a relative path is taken from the repository root; default `solutions/`):

    TAUDA_SUBMISSION=path/to/submission .venv/bin/python -m pytest tests/test_assignments.py -m autograder [-k a1]

With the default, CI grades the reference solutions (every check must pass), and assignment 4 grades an honest entry
that the suite runs itself on a tiny protocol (two seeds, two iterations, the suite's small minicity).

Not graders: `test_*_mutants_are_rejected` applies every plausible wrong implementation of `solutions/graders/
mutants.py` to the reference and requires the graders to reject each while the reference passes; the hand-out test
builds the student copy and requires it to hold no reference code; the interface test keeps starters and solutions
in step.
"""
import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if not (ROOT/"solutions"/"graders").is_dir():
    pytest.skip("the instructor's suite: solutions/ is not part of this copy", allow_module_level=True)
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

from solutions import handout                                  # noqa: E402
from solutions.graders import a1, a2, a3, a4, common, mutants  # noqa: E402

SOLUTIONS, STARTERS = ROOT/"solutions", ROOT/"assignments"
SUBMISSION = (ROOT/(os.environ.get("TAUDA_SUBMISSION") or SOLUTIONS)).resolve()
GRADERS = {"a1": a1, "a2": a2, "a3": a3}
autograder = pytest.mark.autograder
name_of = lambda f: f.__name__


@cache
def submission(assignment: str) -> common.Submission:
    return common.load_submission(SUBMISSION, mutants.MODULES[assignment])


@autograder
@pytest.mark.parametrize("check", a1.CHECKS + [a1.check_answers], ids=name_of)
def test_a1(check): check(submission("a1"))


@autograder
@pytest.mark.parametrize("check", a2.CHECKS + [a2.check_answers], ids=name_of)
def test_a2(check): check(submission("a2"))


@autograder
@pytest.mark.parametrize("check", a3.CHECKS + [a3.check_answers], ids=name_of)
def test_a3(check): check(submission("a3"))


@autograder
def test_a1_trains_through_the_cli(source_run, tmp_path):
    a1.check_training(submission("a1"), SUBMISSION, source_run, tmp_path/"run")


@autograder
def test_a2_trains_through_the_cli(source_run, tmp_path):
    a2.check_training(submission("a2"), SUBMISSION, source_run, tmp_path/"run")


@autograder
def test_a3_trains_through_the_cli(stage1_run, tmp_path):
    a3.check_training(submission("a3"), SUBMISSION, stage1_run, tmp_path/"run")


# ---------------------------------------------------------------------------------------------------------------------
# Assignment 4: the honesty of a leaderboard record
def leaderboard(entry_folder: Path, out: Path, minicity, *args) -> Path:
    "`tauda leaderboard fixmatch …` on the tiny protocol with the entry module of `entry_folder`; its record."
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(entry_folder), str(ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "tauda.cli", "leaderboard", "fixmatch", "--import", "a4_entry", "--set",
               "method.target.loss=fixmatch", "--seeds", "0", "1", "--iterations", "2", "--data-root",
               str(minicity.root), "--out", str(out), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=out.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| fixmatch | 1 | 0,1 |" in result.stdout and "| trial |" in result.stdout, result.stdout
    return out/"fixmatch"/"record.json"


@pytest.fixture(scope="session")
def a4_honest(minicity, tmp_path_factory):
    "An honest entry on the tiny protocol: `(record, folder, protocol, runs root, data root)`."
    folder = tmp_path_factory.mktemp("a4")/"submission"
    folder.mkdir()
    shutil.copy(SOLUTIONS/"a4_entry.py", folder/"a4_entry.py")
    record = leaderboard(folder, folder.parent/"board", minicity)
    shutil.copy(record, folder/"record.json")
    protocol = a4.Protocol(seeds=(0, 1), iterations=2, minicity=minicity.spec.fingerprint())
    return a4.read(folder), folder, protocol, folder.parent/"grader-runs", minicity.root


@pytest.fixture(scope="session")
def a4_submission(request, tmp_path_factory):
    "The submission's record, or (grading the reference) the honest tiny entry."
    if (SUBMISSION/"record.json").is_file():
        return a4.read(SUBMISSION), SUBMISSION, a4.Protocol(), tmp_path_factory.mktemp("grader-runs"), ""
    if SUBMISSION != SOLUTIONS: pytest.skip(f"no record.json in {SUBMISSION}: no entry for assignment 4")
    return request.getfixturevalue("a4_honest")


@autograder
@pytest.mark.parametrize("check", a4.CHECKS, ids=name_of)
def test_a4(check, a4_submission):
    record, folder, protocol, _, _ = a4_submission
    check(record, folder, protocol)


@autograder
def test_a4_entry_trained_again(a4_submission):
    record, folder, protocol, runs, data_root = a4_submission
    try: a4.check_rerun(record, folder, protocol, runs, data_root)
    except a4.CannotRerun as e: pytest.skip(str(e))


# ---------------------------------------------------------------------------------------------------------------------
# The graders reject plausible wrong implementations; the reference passes
def rejection(checks, *args):
    "The first check that rejects (`'check: error'`), or None if every check passes."
    for check in checks:
        try: check(*args)
        except Exception as e: return f"{check.__name__}: {type(e).__name__}: {str(e)[:100]}"
    return None


@pytest.mark.parametrize("assignment", sorted(GRADERS))
def test_mutants_are_rejected(assignment):
    checks = GRADERS[assignment].CHECKS
    assert rejection(checks, mutants.reference(assignment)) is None, "the reference solution must pass"
    caught = {m.name: rejection(checks, mutants.apply(assignment, m)) for m in mutants.MUTANTS[assignment]}
    print("\n".join(f"{assignment} mutant {name!r}: rejected by {why}" for name, why in caught.items()))
    assert len(caught) >= 8 and all(caught.values()), [name for name, why in caught.items() if not why]


def test_a4_dishonest_records_are_rejected(a4_honest, tmp_path):
    record, folder, protocol, runs, data_root = a4_honest
    def check_rerun(*args): a4.check_rerun(*args, runs, data_root)
    checks = a4.CHECKS + [check_rerun]
    assert rejection(checks, record, folder, protocol) is None, "the honest record must pass"
    caught = {}
    for k, mutant in enumerate(mutants.RECORD_MUTANTS):
        copy = tmp_path/f"m{k}"
        shutil.copytree(folder, copy)
        caught[mutant.name] = rejection(checks, mutants.mutate(record, copy, mutant), copy, protocol)
    print("\n".join(f"a4 mutant {name!r}: rejected by {why}" for name, why in caught.items()))
    assert len(caught) >= 8 and all(caught.values()), [name for name, why in caught.items() if not why]


def test_an_entry_may_change_method_and_views_fields_only(minicity, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "tauda.cli", "leaderboard", "lr", "--set", "optim.lr=0.1",
                             "--data-root", str(minicity.root), "--out", str(tmp_path)], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 2 and "changes method.* and views.* fields only" in result.stderr, result.stderr
    assert not (tmp_path/"lr").exists()


# ---------------------------------------------------------------------------------------------------------------------
# The hand-out
def test_the_handout_holds_no_reference_code(tmp_path):
    out = tmp_path/"handout"
    result = subprocess.run([sys.executable, "solutions/handout.py", str(out)], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (out/"solutions").exists() and not (out/"tests"/"test_assignments.py").exists()
    for name in ("assignments/check.py", "assignments/a4_entry.py", "nbs/assignments/a4_open.ipynb", "tauda/ufl.py",
                 "tests/test_assignments_public.py", "README.md"):
        assert (out/name).is_file(), name
    assert handout.leaks(out) == []
    # a new student's copy: the public checks run there and say what is left to do
    env = {**os.environ, "PYTHONPATH": str(out)}
    result = subprocess.run([sys.executable, "assignments/check.py", "a1", "a2", "a3", "a4"], cwd=out,
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.stdout.count("to do") >= 10 and "✗" not in result.stdout, result.stdout
    # the check finds reference code wherever it is put
    shutil.copy(SOLUTIONS/"a2_maxsquare.py", out/"assignments"/"a2_maxsquare.py")
    grader = (SOLUTIONS/"graders"/"a2.py").read_text()
    naive = grader[grader.index("def naive_image_wise"):grader.index("def random_logits")]
    notebook = out/"nbs"/"assignments"/"a1_thresholds.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"].append({"cell_type": "code", "id": "pasted", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": naive.splitlines(keepends=True)})
    notebook.write_text(json.dumps(nb))
    found = handout.leaks(out)
    assert any(f.startswith("assignments/a2_maxsquare.py: ") and "maxsquare_loss" in f for f in found), found
    assert any("defines maxsquare_map" in f for f in found), found
    assert any(f.startswith("nbs/assignments/a1_thresholds.ipynb") and "naive_image_wise" in f for f in found), found


# ---------------------------------------------------------------------------------------------------------------------
# Starters and solutions
def interface(path: Path) -> dict:
    "Each registered entry of a module (decorator → class name and its methods' parameters) and its ANSWERS keys."
    tree, out = ast.parse(path.read_text()), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.decorator_list:
            methods = [(f.name, ast.unparse(f.args)) for f in node.body if isinstance(f, ast.FunctionDef)]
            out[tuple(ast.unparse(d) for d in node.decorator_list)] = (node.name, methods)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ANSWERS" for t in node.targets):
            out["ANSWERS"] = [k.value for k in node.value.keys]
    return out


@pytest.mark.parametrize("module", sorted(mutants.MODULES.values()))
def test_starter_and_solution_have_the_same_interface(module):
    assert interface(STARTERS/f"{module}.py") == interface(SOLUTIONS/f"{module}.py")


@pytest.mark.parametrize("assignment", ["a1", "a2", "a3", "a4"])
def test_the_starters_lack_only_the_implementation(assignment):
    spec = importlib.util.spec_from_file_location("public_check", STARTERS/"check.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    results = check.check(assignment, STARTERS, verbose=False)
    first, *rest = results.values()
    assert first == "pass" and set(rest) == {"to do"}, results   # registered; nothing else written yet
