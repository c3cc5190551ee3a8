"""`python tests/fault_runner.py ARGS…` runs `tauda ARGS…` with a fault injected, chosen by environment variables
(the fault-injection tests of tests/test_faults.py start it as a subprocess, then kill it or read its exit status):

TAUDA_FAULT_HANG_SAVE=NAME:K   the K-th checkpoint save to a file named NAME writes the first half of the checkpoint
                               into its temporary file, creates the file $TAUDA_FAULT_MARK, then hangs (to be killed)
TAUDA_FAULT_SLOW_PNG=SECONDS   every pseudo-label PNG is written in two halves, pausing SECONDS in between (to be
                               killed in the middle of a file)
TAUDA_FAULT_FILE_SIZE=BYTES    no file may grow past BYTES (RLIMIT_FSIZE): a write beyond fails with EFBIG, the way a
                               write fails on a full disk
"""
import io
import os
import resource
import signal
import sys
import time
from pathlib import Path

import torch

import tauda.pseudo
from tauda.cli import main

real_save = torch.save


def _target_name(f) -> str:
    "The file name a `torch.save` call writes to (a path, an open file, or tauda's recording wrapper of one)."
    if isinstance(f, (str, os.PathLike)): return Path(f).name
    return Path(getattr(getattr(f, "file", f), "name", "")).name


if os.environ.get("TAUDA_FAULT_HANG_SAVE"):
    name, k = os.environ["TAUDA_FAULT_HANG_SAVE"].rsplit(":", 1)
    calls = []

    def hanging_save(obj, f, *args, **kwargs):
        if f".{name}.tmp" in _target_name(f) or _target_name(f) == name:
            calls.append(f)
            if len(calls) == int(k):
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                data = buffer.getvalue()
                f.write(data[:len(data)//2])
                f.flush()
                Path(os.environ["TAUDA_FAULT_MARK"]).write_text(str(len(data)))
                time.sleep(600)  # killed here
        return real_save(obj, f, *args, **kwargs)

    torch.save = hanging_save

if os.environ.get("TAUDA_FAULT_SLOW_PNG"):
    pause, real_png = float(os.environ["TAUDA_FAULT_SLOW_PNG"]), tauda.pseudo.save_png

    def slow_png(array, path):
        buffer = io.BytesIO()
        real_png(array, buffer)
        data = buffer.getvalue()
        with open(path, "wb") as f:
            f.write(data[:len(data)//2]); f.flush()
            time.sleep(pause)
            f.write(data[len(data)//2:])

    tauda.pseudo.save_png = slow_png

if os.environ.get("TAUDA_FAULT_FILE_SIZE"):
    limit = int(os.environ["TAUDA_FAULT_FILE_SIZE"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, the process lives on
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

if __name__ == "__main__":
    main(sys.argv[1:])
