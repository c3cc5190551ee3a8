#!/usr/bin/env bash
# tauda's two entry points for a fresh clone. Each sets up .venv once (reused afterwards), then:
#   bash run.sh demo   # trains source-only and the adaptation methods on the embedded mini benchmark
#   bash run.sh test   # nbdev sync checks, then pytest over tests/ and every notebook
#   bash run.sh html   # offline HTML pages of the chapters in _html/
# Extra arguments go to `tauda demo` or to pytest. PYTHON picks the interpreter (default: python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
VENV=.venv
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    echo "installing $TORCH_SPEC ..."
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet $TORCH_SPEC
  fi
  local stamp="$VENV/.tauda-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "installing tauda (editable) with its dev tools ..."
    "$VENV/bin/pip" install --quiet -e ".[dev]"
    touch "$stamp"
  fi
}

# Fails if running `cmd` changes nbs/ or tauda/ (the notebooks and the package must be in sync).
unchanged_by() {
  local before after
  before=$(git status --porcelain -- nbs tauda; git diff -- nbs tauda | sha1sum)
  "$@" >/dev/null
  after=$(git status --porcelain -- nbs tauda; git diff -- nbs tauda | sha1sum)
  if [ "$before" != "$after" ]; then
    echo "SYNC CHECK FAILED: '$*' changed files (git diff --stat below)." >&2
    git diff --stat -- nbs tauda >&2
    echo "Edit nbs/*.ipynb, then run nbdev-clean and nbdev-export, and commit notebooks and tauda/ together." >&2
    return 1
  fi
}

case "${1:-}" in
  demo)
    shift; setup
    "$VENV/bin/tauda" demo "$@"
    ;;
  test)
    shift; setup
    export PATH="$PWD/$VENV/bin:$PATH"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      echo "sync check: nbdev-clean leaves nbs/ unchanged";   unchanged_by nbdev-clean
      echo "sync check: nbdev-export leaves tauda/ unchanged"; unchanged_by nbdev-export
    fi
    python -m pytest "$@"
    ;;
  html)
    # Offline HTML of the chapters as stored (outputs included, nothing executed): one page per notebook of nbs/ and
    # nbs/assignments/, links between chapters pointing at the pages; index.html lists them in reading order.
    # bash run.sh html [--out DIR] [NOTEBOOK ...]   (default: _html/ and every chapter; NOTEBOOK relative to nbs/)
    shift
    [ -x "$VENV/bin/jupyter-nbconvert" ] || setup
    out=_html
    if [ "${1:-}" = "--out" ]; then out=$2; shift 2; fi
    # the pages go only into a folder that is new, empty or an earlier build's (its .tauda-output.json says so)
    "$VENV/bin/python" - "$out" <<'PY' || exit 2
import json, os, sys, time
from pathlib import Path
out = Path(sys.argv[1]); marker = out/".tauda-output.json"
def refuse(why): sys.exit(f"run.sh html: error: --out {out}: {why}")
if out.is_symlink() and not out.exists(): refuse(f"a dangling symbolic link (to {os.readlink(out)})")
if out.exists() and not out.is_dir(): refuse("is a file, not a folder")
if out.is_dir() and any(out.iterdir()):
    try: own = json.loads(marker.read_text()).get("command") == "html"
    except (OSError, ValueError, AttributeError):  # built before folders carried a marker: pages only
        own = not marker.exists() and all(p.is_dir() or p.suffix == ".html" for p in out.rglob("*"))
    if not own: refuse("not empty and not pages of run.sh html (no .tauda-output.json of html); choose another --out")
out.mkdir(parents=True, exist_ok=True)
tmp = out/f".tauda-output.json.tmp{os.getpid()}"
tmp.write_text(json.dumps({"tauda": 1, "command": "html", "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "files": [], "folders": [], "outputs": []}, indent=1))
os.replace(tmp, marker)
PY
    if [ $# -eq 0 ]; then
      set -- $(cd nbs && ls *.ipynb api/*.ipynb assignments/*.ipynb 2>/dev/null)
    fi
    for dir in $(for nb in "$@"; do dirname "$nb"; done | sort -u); do   # one nbconvert per folder
      pages=()
      for nb in "$@"; do [ "$(dirname "$nb")" = "$dir" ] && pages+=("nbs/$nb"); done
      "$VENV/bin/jupyter-nbconvert" --to html --log-level=ERROR --output-dir "$out/$dir" "${pages[@]}"
    done
    # links to other chapters (NAME.ipynb, NAME.ipynb#anchor) point at their pages
    "$VENV/bin/python" - "$out" "$@" <<'PY'
import re, sys
from pathlib import Path
out, notebooks = Path(sys.argv[1]), sys.argv[2:]
for nb in notebooks:
    page = out/Path(nb).with_suffix(".html")
    page.write_text(re.sub(r'href="(?!https?:)([^"#]*?)\.ipynb(#[^"]*)?"', r'href="\1.html\2"', page.read_text()))
print(f"wrote {len(notebooks)} pages to {out}/ (start at {out}/index.html)")
PY
    ;;
  *)
    echo "usage: bash run.sh demo [tauda demo options] | bash run.sh test [pytest options] | bash run.sh html [--out DIR] [NOTEBOOK ...]" >&2
    exit 2
    ;;
esac
