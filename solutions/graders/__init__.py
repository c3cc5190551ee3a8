"""The hidden graders of the course assignments (instructors only; the hand-out leaves solutions/ out).

`a1`, `a2`, `a3`: unit-level checks of a submission's module (`CHECKS`, each `check(sub)` raising AssertionError on a
wrong behaviour), a check of the graded answers against tolerances (`check_answers`) and a few iterations of training
through the command line (`check_training`). `a4`: the honesty checks of a leaderboard record. `mutants`: plausible
wrong implementations that the checks must reject. Run them through pytest (tests/test_assignments.py):

    TAUDA_SUBMISSION=path/to/submission .venv/bin/python -m pytest tests/test_assignments.py -m autograder
"""
