"""`bash run.sh html` renders every chapter (nbs/*.ipynb, the API appendix nbs/api/*.ipynb, nbs/assignments/*.ipynb) to
one offline HTML page, with no network access: every Python process it starts runs with sockets to anything but
localhost refused and recorded. A page reads as a chapter, not as a notebook: no `In [ ]:` prompts, no nbdev
directives (`#| export`), the list of every chapter, and links to the previous and the next one."""
import html
import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p.relative_to(ROOT/"nbs") for folder in ("", "api", "assignments")
                  for p in (ROOT/"nbs"/folder).glob("*.ipynb"))

OFFLINE = '''
import os, socket
_LOG, _LOCAL = os.environ["TAUDA_OFFLINE_LOG"], {None, "localhost", "127.0.0.1", "::1", b"localhost"}
with open(_LOG + ".started", "a") as f: f.write(f"{os.getpid()}\\n")
def _check(host):
    if host not in _LOCAL:
        with open(_LOG, "a") as f: f.write(f"{host}\\n")
        raise OSError(f"network access refused by the offline test: {host}")
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
def connect(self, address):
    if isinstance(address, tuple): _check(address[0])
    return _connect(self, address)
def connect_ex(self, address):
    if isinstance(address, tuple): _check(address[0])
    return _connect_ex(self, address)
def getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _getaddrinfo(host, *args, **kwargs)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def title(notebook: Path) -> str:
    "The chapter's H1 title (its first markdown line starting with '# ')."
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "): return line[2:].strip()
    raise AssertionError(f"{notebook} has no title")


def test_html_pages_of_every_chapter_offline(tmp_path):
    (tmp_path/"offline").mkdir()
    (tmp_path/"offline"/"sitecustomize.py").write_text(OFFLINE)
    log = tmp_path/"network.log"
    path = os.pathsep.join(filter(None, [str(tmp_path/"offline"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "TAUDA_OFFLINE_LOG": str(log)}
    site = tmp_path/"site"
    result = subprocess.run(["bash", str(ROOT/"run.sh"), "html", "--out", str(site)], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(f"{log}.started").is_file()                                  # the network guard was in place
    assert not log.exists(), f"network access attempted: {log.read_text()}"
    pages = sorted(p.relative_to(site) for p in site.rglob("*.html"))
    assert pages == [c.with_suffix(".html") for c in CHAPTERS]               # one page per chapter, nothing else
    assert len(CHAPTERS) >= 12 and {"api", "assignments"} <= {c.parent.name for c in CHAPTERS}
    for chapter in CHAPTERS:
        page = (site/chapter.with_suffix(".html")).read_text()
        text = html.unescape(re.sub(r"<[^>]+>", "", page))
        assert re.sub(r"[`*]", "", title(ROOT/"nbs"/chapter)) in text, chapter
        local = [h for h in re.findall(r'href="([^"]+)"', page)
                 if not h.startswith(("http:", "https:", "#", "mailto:"))]
        assert not [h for h in local if ".ipynb" in h], f"{chapter}: links to notebooks left: {local}"
        for link in local:  # links to chapters resolve to their pages (a chapter still being written: no page yet)
            target = (site/chapter).parent/link.split("#")[0]
            source = (ROOT/"nbs"/chapter).parent/Path(link.split("#")[0]).with_suffix(".ipynb")
            assert target.is_file() or (target.suffix == ".html" and not source.exists()), \
                f"{chapter}: broken link {link}"
    check_reading(site)
    index = (site/"index.html").read_text()
    assert "data:image/png;base64" in index  # figures are embedded: the pages stand alone
    linked = set(re.findall(r'href="([^"#:]+\.html)', index))
    chapters = {str(c.with_suffix(".html")) for c in CHAPTERS if c.name != "index.ipynb"}
    assert linked >= chapters, f"index.html misses chapters: {sorted(chapters - linked)}"


def check_reading(site: Path):
    "Every page: no prompts, no directives, every chapter linked from its chapter list, previous and next in order."
    order = []
    for chapter in CHAPTERS:
        page = (site/chapter.with_suffix(".html")).read_text()
        text = html.unescape(re.sub(r"<style.*?</style>|<script.*?</script>|<[^>]+>", "", page, flags=re.S))
        assert not re.search(r"(In|Out)\s*\[\s*\d*\s*\]:", text), f"{chapter}: prompts shown"
        assert not re.search(r"^\s*#\s*\|", text, re.M), f"{chapter}: nbdev directives shown"
        nav = re.search(r'<nav class="tauda-chapters".*?</nav>', page, re.S).group(0)
        linked = [(site/chapter).parent/h for h in re.findall(r'href="([^"]+)"', nav)]
        assert sorted(p.resolve() for p in linked) == sorted((site/c.with_suffix(".html")).resolve() for c in CHAPTERS)
        if not order: order = [p.resolve() for p in linked]  # the reading order, the same on every page
        assert [p.resolve() for p in linked] == order, chapter
        here = order.index((site/chapter.with_suffix(".html")).resolve())
        for rel, k in (("prev", here - 1), ("next", here + 1)):
            found = re.findall(rf'rel="{rel}" href="([^"]+)"', page)
            if 0 <= k < len(order): assert {((site/chapter).parent/h).resolve() for h in found} == {order[k]}, chapter
            else: assert not found, chapter
    assert order[0] == (site/"index.html").resolve()


def test_pages_go_only_into_a_new_folder_or_an_earlier_build(tmp_path):
    "A folder holding a user's file is refused (status 2, one line) and left as it was; an earlier build is rebuilt."
    build = lambda out: subprocess.run(["bash", "run.sh", "html", "--out", str(out), "index.ipynb"], cwd=ROOT,
                                       capture_output=True, text=True)
    (tmp_path/"mine").mkdir(); (tmp_path/"mine"/"notes.txt").write_text("the user's")
    refused = build(tmp_path/"mine")
    assert refused.returncode == 2 and "not empty" in refused.stderr and "Traceback" not in refused.stderr
    assert [p.name for p in (tmp_path/"mine").iterdir()] == ["notes.txt"]
    assert build(tmp_path/"pages").returncode == 0 and build(tmp_path/"pages").returncode == 0
    assert (tmp_path/"pages"/"index.html").is_file()
