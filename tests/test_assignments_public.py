"""The public checks of the course assignments (`assignments/check.py`), as students run them: they pass on the
reference solutions (where `solutions/` is part of the copy) and, on whatever `assignments/` holds, report each check
as passed, failed or still to do without crashing. They hold no reference implementation: the hand-out test of the
instructor's suite (tests/test_assignments.py) builds the student copy and checks it."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ("a1", "a2", "a3", "a4")


def public_check():
    spec = importlib.util.spec_from_file_location("public_check", ROOT/"assignments"/"check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_public_checks_pass_on_the_reference_solutions(assignment):
    if not (ROOT/"solutions").is_dir(): pytest.skip("solutions/ is not part of this copy")
    results = public_check().check(assignment, ROOT/"solutions", verbose=False)
    assert set(results.values()) == {"pass"}, results


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_public_checks_report_on_the_work_in_progress(assignment, capsys):
    check = public_check()
    results = check.check(assignment, ROOT/"assignments")
    printed = capsys.readouterr().out
    assert list(results) == [title for title, _ in check.CHECKS[assignment]], printed   # the module imports
    assert set(results.values()) <= {"pass", "to do", "fail"} and "Traceback" not in printed
