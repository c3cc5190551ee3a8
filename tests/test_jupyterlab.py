"""Smoke test of the reading experience: JupyterLab starts headless on localhost (a free port, a token), serves the
chapters through its REST API, and runs `index.ipynb` in a kernel session started through the server, cell by cell
over the server's kernel websocket (the way the browser does), skipping the cells nbdev-test skips. Nothing beyond
localhost is contacted; the server's config, data, runtime and settings folders are temporary."""
import datetime
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket
from nbdev.config import get_config
from nbdev.test import nb_test_cells

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/"nbs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    "A running JupyterLab serving nbs/: yields (base URL, token); shut down through its API afterwards."
    tmp = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "IN_TEST": "1", "JUPYTER_CONFIG_DIR": str(tmp/"config"),
           "JUPYTER_RUNTIME_DIR": str(tmp/"runtime"), "JUPYTERLAB_SETTINGS_DIR": str(tmp/"settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp/"workspaces"), "IPYTHONDIR": str(tmp/"ipython"),
           "JUPYTER_PLATFORM_DIRS": "1"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={NBS}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0: cmd.append("--allow-root")    # containers and CI machines
    log = open(tmp/"server.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            assert server.poll() is None, f"JupyterLab exited early:\n{(tmp/'server.log').read_text()[-3000:]}"
            try:
                if requests.get(f"{url}/api/status", headers=auth(token), timeout=2).status_code == 200: break
            except requests.ConnectionError: pass
            assert time.time() < deadline, \
                f"JupyterLab did not answer in 120 s:\n{(tmp/'server.log').read_text()[-3000:]}"
            time.sleep(0.5)
        yield url, token
        assert requests.post(f"{url}/api/shutdown", headers=auth(token), timeout=10).status_code in (200, 202, 204)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.terminate()
            try: server.wait(timeout=10)
            except subprocess.TimeoutExpired: server.kill()
        log.close()


def auth(token) -> dict: return {"Authorization": f"token {token}"}


def test_the_chapters_are_served(lab):
    url, token = lab
    assert requests.get(f"{url}/api/contents", timeout=10).status_code == 403          # the token is required
    listing = requests.get(f"{url}/api/contents", headers=auth(token), timeout=10).json()
    served = {item["name"]: item["type"] for item in listing["content"]}
    chapters = sorted(p.name for p in NBS.glob("*.ipynb"))
    assert len(chapters) >= 8 and all(served.get(name) == "notebook" for name in chapters), served
    for folder in ("api", "assignments"):  # the API appendix and the assignments
        assert served.get(folder) == "directory"
        inside = requests.get(f"{url}/api/contents/{folder}", headers=auth(token), timeout=10).json()
        assert {i["name"] for i in inside["content"]} >= {p.name for p in (NBS/folder).glob("*.ipynb")}
    index = requests.get(f"{url}/api/contents/index.ipynb", headers=auth(token), timeout=10).json()
    assert index["type"] == "notebook"
    assert len(index["content"]["cells"]) == len(json.loads((NBS/"index.ipynb").read_text())["cells"])
    page = requests.get(f"{url}/lab", headers=auth(token), timeout=30)
    assert page.status_code == 200 and "JupyterLab" in page.text


def message(session: str, code: str) -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "session": session,
                       "username": "test", "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}


def execute(ws, session: str, code: str, timeout: float) -> list:
    "Run `code` in the kernel behind `ws`; return its iopub messages. Fails on an error."
    request = message(session, code)
    ws.send(json.dumps(request))
    replies, outputs, idle, deadline = None, [], False, time.time() + timeout
    while replies is None or not idle:
        ws.settimeout(max(1.0, deadline - time.time()))
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]: continue
        kind = msg["header"]["msg_type"]
        if msg.get("channel") == "shell" and kind == "execute_reply": replies = msg["content"]
        elif kind == "status": idle = msg["content"]["execution_state"] == "idle"
        elif kind == "error":
            pytest.fail(f"cell failed in the server's kernel:\n{code}\n" + "\n".join(msg["content"]["traceback"]))
        else: outputs.append(msg)
        assert time.time() < deadline, f"cell took longer than {timeout} s:\n{code}"
    assert replies["status"] == "ok", replies
    return outputs


def test_index_runs_in_a_kernel_started_by_the_server(lab):
    url, token = lab
    created = requests.post(f"{url}/api/sessions", headers=auth(token), timeout=60,
                            json={"path": "index.ipynb", "name": "index.ipynb", "type": "notebook",
                                  "kernel": {"name": "python3"}})
    assert created.status_code == 201, created.text
    session = created.json()
    kernel = session["kernel"]["id"]
    assert kernel in {k["id"] for k in requests.get(f"{url}/api/kernels", headers=auth(token), timeout=10).json()}
    channels = f"ws://127.0.0.1:{url.rsplit(':', 1)[1]}/api/kernels/{kernel}/channels?session_id={session['id']}"
    ws = websocket.create_connection(channels, header=[f"Authorization: token {token}"], timeout=60)
    try:
        client = uuid.uuid4().hex
        out = execute(ws, client, "import os, sys; print(os.getcwd()); print(sys.executable)", 120)
        cwd, exe = "".join(m["content"]["text"] for m in out if m["header"]["msg_type"] == "stream").split()
        assert Path(cwd).resolve() == NBS.resolve() and Path(exe).resolve() == Path(sys.executable).resolve()
        cells = nb_test_cells(NBS/"index.ipynb", skip_flags=get_config(ROOT).tst_flags.split())
        assert len(cells) >= 3
        streams = []
        for cell in cells:
            streams += [m["content"].get("text", "") for m in execute(ws, client, cell.source, 600)
                        if m["header"]["msg_type"] == "stream"]
        assert "mIoU" in "".join(streams)                                   # the results table of the one-minute run
    finally:
        ws.close()
        requests.delete(f"{url}/api/sessions/{session['id']}", headers=auth(token), timeout=30)
    assert kernel not in {k["id"] for k in requests.get(f"{url}/api/kernels", headers=auth(token), timeout=10).json()}
