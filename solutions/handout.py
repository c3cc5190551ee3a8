"""Build the student hand-out: the repository without `solutions/` and without the instructor's tests.

    python solutions/handout.py OUT          (OUT: a folder that does not exist yet, or an empty one)

It copies the files git tracks (and the untracked ones git does not ignore) except `EXCLUDED`, then checks the copy
with `leaks`: if any file of the hand-out holds code of a reference implementation, the copy is removed and the
command fails, naming the file and the function.
"""
import argparse
import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCLUDED = ("solutions/", "tests/test_assignments.py")   # the reference solutions, the hidden graders, their tests
PUBLIC = ("tauda", "assignments")          # public code: a line of a reference that also appears here reveals nothing
TEXT = (".py", ".ipynb", ".md", ".txt", ".json", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".html", ".ini")
IMPORTS_SOLUTIONS = re.compile(r"^\s*(from|import)\s+solutions\b|spec_from_file_location\([^)]*solutions", re.M)


def files(root=ROOT) -> list:
    "The repository's files (tracked, or untracked and not ignored) that go into the hand-out, relative to `root`."
    listing = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                             capture_output=True, check=True).stdout.decode()
    return sorted(n for n in set(listing.split("\0")) if n and not n.startswith(EXCLUDED) and (Path(root)/n).is_file())


def _normal(line: str) -> str:
    return " ".join(line.split("#", 1)[0].split())


def function_lines(path: Path) -> dict:
    "`{'file:function (line n)': [code lines of its body]}` for each function of the Python file `path` (no comments)."
    source = path.read_text()
    lines, out = source.splitlines(), {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
        body = node.body[1:] if ast.get_docstring(node) is not None else node.body
        if body:
            code = (_normal(line) for line in lines[body[0].lineno - 1:node.end_lineno])
            out[f"{path.relative_to(ROOT)}:{node.name} (line {node.lineno})"] = [l for l in code if len(l) >= 25]
    return out


GRADER_REFERENCES = re.compile(r":(naive_\w*|expected_\w*|coverage|tail) \(")   # the graders' own implementations


def reference_code(root=ROOT) -> dict:
    """The lines of every reference implementation — each function of the reference solutions (`solutions/a*.py`),
    and the graders' naive references and expected answers — that no public module (tauda, the starters) holds."""
    public = {_normal(line) for folder in PUBLIC for p in (Path(root)/folder).rglob("*.py")
              for line in p.read_text().splitlines()}
    functions = {}
    for path in sorted((Path(root)/"solutions").glob("a*.py")): functions.update(function_lines(path))
    for path in sorted((Path(root)/"solutions"/"graders").glob("a*.py")):
        functions.update({k: v for k, v in function_lines(path).items() if GRADER_REFERENCES.search(k)})
    return {name: kept for name, lines in functions.items() if (kept := [l for l in lines if l not in public])}


def reference_names(root=ROOT) -> set:
    "Functions the reference solutions define at the top level and no public module defines (`class_quantile`, …)."
    defined = lambda p: {n.name for n in ast.parse(p.read_text()).body if isinstance(n, ast.FunctionDef)}
    public = {name for folder in PUBLIC for p in (Path(root)/folder).rglob("*.py") for name in defined(p)}
    return {name for p in (Path(root)/"solutions").glob("a*.py") for name in defined(p)} - public


def text_of(path: Path) -> str:
    "What a reader of `path` sees: a notebook's cell sources and text outputs, any other file as it is."
    text = path.read_text(errors="ignore")
    if path.suffix != ".ipynb": return text
    parts = []
    for cell in json.loads(text).get("cells", []):
        parts.append("".join(cell.get("source", "")))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def leaks(folder, root=ROOT) -> list:
    """What of the reference implementations a copy in `folder` gives away: a file holding two lines of one function of
    `solutions/`, defining a function that only the reference solutions define, or importing from `solutions`."""
    references, found = reference_code(root), []
    defines = re.compile(r"\bdef\s+(" + "|".join(sorted(reference_names(root))) + r")\s*\(")
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix in TEXT):
        text = text_of(path)
        have = {_normal(line) for line in text.splitlines()}
        for name, lines in references.items():
            hits = [line for line in lines if line in have]
            if len(hits) >= 2:
                found.append(f"{path.relative_to(folder)}: {len(hits)} line(s) of {name}, e.g. {hits[0]!r}")
        if (match := defines.search(text)):
            found.append(f"{path.relative_to(folder)}: defines {match.group(1)}, a function of the reference solutions")
        if path.suffix in (".py", ".ipynb") and IMPORTS_SOLUTIONS.search(text):
            found.append(f"{path.relative_to(folder)}: imports from solutions/")
    return found


def build(out, root=ROOT) -> list:
    "Copy the hand-out into `out` and check it; the files copied (relative paths)."
    out = Path(out)
    if out.exists() and any(out.iterdir()): raise SystemExit(f"{out} is not empty: give a new or an empty folder")
    names = files(root)
    for name in names:
        (out/name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(root)/name, out/name)
    found = leaks(out, root)
    if found:
        shutil.rmtree(out)
        raise SystemExit("the hand-out would give reference code away (removed):\n  " + "\n  ".join(found))
    return names


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the folder to write the hand-out into (new or empty)")
    args = p.parse_args(argv)
    names = build(args.out)
    print(f"hand-out: {len(names)} files in {Path(args.out).resolve()}; no reference code found in them "
          f"({len(reference_code())} reference functions checked); left out: {', '.join(EXCLUDED)}")


if __name__ == "__main__":
    sys.exit(main())
