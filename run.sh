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
    # Offline HTML of the chapters as stored (outputs included, nothing executed): one page per notebook of nbs/,
    # nbs/api/ and nbs/assignments/, with the chapter list, previous/next links, no prompts and no nbdev directives.
    # bash run.sh html [--out DIR] [NOTEBOOK ...]   (default: _html/ and every chapter; NOTEBOOK relative to nbs/)
    shift
    [ -x "$VENV/bin/jupyter-nbconvert" ] || setup
    "$VENV/bin/python" tools/html_pages.py "$@"
    ;;
  *)
    echo "usage: bash run.sh demo [tauda demo options] | bash run.sh test [pytest options] | bash run.sh html [--out DIR] [NOTEBOOK ...]" >&2
    exit 2
    ;;
esac
