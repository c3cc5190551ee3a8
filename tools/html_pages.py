"""The offline HTML pages of the chapters (`bash run.sh html`): one page per notebook, from the notebook as stored
(nothing is executed, nothing is downloaded), figures embedded.

    python tools/html_pages.py --out _html [NOTEBOOK ...]      # NOTEBOOK relative to nbs/ (default: every chapter)

A page shows the chapter as a reader wants it: no `In [ ]:` prompts, no nbdev directives (`#| export`, …; a cell
that held nothing else is left out), links between chapters pointing at their pages, the list of every chapter
in reading order (the order of index.ipynb's links) beside the text, and links to the previous and next chapter
above and below it.
"""
import argparse
import html
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

NBS = Path(__file__).resolve().parent.parent/"nbs"
DIRECTIVE = re.compile(r"^[ \t]*#\s*\|.*(?:\n|$)", re.M)   # nbdev's `#| export`, `#| default_exp …`, `#| slow`, …
STYLE = """<style>
.tauda-chapters { position: fixed; top: 0; left: 0; bottom: 0; width: 15rem; overflow-y: auto; padding: 1rem;
  font: 13px/1.45 system-ui, sans-serif; background: #f7f7f8; border-right: 1px solid #ddd; box-sizing: border-box; }
.tauda-chapters h2 { font-size: 13px; margin: 0.8rem 0 0.3rem; color: #555; }
.tauda-chapters ol { list-style: none; margin: 0; padding: 0; }
.tauda-chapters a { color: #1a4d8f; text-decoration: none; } .tauda-chapters a:hover { text-decoration: underline; }
.tauda-chapters .current { font-weight: 600; color: #000; }
body { margin-left: 16rem !important; }
.tauda-pager { display: flex; justify-content: space-between; gap: 1rem; padding: 0.6rem 1rem;
  font: 14px system-ui, sans-serif; }
.tauda-pager a { color: #1a4d8f; text-decoration: none; }
@media (max-width: 60rem) { .tauda-chapters { position: static; width: auto; border: 0; }
  body { margin-left: 0 !important; } }
</style>"""


def title(notebook: Path) -> str:
    "The chapter's H1 title, as plain text."
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "): return re.sub(r"[`*]", "", line[2:]).strip()
    return notebook.stem


GROUPS = {".": "The story", "api": "API appendix", "assignments": "Course assignments"}  # folder -> heading


def reading_order(chapters: list) -> list:
    "`chapters` (relative to nbs/) folder by folder (`GROUPS`), each in the order of index.ipynb's links, then by name."
    index = NBS/"index.ipynb"
    linked = re.findall(r"\]\(([\w./-]+\.ipynb)", index.read_text()) if index.is_file() else []
    order = [c for c in dict.fromkeys(["index.ipynb", *linked]) if c in chapters]
    order += sorted(c for c in chapters if c not in order)
    folders = list(GROUPS)
    return sorted(order, key=lambda c: folders.index(str(Path(c).parent)) if str(Path(c).parent) in folders else 99)


def for_reading(notebook: Path):
    "The notebook without nbdev's directives (a code cell that held nothing else, and has no output, is left out)."
    nb = nbformat.read(notebook, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = DIRECTIVE.sub("", cell.source).strip("\n")
            if not cell.source.strip() and not cell.get("outputs"): continue
        cells.append(cell)
    nb.cells = cells
    return nb


def link(page: str, to: str) -> str:
    "The relative link from the page of chapter `page` to that of chapter `to` (both relative to nbs/)."
    return os.path.relpath(Path(to).with_suffix(".html"), Path(page).parent).replace(os.sep, "/")


def navigation(page: str, order: list, titles: dict) -> tuple:
    "(the chapter list, the previous/next bar) of the page of `page`."
    side = ['<nav class="tauda-chapters" aria-label="chapters">']
    for folder, name in [*GROUPS.items(), *[(f, f) for f in sorted({str(Path(c).parent) for c in order} - set(GROUPS))]]:
        members = [c for c in order if str(Path(c).parent) == folder]
        if not members: continue
        side.append(f"<h2>{name}</h2><ol>")
        for c in members:
            current = ' class="current" aria-current="page"' if c == page else ""
            side.append(f'<li><a href="{link(page, c)}"{current}>{html.escape(titles[c])}</a></li>')
        side.append("</ol>")
    side.append("</nav>")
    k = order.index(page)
    before = f'<a rel="prev" href="{link(page, order[k - 1])}">← previous: {html.escape(titles[order[k - 1]])}</a>' \
        if k > 0 else "<span></span>"
    after = f'<a rel="next" href="{link(page, order[k + 1])}">next: {html.escape(titles[order[k + 1]])} →</a>' \
        if k + 1 < len(order) else "<span></span>"
    return "\n".join(side), f'<div class="tauda-pager">{before}{after}</div>'


def write_pages(out: Path, chapters: list) -> list:
    "Write one page per chapter (paths relative to nbs/) under `out`; return the pages."
    order = reading_order(chapters)
    titles = {c: title(NBS/c) for c in order}
    exporter = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True)
    pages = []
    for chapter in order:
        body, _ = exporter.from_notebook_node(for_reading(NBS/chapter))
        body = re.sub(r'href="(?!https?:)([^"#]*?)\.ipynb(#[^"]*)?"', r'href="\1.html\2"', body)  # links to chapters
        side, pager = navigation(chapter, order, titles)
        body = body.replace("</head>", STYLE + "\n</head>", 1)
        body = re.sub(r"(<body[^>]*>)", lambda m: f"{m.group(1)}\n{side}\n{pager}", body, count=1)
        body = body.replace("</body>", f"{pager}\n</body>", 1)
        page = out/Path(chapter).with_suffix(".html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(body, encoding="utf-8")
        pages.append(page)
    return pages


def claim_output(out: Path):
    "Make `out` the pages' folder: new, empty or an earlier build's (its .tauda-output.json says so); else exit 2."
    marker = out/".tauda-output.json"
    def refuse(why):
        print(f"run.sh html: error: --out {out}: {why}", file=sys.stderr)
        sys.exit(2)
    if out.is_symlink() and not out.exists(): refuse(f"a dangling symbolic link (to {os.readlink(out)})")
    if out.exists() and not out.is_dir(): refuse("is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        try: own = json.loads(marker.read_text()).get("command") == "html"
        except (OSError, ValueError, AttributeError):  # built before folders carried a marker: pages only
            own = not marker.exists() and all(p.is_dir() or p.suffix == ".html" for p in out.rglob("*"))
        if not own:
            refuse("not empty and not pages of run.sh html (no .tauda-output.json of html); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out/f".tauda-output.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps({"tauda": 1, "command": "html", "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "files": [], "folders": [], "outputs": []}, indent=1))
    os.replace(tmp, marker)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="_html", help="output folder (default: _html)")
    ap.add_argument("notebooks", nargs="*", help="notebooks relative to nbs/ (default: every chapter)")
    args = ap.parse_args()
    chapters = args.notebooks or [str(p.relative_to(NBS)) for folder in ("", "api", "assignments")
                                  for p in sorted((NBS/folder).glob("*.ipynb"))]
    claim_output(Path(args.out))
    pages = write_pages(Path(args.out), chapters)
    print(f"wrote {len(pages)} pages to {args.out}/ (start at {args.out}/index.html)")


if __name__ == "__main__":
    main()
