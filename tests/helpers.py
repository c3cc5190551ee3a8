"""Small helpers that several test modules use (fixtures are in conftest.py): command-line items, run logs, and the
one line a command prints for a user error."""
import json
from pathlib import Path


def sets(*items) -> list:
    "`--set ITEM` for each item: `sets('a=1', 'b=2') == ['--set', 'a=1', '--set', 'b=2']`."
    return [arg for item in items for arg in ("--set", item)]


def read_log(run: Path) -> list:
    "The records of a run directory's `log.jsonl`, one dict per logged iteration."
    return [json.loads(line) for line in (Path(run)/"log.jsonl").read_text().splitlines()]


def error_line(err: str, command: str) -> str:
    "The one line a command printed on stderr for a user-facing error (`tauda COMMAND: error: …`, no traceback)."
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"tauda {command}: error: "), err[-2000:]
    assert "Traceback" not in err
    return lines[0]
