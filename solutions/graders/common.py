"""What the hidden graders share: a submission loaded with the entries it registers, random inputs, training runs."""
import importlib.util
import os
import subprocess
import sys
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tauda.cim import MIXERS
from tauda.ufl import TARGET_LOSSES, THRESHOLD_RULES

REGISTRIES = {"threshold rule": THRESHOLD_RULES, "target loss": TARGET_LOSSES, "mixer": MIXERS}
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Submission:
    "A student's (or the reference's, or a mutant's) module and the entries it registered, by kind."
    module: types.ModuleType
    registered: dict = field(default_factory=dict)

    def entry(self, kind: str, name: str):
        entries = self.registered.get(kind, {})
        assert name in entries, f"the module registers no {kind} named {name!r} (it registers {sorted(entries)})"
        return entries[name]

    @property
    def answers(self) -> dict:
        answers = getattr(self.module, "ANSWERS", None)
        assert isinstance(answers, dict), "the module has no ANSWERS dict"
        return answers


def load_source(source: str, name: str, filename: str) -> Submission:
    """Execute `source` as the module `name`; tauda's registries are restored afterwards, so that loading a mutant does
    not change what other checks or runs see: the entries the module registered are in `Submission.registered`."""
    before = {kind: (dict(r), dict(r.summaries)) for kind, r in REGISTRIES.items()}
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
        added = {kind: {k: v for k, v in r.items() if before[kind][0].get(k) is not v}
                 for kind, r in REGISTRIES.items()}
    finally:
        for kind, r in REGISTRIES.items():
            r.clear(); r.update(before[kind][0]); r.summaries.clear(); r.summaries.update(before[kind][1])
    return Submission(module, added)


def load_submission(folder, name: str) -> Submission:
    "The module `name` of the submission folder `folder`."
    path = Path(folder)/f"{name}.py"
    assert path.is_file(), f"no {name}.py in the submission folder {folder}"
    return load_source(path.read_text(), name, str(path))


def probabilities(*shape, sharpness=3.0, seed=0, dtype=torch.float32) -> torch.Tensor:
    "Random probability maps of `shape` `[B, C, H, W]` (softmax over dim 1), continuous: no ties."
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64)*sharpness, 1).to(dtype)


def train_with(folder, module: str, preset: str, init, data_root, out: Path, *sets) -> list:
    """`tauda train PRESET --import MODULE` for a few iterations from `init` on `data_root`, with the submission folder
    on PYTHONPATH; returns the training log (one dict per logged iteration)."""
    import json
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), str(ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    items = [f"init={init}", "schedule.log_every=1", "data.batch_size=2", "schedule.eval_batch_size=8",
             "log.tensorboard=false", *sets]
    args = [sys.executable, "-m", "tauda.cli", "train", preset, "--import", module, "--data-root", str(data_root),
            "--out", str(out), "--quiet", *[a for item in items for a in ("--set", item)]]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=Path(out).parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in (Path(out)/"log.jsonl").read_text().splitlines()]


def close(answer, expected, tol: float, key: str):
    "The answer (a number or a list) is within `tol` (absolute) of `expected`, element by element."
    a = [answer] if not isinstance(answer, (list, tuple)) else list(answer)
    e = [expected] if not isinstance(expected, (list, tuple)) else list(expected)
    assert len(a) == len(e), f"ANSWERS[{key!r}]: {len(a)} values, expected {len(e)}"
    wrong = [(i, x, y) for i, (x, y) in enumerate(zip(a, e)) if x is None or not abs(float(x) - y) <= tol]
    assert not wrong, f"ANSWERS[{key!r}]: " + "; ".join(f"[{i}] {x} is not within {tol} of {y:.4g}"
                                                        for i, x, y in wrong)


@contextmanager
def registered(registry, name: str, entry):
    "`entry` registered as `name` in `registry` for the duration of the block (what was there before comes back)."
    before = registry.get(name), registry.summaries.get(name)
    registry.register(name)(entry)
    try: yield entry
    finally:
        if before[0] is None: registry.pop(name, None); registry.summaries.pop(name, None)
        else: registry[name], registry.summaries[name] = before
